package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// command is one localhub subcommand.
type command struct {
	name    string // "serve", "device create"
	args    string // positional arguments for the usage line, e.g. "DEVICE-ID"
	summary string
	// setup declares the command's flags on fs and returns what runs the
	// command once fs is parsed. Help calls it too, to list the flags.
	setup func(fs *flag.FlagSet) func(ctx context.Context, inv invocation) error
}

// invocation is a command's run: its positional arguments (flags already
// parsed) and the process around it.
type invocation struct {
	cmd    command
	args   []string
	getenv func(string) string
	// fromEnv names the environment variable that set a flag, by flag name.
	fromEnv map[string]string
	stdout  io.Writer
	stderr  io.Writer
}

// commands in the order help lists them.
var commands = []command{
	{name: "serve", summary: "run the local IoT Hub (the default command)", setup: serveCommand},
	{name: "connection-string", summary: "print a shared access policy's connection string", setup: connectionStringCommand},
	{name: "eventhub-connection-string", summary: "print the built-in endpoint's Event Hub-compatible connection string (TLS, or --emulator for UseDevelopmentEmulator=true)", setup: eventHubConnectionStringCommand},
	{name: "device create", args: "DEVICE-ID", summary: "register a device and print its connection string", setup: deviceCreateCommand},
	{name: "device show", args: "DEVICE-ID", summary: "print a registered device's connection string", setup: deviceShowCommand},
	{name: "device list", summary: "list the registered devices: id, status, connection state", setup: deviceListCommand},
}

// envFallback names the environment variable each flag falls back to. The
// variables are read after parsing, never used as flag defaults, so help
// shows the real defaults and never an environment value (a secret, for
// --bearer-token).
var envFallback = map[string]string{
	"data-dir":          "LOCALHUB_DATA_DIR",
	"hostname":          "LOCALHUB_HOSTNAME",
	"mqtt-addr":         "LOCALHUB_MQTT_ADDR",
	"https-addr":        "LOCALHUB_HTTPS_ADDR",
	"amqp-addr":         "LOCALHUB_AMQP_ADDR",
	"amqp-plain-addr":   "LOCALHUB_AMQP_PLAIN_ADDR",
	"amqp-plain-remote": "LOCALHUB_AMQP_PLAIN_REMOTE",
	"consumer-group":    "LOCALHUB_CONSUMER_GROUPS",
	"routes":            "LOCALHUB_ROUTES",
	"bearer-token":      "LOCALHUB_BEARER_TOKEN",
	"partitions":        "LOCALHUB_PARTITIONS",
	"retention":         "LOCALHUB_RETENTION",
	"throttle":          "LOCALHUB_THROTTLE",
	"log-level":         "LOCALHUB_LOG_LEVEL",
}

// errUsage marks a bad command line (exit code 2).
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Is(target error) bool {
	return target == errUsage
}

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...) + "\nRun \"localhub -h\" for every command and its flags."}
}

func (c command) run(ctx context.Context, inv invocation) error {
	fs := flag.NewFlagSet("localhub "+c.name, flag.ContinueOnError)
	// The flag package would print its error and the usage itself; we
	// print the error once, in main, and the usage only when asked.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	runCmd := c.setup(fs)
	args, err := parseInterspersed(fs, inv.args)
	if errors.Is(err, flag.ErrHelp) {
		return printCommandHelp(inv.stdout, c)
	}
	if err != nil {
		return &usageError{msg: fmt.Sprintf("%s: %v\nRun \"localhub %s -h\" for its flags.", c.name, err, c.name)}
	}
	if inv.fromEnv, err = applyEnv(fs, inv.getenv); err != nil {
		return &usageError{msg: fmt.Sprintf("%s: %v", c.name, err)}
	}
	want := strings.Fields(c.args)
	switch {
	case len(args) < len(want):
		return &usageError{msg: fmt.Sprintf("%s needs %s\nUsage: localhub %s", c.name, strings.Join(want[len(args):], " "), c.usageLine())}
	case len(args) > len(want):
		return &usageError{msg: fmt.Sprintf("%s: unexpected arguments: %s\nUsage: localhub %s", c.name, strings.Join(args[len(want):], " "), c.usageLine())}
	}
	inv.cmd, inv.args = c, args
	return runCmd(ctx, inv)
}

