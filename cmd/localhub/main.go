// Command localhub runs a local Azure IoT Hub: devices connect over
// MQTT/TLS, services call its REST API over HTTPS, Event Hubs clients read
// its built-in events endpoint over AMQP, state lives in a data directory.
//
//	localhub [serve] [flags]                 run the hub
//	localhub connection-string [--policy P]  print a policy's connection string
//	localhub eventhub-connection-string [--policy P] [--emulator]
//	                                         print the built-in endpoint's connection string
//	localhub device create ID                register a device, print its connection string
//	localhub device show ID                  print a device's connection string
//	localhub device list                     list the registered devices
//
// "localhub -h" prints every command and its flags. Flags fall back to
// environment variables (LOCALHUB_DATA_DIR, ...) when not given.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// realMain is main without the process around it: it returns the exit
// code (0, 1 for a failure, 2 for a bad command line) and prints an error
// once, on one "localhub: " line.
func realMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	err := run(ctx, args, getenv, stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "localhub: "+errorText(err))
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// A bare "localhub [flags]" is "localhub serve [flags]", except that
	// "localhub -h" is the whole help rather than serve's.
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && isHelp(args[0]) {
			return printHelp(stdout)
		}
		args = append([]string{"serve"}, args...)
	}
	name, args := args[0], args[1:]
	switch name {
	case "help":
		return printHelp(stdout)
	case "device":
		if len(args) > 0 && isHelp(args[0]) {
			return printHelp(stdout)
		}
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return usageErrorf("device needs a subcommand: create, show or list")
		}
		name, args = "device "+args[0], args[1:]
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, invocation{cmd: c, args: args, getenv: getenv, stdout: stdout, stderr: stderr})
		}
	}
	return usageErrorf("unknown command %q", name)
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}

// errorText is err's message without the prefixes that wrapping layers
// repeat ("localhub: registry: registry: open …" reads "registry: open
// …"): main adds "localhub: " once, and a label said twice in a row adds
// nothing.
func errorText(err error) string {
	parts := strings.Split(err.Error(), ": ")
	out := parts[:0]
	for _, p := range parts {
		isLabel := p != "" && !strings.ContainsAny(p, " \n\t")
		if isLabel && (len(out) == 0 && p == "localhub" || len(out) > 0 && out[len(out)-1] == p) {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}
