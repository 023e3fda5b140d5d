// Command localhub runs a local Azure IoT Hub: devices connect over
// MQTT/TLS, services call its REST API over HTTPS, state lives in a data
// directory.
//
//	localhub [serve] [flags]                 run the hub
//	localhub connection-string [--policy P]  print a policy's connection string
//	localhub device create ID                register a device, print its connection string
//
// Every flag has an environment fallback (LOCALHUB_DATA_DIR, ...).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "localhub:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  localhub [serve] [flags]                      run the local IoT Hub
  localhub connection-string [--policy NAME]    print a shared access policy's connection string
  localhub device create DEVICE-ID              register a device and print its connection string
Run "localhub COMMAND -h" for a command's flags.`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "connection-string":
		return connectionString(ctx, args, getenv, stdout, stderr)
	case "device":
		if len(args) == 0 || args[0] != "create" {
			return fmt.Errorf("unknown device command\n%s", usage)
		}
		return deviceCreate(ctx, args[1:], getenv, stdout, stderr)
	case "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}
