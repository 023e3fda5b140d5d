// Command perf measures the local hub and the simulator at scale, each
// figure against a floor measured in the same run, and prints a markdown
// table for docs/performance.md (make perf).
//
// For each fleet size it starts, each in a process of its own: a local hub
// (localhub.Start) with the devices registered; the floor, a bare
// mochi-mqtt broker with the hub's TLS settings (broker.go); the simulator
// (built from simulator/); Microsoft's Node.js device SDK when installed;
// and fleets of paho devices that answer direct methods on either. Then it
// measures memory per connected device, connect time, direct-method round
// trips per second with 64 calls in flight and latency with one, on the hub
// (HTTPS to the hub, MQTT to the device) and on the floor (MQTT both ways),
// alternating between the two so that a noisy machine weighs on both
// alike. Finally it runs the function app's processor benchmark.
//
// Usage: go run ./cmd/perf [-devices 1000,10000] [-out file.md] [-profile dir]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if r := os.Getenv(roleEnv); r != "" {
		os.Exit(runChild(ctx, r))
	}
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(1)
	}
}

// runChild runs one of the harness's child processes.
func runChild(ctx context.Context, name string) int {
	cfg := []byte(os.Getenv(configEnv))
	var r role
	switch name {
	case "hub":
		var c hubConfig
		r = func(ctx context.Context) (any, handler, func(), error) {
			if err := decodeJSON(cfg, &c); err != nil {
				return nil, nil, nil, err
			}
			return runHub(ctx, c)
		}
	case "broker":
		var c brokerConfig
		r = func(ctx context.Context) (any, handler, func(), error) {
			if err := decodeJSON(cfg, &c); err != nil {
				return nil, nil, nil, err
			}
			return runBroker(ctx, c)
		}
	case "fleet":
		var c fleetConfig
		r = func(ctx context.Context) (any, handler, func(), error) {
			if err := decodeJSON(cfg, &c); err != nil {
				return nil, nil, nil, err
			}
			return runFleet(ctx, c)
		}
	default:
		fmt.Fprintf(os.Stderr, "perf: unknown role %q\n", name)
		return 2
	}
	return serveChild(ctx, r)
}

// options are perf's flags.
type options struct {
	devices     []int
	inFlight    int
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	serial      int
	concurrency int
	simulator   string
	simFlags    []string
	node        string
	processor   bool
	methods     bool
	profile     string
	out         string
	repo        string
}

// childEnv is the environment added for the hub and the broker: with
// -profile, a heap sample every 4 KB instead of 512 KB, so that
// per-connection allocations of a few hundred bytes show.
func (o options) childEnv() []string {
	if o.profile == "" {
		return nil
	}
	return []string{"GODEBUG=memprofilerate=4096"}
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("perf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	devices := fs.String("devices", "1000,10000", "fleet sizes to run, comma-separated")
	fs.IntVar(&o.inFlight, "in-flight", 64, "direct-method calls in flight in the throughput rounds")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each throughput round")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "calls made before each throughput round starts counting")
	fs.IntVar(&o.rounds, "rounds", 3, "throughput and latency rounds on each path, alternating hub and floor")
	fs.IntVar(&o.serial, "serial", 2000, "calls per latency round (one call in flight)")
	fs.IntVar(&o.concurrency, "connect-concurrency", 64, "dials in flight while the paho fleets connect")
	fs.StringVar(&o.simulator, "simulator", "", "simulator binary (empty: build it from simulator/; \"off\": skip it)")
	simFlags := fs.String("simulator-flags", "", "extra simulator flags, space-separated (e.g. \"--connect-concurrency 128\")")
	fs.StringVar(&o.node, "node", "auto", "Microsoft's Node.js device SDK comparison: auto (when installed), off, or require")
	fs.BoolVar(&o.processor, "processor", true, "run the function app's processor benchmark")
	fs.BoolVar(&o.methods, "methods", true, "run the paho fleets: hub memory with them, direct-method throughput and latency against the floor")
	fs.StringVar(&o.profile, "profile", "", "directory for heap, goroutine and CPU profiles of the hub and the floor")
	fs.StringVar(&o.out, "out", "", "also write the markdown to this file")
	fs.StringVar(&o.repo, "repo", ".", "repository root (for simulator/, handlers/ and the Node.js SDKs)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	o.simFlags = strings.Fields(*simFlags)
	for s := range strings.SplitSeq(*devices, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return options{}, fmt.Errorf("-devices: %q is not a fleet size of at least 2", s)
		}
		o.devices = append(o.devices, n)
	}
	switch {
	case o.node != "auto" && o.node != "off" && o.node != "require":
		return options{}, fmt.Errorf("-node must be auto, off or require, got %q", o.node)
	case o.inFlight < 1 || o.rounds < 1 || o.serial < 1 || o.concurrency < 1:
		return options{}, errors.New("-in-flight, -rounds, -serial and -connect-concurrency must be positive")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	biggest := slices.Max(o.devices)
	if err := ensureOpenFiles(uint64(biggest + fileMargin)); err != nil {
		return err
	}
	if err := checkEphemeralPorts(biggest); err != nil {
		return err
	}
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "perf-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	rep := report{machine: describeMachine(o.repo), args: args}
	if o.simulator == "" {
		log.Info("building the simulator")
		if o.simulator, err = buildSimulator(ctx, o.repo, tmp); err != nil {
			return err
		}
	}
	switch o.node {
	case "off":
		rep.nodeSkip = "not run (-node off)"
	default:
		if why := nodeAvailable(o.repo); why != "" {
			if o.node == "require" {
				return errors.New(why)
			}
			rep.nodeSkip = "not measured: " + why
		}
	}
	for _, n := range o.devices {
		log.Info("scenario", "devices", n)
		sc, err := runScenario(ctx, o, n, filepath.Join(tmp, strconv.Itoa(n)), rep.nodeSkip == "", log)
		if err != nil {
			return fmt.Errorf("%d devices: %w", n, err)
		}
		rep.scenarios = append(rep.scenarios, sc)
	}
	if o.processor {
		log.Info("processor benchmark")
		p, err := runProcessor(ctx, o.repo)
		if err != nil {
			return err
		}
		rep.processor = &p
	}
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(md), 0o644)
	}
	return nil
}
