// Command simulator runs a fleet of simulated IoT devices that reboot on
// the "reboot" direct method and report iothubDM.reboot in their twins,
// against Azure IoT Hub or the local hub. Run "simulator -h" for flags.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/iothub-reboot/devmgmt/simulator/internal/fleet"
	"github.com/iothub-reboot/devmgmt/simulator/internal/hubrest"
	"github.com/iothub-reboot/devmgmt/simulator/internal/mqttdev"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal shuts down cleanly; once it has arrived, a second
	// one kills the process as usual.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "simulator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	var caPEM []byte
	if cfg.caFile != "" {
		if caPEM, err = os.ReadFile(cfg.caFile); err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
	}
	if cfg.seed == 0 {
		cfg.seed = rand.Uint64()
	}

	css := cfg.deviceConnectionStrings
	if cfg.count > 0 {
		created, err := ensureDevices(ctx, cfg, caPEM, logger)
		if err != nil {
			return err
		}
		css = append(css, created...)
	}

	dialer, err := mqttdev.NewDialer(mqttdev.Options{BrokerAddr: cfg.mqttAddr, ExtraRootsPEM: caPEM, Logger: logger})
	if err != nil {
		return err
	}
	members := make([]fleet.Member, 0, len(css))
	for i, cs := range css {
		id, tr, err := dialer.Transport(cs)
		if err != nil {
			return fmt.Errorf("device %d: %w", i+1, err) // never echo the string: it holds a key
		}
		members = append(members, fleet.Member{ID: id, Transport: tr})
	}

	f := fleet.New(fleet.Options{
		Devices:            members,
		RebootDuration:     cfg.rebootDuration,
		RebootJitter:       cfg.rebootJitter,
		Backoff:            cfg.backoff,
		Faults:             cfg.faults,
		Seed:               cfg.seed,
		ConnectConcurrency: cfg.connectConcurrency,
		ConnectRate:        cfg.connectRate,
		Progress:           cfg.progress,
		Stdout:             stdout,
		Logger:             logger,
	})
	fmt.Fprintf(stdout, "simulating %d devices (%d offline), seed %d; Ctrl-C stops\n", len(members), len(f.Offline()), cfg.seed)
	f.Run(ctx)
	return nil
}

// ensureDevices creates or reuses PREFIX0001... through the registry and
// returns their connection strings.
func ensureDevices(ctx context.Context, cfg config, caPEM []byte, logger *slog.Logger) ([]string, error) {
	httpClient, err := httpClientTrusting(caPEM)
	if err != nil {
		return nil, err
	}
	svc, err := hubrest.NewClient(cfg.serviceConnectionString, hubrest.Options{Endpoint: cfg.serviceEndpoint, HTTPClient: httpClient})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	css := make([]string, cfg.count)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range css {
		id := fmt.Sprintf("%s%04d", cfg.prefix, i+1)
		g.Go(func() error {
			cs, err := svc.EnsureDevice(ctx, id)
			css[i] = cs
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	logger.Info("devices ready", "count", cfg.count, "prefix", cfg.prefix, "hub", svc.HostName(), "took", time.Since(start).Round(time.Millisecond))
	return css, nil
}

// httpClientTrusting trusts the system roots plus caPEM.
func httpClientTrusting(caPEM []byte) (*http.Client, error) {
	if len(caPEM) == 0 {
		return &http.Client{Timeout: time.Minute}, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("--ca-file: no PEM certificate found")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: time.Minute, Transport: tr}, nil
}
