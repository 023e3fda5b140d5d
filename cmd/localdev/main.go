// Command localdev runs the whole system locally, which is what `make run`
// starts: the local IoT Hub (localhub, in process), the function app under
// the local Functions host (funchost, in process, running the real custom
// handler as a child process and feeding TwinChangeProcessor from the hub's
// built-in events endpoint), and the device simulator (bin/simulator) as a
// child process. It prints what to try and stops everything on Ctrl+C.
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
	"strings"
	"sync"
	"syscall"

	"github.com/iothub-reboot/devmgmt/funchost"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
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

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
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
	hub, err := localhub.Start(ctx, localhub.Options{
		DataDir:   cfg.dataDir,
		Hostname:  cfg.hostname,
		MQTTAddr:  cfg.mqttAddr,
		HTTPSAddr: cfg.httpsAddr,
		Logger:    logger.With("component", "localhub"),
	})
	if err != nil {
		return err
	}
	defer hub.Close()

	settings, err := appSettings(hub)
	if err != nil {
		return err
	}
	host, err := funchost.Start(ctx, funchost.Options{
		ScriptRoot: root,
		Settings:   settings,
		HTTPAddr:   cfg.httpAddr,
		Events:     hub.Events(),
		Logger:     logger.With("component", "funchost"),
	})
	if err != nil {
		return err
	}
	defer host.Close()

	sim, err := startSimulator(cfg, hub, logOut, logger)
	if err != nil {
		return err
	}
	defer sim.stop()

	if err := printTryBlock(stdout, cfg, host.URL(), hub, sim != nil); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-host.Done():
		err = fmt.Errorf("the Functions host stopped: %w", host.Err())
	}
	sim.stop()
	return errors.Join(err, host.Close(), hub.Close())
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

// appSettings are the function app's settings for the local hub
// (settings contract): the service connection string with
// ServiceConnect + RegistryRead, the hub's endpoint and CA, and the
// Event Hubs trigger's settings, informational here since the host reads
// the hub's events in process.
func appSettings(hub *localhub.Hub) (map[string]string, error) {
	cs, err := hub.ServiceConnectionString("serviceAndRegistryRead")
	if err != nil {
		return nil, err
	}
	svc, err := hub.ServiceConnectionString("service")
	if err != nil {
		return nil, err
	}
	parsed, err := sas.ParseConnectionString(svc)
	if err != nil {
		return nil, err
	}
	ca, err := filepath.Abs(hub.CAFile())
	if err != nil {
		return nil, err
	}
	name, _, _ := strings.Cut(hub.Hostname(), ".")
	return map[string]string{
		"FUNCTIONS_WORKER_RUNTIME": "custom",
		"IOTHUB_CONNECTION_STRING": cs,
		"IOTHUB_ENDPOINT":          hub.HTTPSURL(),
		"IOTHUB_CA_FILE":           ca,
		"IOTHUB_EVENTHUB_CONNECTION": "Endpoint=sb://" + hub.Hostname() + "/;SharedAccessKeyName=" + parsed.SharedAccessKeyName +
			";SharedAccessKey=" + parsed.SharedAccessKey + ";EntityPath=" + name,
		"IOTHUB_EVENTHUB_NAME":                      name,
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
