package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// config is the command line of "localhub serve", with environment
// fallbacks, turned into localhub.Options by options.
type config struct {
	dataDir     string
	hostname    string
	mqttAddr    string
	httpsAddr   string
	bearerToken string
	partitions  int
	retention   time.Duration
	quotas      localhub.Quotas
	logLevel    slog.Level
}

// Defaults for the standalone hub. 8883 is IoT Hub's MQTT port; 443 would
// need privileges, so HTTPS defaults to 8443 (see README for Node.js).
const (
	defaultMQTTAddr  = "127.0.0.1:8883"
	defaultHTTPSAddr = "127.0.0.1:8443"
	defaultDataDir   = ".localhub"
)

// serveFlags are the raw flags of "localhub serve", turned into a config
// by config once parsed.
type serveFlags struct {
	dataDir, hostname, mqttAddr, httpsAddr, bearerToken string
	partitions, retention, throttle, logLevel           string
}

const dataDirUsage = "`DIR` to keep the registry, keys and TLS material in"

func dataDirFlag(fs *flag.FlagSet) *string {
	return fs.String("data-dir", defaultDataDir, dataDirUsage)
}

// newServeFlags declares serve's flags. Their defaults are fixed values:
// environment fallbacks are applied after parsing (applyEnv).
func newServeFlags(fs *flag.FlagSet) *serveFlags {
	f := &serveFlags{}
	fs.StringVar(&f.dataDir, "data-dir", defaultDataDir, dataDirUsage)
	fs.StringVar(&f.hostname, "hostname", "localhost", "hub host `NAME` used in connection strings and the TLS certificate")
	fs.StringVar(&f.mqttAddr, "mqtt-addr", defaultMQTTAddr, "MQTT over TLS listen `ADDRESS`")
	fs.StringVar(&f.httpsAddr, "https-addr", defaultHTTPSAddr, "service REST API (HTTPS) listen `ADDRESS`")
	fs.StringVar(&f.bearerToken, "bearer-token", "", "accept this exact bearer `TOKEN` as an Entra ID stand-in with full data-plane rights (off when empty)")
	fs.StringVar(&f.partitions, "partitions", "4", "`N` partitions of the built-in events endpoint, 1 to 32")
	fs.StringVar(&f.retention, "retention", "24h", "retention `DURATION` of the built-in events endpoint")
	fs.StringVar(&f.throttle, "throttle", "off", "throttling `MODE`: off, or s1 to answer 429 past one S1 unit's quotas, for testing callers' throttling handling")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error")
	return f
}

// loadServeConfig parses serve's command line with its environment
// fallbacks, as "localhub serve" does.
func loadServeConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("localhub serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := newServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	fromEnv, err := applyEnv(fs, getenv)
	if err != nil {
		return config{}, err
	}
	return f.config(invocation{fromEnv: fromEnv}.source)
}

// config checks the flags and turns them into a config; source names a
// flag's origin in errors.
func (f *serveFlags) config(source func(flagName string) string) (config, error) {
	c := config{
		dataDir:     f.dataDir,
		hostname:    f.hostname,
		mqttAddr:    f.mqttAddr,
		httpsAddr:   f.httpsAddr,
		bearerToken: f.bearerToken,
	}
	var err error
	if c.partitions, err = strconv.Atoi(f.partitions); err != nil || c.partitions < 1 || c.partitions > 32 {
		return config{}, fmt.Errorf("%s must be a number from 1 to 32, got %q", source("partitions"), f.partitions)
	}
	if c.retention, err = time.ParseDuration(f.retention); err != nil || c.retention <= 0 {
		return config{}, fmt.Errorf("%s must be a positive duration such as 24h, got %q", source("retention"), f.retention)
	}
	switch f.throttle {
	case "off":
	case "s1":
		c.quotas = localhub.S1Quotas()
	default:
		return config{}, fmt.Errorf("%s must be off or s1, got %q", source("throttle"), f.throttle)
	}
	if err := c.logLevel.UnmarshalText([]byte(f.logLevel)); err != nil {
		return config{}, fmt.Errorf("%s must be debug, info, warn or error, got %q", source("log-level"), f.logLevel)
	}
	if c.hostname == "" {
		return config{}, fmt.Errorf("%s must not be empty", source("hostname"))
	}
	return c, nil
}

func (c config) options(logger *slog.Logger) localhub.Options {
	return localhub.Options{
		DataDir:     c.dataDir,
		Hostname:    c.hostname,
		MQTTAddr:    c.mqttAddr,
		HTTPSAddr:   c.httpsAddr,
		BearerToken: c.bearerToken,
		Quotas:      c.quotas,
		Partitions:  c.partitions,
		Retention:   c.retention,
		Logger:      logger,
	}
}
