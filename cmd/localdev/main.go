// Command localdev runs the whole system locally, which is what `make run`
// starts: the local IoT Hub (localhub, in process), the function app under
// the local Functions host (funchost, in process, running the real custom
// handler as a child process; its Event Hubs trigger reads the hub's
// built-in endpoint over AMQP with the connection string local.settings.json
// would hold), and the device simulator (bin/simulator) as a child process.
// It prints what to try and stops everything on Ctrl+C.
//
// Run "localdev -h" for the flags; each falls back to LOCALDEV_<FLAG>.
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
	"sync"
	"syscall"
	"time"

	"github.com/iothub-reboot/devmgmt/funchost"
	"github.com/iothub-reboot/devmgmt/localhub"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal shuts down cleanly; a second one kills as usual.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "localdev:", err)
		os.Exit(1)
	}
}

// run starts the hub, the Functions host and the simulator, in that
// order, and stops them in the reverse order when ctx ends or the host
// stops by itself, logging each stop.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	// The log, the handler's output and the simulator's share stderr.
	logOut := &lockedWriter{w: stderr}
	logger := slog.New(consoleHandler{
		next: slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: cfg.logLevel}),
		out:  logOut,
	})

	root, err := scriptRoot(cfg.scriptRoot)
	if err != nil {
		return err
	}
	parts := &shutdown{logger: logger}
	defer func() {
		stopErr := parts.stop()
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil // interrupted while starting: not a failure
		}
		err = errors.Join(err, stopErr)
	}()

	hubLogger := logger.With("component", "localhub")
	hub, err := localhub.Start(ctx, localhub.Options{
		DataDir:       cfg.dataDir,
		Hostname:      cfg.hostname,
		MQTTAddr:      cfg.mqttAddr,
		HTTPSAddr:     cfg.httpsAddr,
		AMQPAddr:      cfg.amqpAddr,
		AMQPPlainAddr: cfg.amqpPlain,
		Logger:        hubLogger,
	})
	if err != nil {
		return err
	}
	parts.push(func() error { return stopHub(hub, hubLogger) })

	settings, err := appSettings(hub)
	if err != nil {
		return err
	}
	host, err := funchost.Start(ctx, funchost.Options{
		ScriptRoot: root,
		Settings:   settings,
		HTTPAddr:   cfg.httpAddr,
		// Next to the events log they point into: a new data dir (a new
		// log, sequence numbers from 0) starts without them.
		CheckpointDir: filepath.Join(hub.DataDir(), checkpointContainer),
		DataDir:       filepath.Join(cfg.dataDir, "funchost"),
		Logger:        logger.With("component", "funchost"),
	})
	if err != nil {
		return err
	}
	parts.push(func() error {
		if err := host.Close(); err != nil {
			return fmt.Errorf("the Functions host: %w", err)
		}
		return nil
	})

	sim, err := startSimulator(cfg, hub, logOut, logger)
	if err != nil {
		return err
	}
	if sim != nil {
		parts.push(sim.stop)
	}

	if err := printTryBlock(stdout, cfg, host.URL(), hub, sim != nil); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-host.Done():
		// Why comes back from host.Close, through parts.stop.
		logger.Error("the Functions host stopped by itself; shutting down")
	}
	return nil
}

// stopHub closes the hub and logs it: localhub logs its start but not its
// stop.
func stopHub(hub *localhub.Hub, logger *slog.Logger) error {
	start := time.Now()
	err := hub.Close()
	if err != nil {
		logger.Error("local IoT Hub stopped with an error", "err", err, "took", since(start))
		return fmt.Errorf("the local IoT Hub: %w", err)
	}
	logger.Info("local IoT Hub stopped", "took", since(start))
	return nil
}

// scriptRoot checks the app root before anything starts, with the way to
// build it in the error.
func scriptRoot(dir string) (string, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "host.json")); err != nil {
		return "", fmt.Errorf("no function app in %s (%w): build it with `make build`, or: "+
			"mkdir -p %[1]s && cp host.json %[1]s/ && cp -r functions/* %[1]s/ && go build -o %[1]s/handler ./cmd/handler", root, err)
	}
	return root, nil
}

// checkpointContainer is the directory, in the data dir, that stands in
// for the blob container where the Functions host keeps Event Hubs
// checkpoints (azure-webjobs-eventhub in AzureWebJobsStorage).
const checkpointContainer = "azure-webjobs-eventhub"

// appSettings are the function app's settings for the local hub
// (settings contract), the values local.settings.json holds under func
// start: the service connection string with ServiceConnect +
// RegistryRead + RegistryWrite (fleet reboots create jobs),
// FleetRebootTimer's schedule, the hub's endpoint and CA, and for the
// Event Hubs trigger the built-in endpoint's connection string for policy
// service in its UseDevelopmentEmulator=true form. That form is func
// start's too, and needs no CA: Go reads SSL_CERT_FILE on Linux only, so
// the TLS form would need the local CA in the system's store on macOS and
// Windows. The listener is loopback only, so no key crosses the network.
func appSettings(hub *localhub.Hub) (map[string]string, error) {
	cs, err := hub.ServiceConnectionString("serviceAndRegistryReadWrite")
	if err != nil {
		return nil, err
	}
	if hub.AMQPPlainAddr() == "" {
		return nil, errors.New("the function app reads the hub's events over its plain AMQP listener (a UseDevelopmentEmulator=true connection string, as under func start): give --amqp-plain-addr a loopback address, not off")
	}
	eh, err := hub.EventHubConnectionString("service", true)
	if err != nil {
		return nil, err
	}
	ca, err := filepath.Abs(hub.CAFile())
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"FUNCTIONS_WORKER_RUNTIME":                  "custom",
		"IOTHUB_CONNECTION_STRING":                  cs,
		"FLEET_REBOOT_SCHEDULE":                     "*/10 * * * * *",
		"IOTHUB_ENDPOINT":                           hub.HTTPSURL(),
		"IOTHUB_CA_FILE":                            ca,
		"IOTHUB_EVENTHUB_CONNECTION":                eh,
		"IOTHUB_EVENTHUB_NAME":                      hub.EventHubName(),
		"IOTHUB_CONSUMER_GROUP":                     "localdev",
		"AzureWebJobs.TwinChangeProcessor.Disabled": "false",
	}, nil
}

// lockedWriter serialises writes from the logger and the child processes.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
