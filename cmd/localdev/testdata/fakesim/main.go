// Command fakesim stands in for bin/simulator in localdev's tests: it
// reports how it was started and runs until SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	cs := "unset"
	if strings.Contains(os.Getenv("SIMULATOR_SERVICE_CONNECTION_STRING"), "SharedAccessKeyName=registryReadWrite") {
		cs = "registryReadWrite"
	}
	fmt.Printf("fakesim started connectionString=%s args=%s\n", cs, strings.Join(os.Args[1:], " "))
	<-sigs
	fmt.Fprintln(os.Stderr, "fakesim stopping")
}