func (c command) usageLine() string {
	line := c.name
	if c.args != "" {
		line += " " + c.args
	}
	return line + " [flags]"
}

// parseInterspersed parses flags before and after positional arguments
// ("device create dev-1 --data-dir d" and "device create --data-dir d
// dev-1" alike), which the flag package alone stops at.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// applyEnv sets every flag the command line left out from its environment
// fallback, if that is set, and returns which variables it used by flag
// name. The flags are strings: commands check values afterwards and name
// a variable, not a flag, for a value it gave.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) (fromEnv map[string]string, err error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fromEnv = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		env, ok := envFallback[f.Name]
		if !ok || given[f.Name] || err != nil {
			return
		}
		if v := getenv(env); v != "" {
			err = fs.Set(f.Name, v)
			fromEnv[f.Name] = env
		}
	})
	return fromEnv, err
}

// source names where a flag's value came from: "--partitions", or
// "LOCALHUB_PARTITIONS" when the environment gave it.
func (inv invocation) source(flagName string) string {
	if env, ok := inv.fromEnv[flagName]; ok {
		return env
	}
	return "--" + flagName
}

const helpIntro = `localhub runs a local Azure IoT Hub: devices over MQTT 3.1.1/TLS, the
service REST API over HTTPS, the built-in events endpoint for Event Hubs
clients over AMQP, state in a data directory.

Usage:
  localhub [serve] [flags]
  localhub COMMAND [ARGUMENTS] [flags]
`

const helpOutro = `The admin commands (all but serve) work on a data dir whether or not a hub
runs on it; while one runs they go through its REST API.
A flag that is not given falls back to the environment variable in brackets.
A listen address fd:N serves the listening TCP socket inherited as file
descriptor N (3 or more) instead of binding one: for socket activation
(systemd passes its sockets from fd 3 on) and for a parent process that
keeps the ports while it restarts the hub (exec.Cmd.ExtraFiles).
`

// printHelp prints every command with its flags: "localhub -h".
func printHelp(w io.Writer) error {
	var b strings.Builder
	b.WriteString(helpIntro)
	b.WriteString("\nCommands:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(tw, "  help\tprint this help\n")
	tw.Flush()
	for _, c := range commands {
		fmt.Fprintf(&b, "\nlocalhub %s\n", c.usageLine())
		writeFlags(&b, c)
	}
	b.WriteString("\n" + helpOutro)
	_, err := io.WriteString(w, b.String())
	return err
}

// printCommandHelp prints one command's usage: "localhub serve -h".
func printCommandHelp(w io.Writer, c command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: localhub %s\n\n%s.\n\nFlags:\n", c.usageLine(), strings.ToUpper(c.summary[:1])+c.summary[1:])
	writeFlags(&b, c)
	b.WriteString("\n" + helpOutro)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFlags lists a command's flags with their fixed defaults and
// environment fallbacks.
func writeFlags(b *strings.Builder, c command) {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	c.setup(fs)
	var flags []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { flags = append(flags, f) })
	sort.Slice(flags, func(i, j int) bool { return flags[i].Name < flags[j].Name })
	tw := tabwriter.NewWriter(b, 0, 0, 3, ' ', 0)
	for _, f := range flags {
		arg, usage := flag.UnquoteUsage(f)
		if f.DefValue != "" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if env, ok := envFallback[f.Name]; ok {
			usage += " [" + env + "]"
		}
		fmt.Fprintf(tw, "  --%s\t%s\n", strings.TrimSpace(f.Name+" "+arg), usage)
	}
	tw.Flush()
}
