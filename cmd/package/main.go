// Command package zips a Functions app root (host.json, one folder per
// function, the custom handler binary) into the deployment package that Flex
// Consumption runs from. The zip records Unix modes, so the handler stays
// executable whatever the file system it was built on.
//
//	go run ./cmd/package -src dist/app -out dist/app.zip
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "package:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("package", flag.ContinueOnError)
	flags.SetOutput(stderr)
	src := flags.String("src", "dist/app", "app root: host.json, function folders and the handler")
	out := flags.String("out", "dist/app.zip", "zip file to write")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}

	a, err := readApp(*src)
	if err != nil {
		return err
	}
	if err := writeZip(*out, a); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d files, functions %v, executable %s\n", *out, len(a.files), a.functions, a.executable)
	return nil
}
