package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// config is localdev's command line; every flag falls back to LOCALDEV_<FLAG>.
type config struct {
	dataDir    string
	hostname   string
	mqttAddr   string
	httpsAddr  string
	amqpAddr   string
	amqpPlain  string
	httpAddr   string
	scriptRoot string
	simulator  string
	devices    int
	prefix     string
	logLevel   slog.Level
}

const usageHead = `usage: localdev [flags]

Starts the local system: the local IoT Hub, the function app under the local
Functions host, and simulated devices; prints what to try; stops on Ctrl+C.
Every flag falls back to the environment variable LOCALDEV_<FLAG>
(e.g. LOCALDEV_HTTP_ADDR).

`

func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("localdev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	var c config
	fs.StringVar(&c.dataDir, "data-dir", ".localhub", "the local hub's state directory (registry, keys, TLS material)")
	fs.StringVar(&c.hostname, "hostname", "localhost", "the hub host name in connection strings and its TLS certificate")
	fs.StringVar(&c.mqttAddr, "mqtt-addr", "127.0.0.1:8883", "the hub's MQTT over TLS listen address")
	fs.StringVar(&c.httpsAddr, "https-addr", "127.0.0.1:8443", "the hub's service REST API (HTTPS) listen address")
	fs.StringVar(&c.amqpAddr, "amqp-addr", "127.0.0.1:5671", "the hub's built-in endpoint: AMQP over TLS listen address (Event Hubs clients)")
	fs.StringVar(&c.amqpPlain, "amqp-plain-addr", "127.0.0.1:5672", "the same without TLS, loopback only: the function app reads it with a UseDevelopmentEmulator=true connection string")
	fs.StringVar(&c.httpAddr, "http-addr", "127.0.0.1:7071", "the function app's HTTP listen address")
	fs.StringVar(&c.scriptRoot, "script-root", "dist/local", "the function app root: host.json, function folders and a handler built for this machine")
	fs.StringVar(&c.simulator, "simulator", "bin/simulator", "the device simulator executable (missing: no devices)")
	fs.IntVar(&c.devices, "devices", 3, "simulated devices to create (or reuse) and connect; 0 for none")
	fs.StringVar(&c.prefix, "prefix", "sim-", "device id prefix of the simulated devices: PREFIX0001, ...")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if err := applyEnv(fs, getenv); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return config{}, fmt.Errorf("--log-level: %w", err)
	}
	if c.devices < 0 {
		return config{}, errors.New("--devices must not be negative")
	}
	if c.scriptRoot == "" || c.dataDir == "" {
		return config{}, errors.New("--script-root and --data-dir must not be empty")
	}
	return c, nil
}

// applyEnv sets every flag not given on the command line from its
// LOCALDEV_* variable.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		key := envKey(f.Name)
		if v := getenv(key); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envKey(flagName string) string {
	return "LOCALDEV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
