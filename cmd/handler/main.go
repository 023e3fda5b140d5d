// Command handler is the function app's Azure Functions custom handler:
// the executable host.json names in customHandler.description. The
// Functions host starts it with FUNCTIONS_CUSTOMHANDLER_PORT set and the
// app settings in its environment; everything else is package handlers.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/iothub-reboot/devmgmt/handlers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := handlers.Run(ctx, os.Getenv, os.Stdout, os.Stderr); err != nil {
		// Non-zero (and not 200, the host's "restart me" code): the host
		// logs stderr as an error and restarts the handler a few times.
		fmt.Fprintf(os.Stderr, "handler: %v\n", err)
		os.Exit(1)
	}
}
