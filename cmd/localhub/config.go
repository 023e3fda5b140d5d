package main

import (
	"errors"
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

func dataDirFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	return fs.String("data-dir", envOr(getenv, "LOCALHUB_DATA_DIR", defaultDataDir), "directory holding the registry, keys and TLS material (env LOCALHUB_DATA_DIR)")
}

func loadServeConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("localhub serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	dataDir := dataDirFlag(fs, getenv)
	fs.StringVar(&c.hostname, "hostname", envOr(getenv, "LOCALHUB_HOSTNAME", "localhost"), "hub host name used in connection strings and the TLS certificate (env LOCALHUB_HOSTNAME)")
	fs.StringVar(&c.mqttAddr, "mqtt-addr", envOr(getenv, "LOCALHUB_MQTT_ADDR", defaultMQTTAddr), "MQTT over TLS listen address (env LOCALHUB_MQTT_ADDR)")
	fs.StringVar(&c.httpsAddr, "https-addr", envOr(getenv, "LOCALHUB_HTTPS_ADDR", defaultHTTPSAddr), "service REST API (HTTPS) listen address (env LOCALHUB_HTTPS_ADDR)")
	fs.StringVar(&c.bearerToken, "bearer-token", getenv("LOCALHUB_BEARER_TOKEN"), "accept this exact bearer token as an Entra ID stand-in with full data-plane rights (env LOCALHUB_BEARER_TOKEN; off when empty)")
	partitions := fs.String("partitions", envOr(getenv, "LOCALHUB_PARTITIONS", "4"), "partitions of the built-in events endpoint (env LOCALHUB_PARTITIONS)")
	retention := fs.String("retention", envOr(getenv, "LOCALHUB_RETENTION", "24h"), "retention of the built-in events endpoint (env LOCALHUB_RETENTION)")
	throttle := fs.String("throttle", envOr(getenv, "LOCALHUB_THROTTLE", "off"), "off, or s1 to answer 429 past one S1 unit's quotas, for testing callers' throttling handling (env LOCALHUB_THROTTLE)")
	level := fs.String("log-level", envOr(getenv, "LOCALHUB_LOG_LEVEL", "info"), "debug, info, warn or error (env LOCALHUB_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.dataDir = *dataDir
	var err error
	if c.partitions, err = strconv.Atoi(*partitions); err != nil || c.partitions < 1 || c.partitions > 32 {
		return config{}, fmt.Errorf("--partitions must be a number from 1 to 32, got %q", *partitions)
	}
	if c.retention, err = time.ParseDuration(*retention); err != nil || c.retention <= 0 {
		return config{}, fmt.Errorf("--retention must be a positive duration such as 24h, got %q", *retention)
	}
	switch *throttle {
	case "off":
	case "s1":
		c.quotas = localhub.S1Quotas()
	default:
		return config{}, fmt.Errorf("--throttle must be off or s1, got %q", *throttle)
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return config{}, fmt.Errorf("--log-level: %w", err)
	}
	if c.hostname == "" {
		return config{}, errors.New("--hostname must not be empty")
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

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
