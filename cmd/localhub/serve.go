package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"

	"github.com/iothub-reboot/devmgmt/localhub"
)

func serveCommand(fs *flag.FlagSet) func(context.Context, invocation) error {
	f := newServeFlags(fs)
	return func(ctx context.Context, inv invocation) error {
		cfg, err := f.config(inv.source)
		if err != nil {
			return &usageError{msg: "serve: " + err.Error()}
		}
		return serve(ctx, cfg, inv.stdout, inv.stderr)
	}
}

func serve(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	// A second hub on a data dir would wait on the registry's lock: say at
	// once who holds it.
	if err := localhub.CheckDataDirFree(ctx, cfg.dataDir); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	lns, err := cfg.inherit()
	if err != nil {
		return err
	}
	// The hub owns the inherited sockets from here, failed start included.
	hub, err := localhub.Start(ctx, cfg.options(logger, lns))
	if err != nil {
		return err
	}
	defer hub.Close()
	if err := printBanner(stdout, hub); err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("shutting down")
	if err := hub.Close(); err != nil {
		logger.Error("shutdown", "err", err)
		return err
	}
	return nil
}

// printBanner tells the user how to reach the hub. Connection strings are
// credentials: they go to stdout for the person who started the hub, never
// to the log.
func printBanner(w io.Writer, hub *localhub.Hub) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("Local IoT Hub %q is running.\n", hub.Hostname())
	p("  Service REST API (HTTPS): %s\n", hub.HTTPSURL())
	p("  Devices (MQTT over TLS):  %s\n", hub.MQTTAddr())
	p("  Events (AMQP over TLS):   %s\n", hub.AMQPAddr())
	if hub.AMQPPlainAddr() != "" {
		p("  Events (plain AMQP):      %s (UseDevelopmentEmulator=true)\n", hub.AMQPPlainAddr())
	}
	p("  Data directory:           %s\n", hub.DataDir())
	if q := hub.Quotas(); q != (localhub.Quotas{}) {
		p("  Throttling:               %s\n", describeQuotas(q))
	}
	p("\nService connection strings (point clients at %s; HostName carries no port, as in Azure):\n", hub.HTTPSURL())
	for _, name := range hub.Policies() {
		cs, err := hub.ServiceConnectionString(name)
		if err != nil {
			return err
		}
		p("  %-24s %s\n", name, cs)
	}
	if err := printBuiltInEndpoint(w, hub); err != nil {
		return err
	}
	p("\nTrust the local CA: %s\n", hub.CAFile())
	p("  Go:      tls.Config{RootCAs: pool with that file}, or SSL_CERT_FILE=%s for the system pool\n", hub.CAFile())
	p("  Node.js: NODE_EXTRA_CA_CERTS=%s (the Node service SDK cannot take a port: serve HTTPS on :443)\n", hub.CAFile())
	p("\nCreate a device: localhub device create my-device --data-dir %s\n", hub.DataDir())
	return nil
}

// bannerEventHubPolicy is the policy whose built-in endpoint connection
// strings the banner shows: ServiceConnect only, the least a reader needs.
const bannerEventHubPolicy = "service"

// printBuiltInEndpoint shows the built-in endpoint as the portal's
// "Built-in endpoints" page does: its Event Hub-compatible name,
// partitions, consumer groups and connection strings.
func printBuiltInEndpoint(w io.Writer, hub *localhub.Hub) error {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\nBuilt-in endpoint (Event Hub-compatible, read by Event Hubs clients over AMQP):\n")
	p("  Event Hub-compatible name: %s\n", hub.EventHubName())
	p("  Partitions:                %d\n", hub.Events().PartitionCount())
	p("  Consumer groups:           %s\n", strings.Join(hub.ConsumerGroups(), ", "))
	p("  Routed sources:            %s\n", strings.ReplaceAll(hub.Routes().String(), ",", ", "))
	cs, err := hub.EventHubConnectionString(bannerEventHubPolicy, false)
	if err != nil {
		return err
	}
	p("  Event Hub-compatible endpoint (policy %s):\n    %s\n", bannerEventHubPolicy, cs)
	if hub.AMQPPlainAddr() != "" {
		emu, err := hub.EventHubConnectionString(bannerEventHubPolicy, true)
		if err != nil {
			return err
		}
		p("  For UseDevelopmentEmulator=true (func start's Event Hubs trigger, plain AMQP):\n    %s\n", emu)
	}
	p("  Other policies: localhub eventhub-connection-string --policy NAME [--emulator] --data-dir %s\n", hub.DataDir())
	return nil
}

// describeQuotas says which rates the hub throttles at, per minute where
// that reads better.
func describeQuotas(q localhub.Quotas) string {
	var parts []string
	for _, c := range []struct {
		name string
		rate float64
	}{
		{"registry operations", q.RegistryOperations},
		{"twin reads", q.TwinReads},
		{"twin updates", q.TwinUpdates},
		{"direct methods", q.DirectMethods},
		{"queries", q.Queries},
	} {
		switch {
		case c.rate <= 0:
		case c.rate < 10:
			parts = append(parts, fmt.Sprintf("%s %g/min", c.name, math.Round(c.rate*60*100)/100))
		default:
			parts = append(parts, fmt.Sprintf("%s %g/s", c.name, c.rate))
		}
	}
	return "429 ThrottlingException past " + strings.Join(parts, ", ")
}
