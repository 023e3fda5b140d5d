package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
	"github.com/iothub-reboot/devmgmt/simulator/internal/fleet"
)

// config is the simulator's command line. Every flag falls back to the
// environment variable SIMULATOR_<FLAG> (dashes as underscores), which keeps
// connection strings out of the process list.
type config struct {
	deviceConnectionStrings []string // arguments and --devices-file
	devicesFile             string
	serviceConnectionString string
	count                   int
	prefix                  string

	mqttAddr        string
	serviceEndpoint string
	caFile          string

	rebootDuration     time.Duration
	rebootJitter       time.Duration
	backoff            device.Backoff
	connectConcurrency int
	connectRate        float64
	progress           time.Duration
	seed               uint64
	faults             fleet.Faults
	logLevel           slog.Level
}

const usageHead = `usage: simulator [flags] [DEVICE-CONNECTION-STRING ...]

Simulates devices that handle the "reboot" direct method and report
iothubDM.reboot.{lastReboot,status,requestId} in their twins.

Devices come from connection strings (arguments, --devices-file), or are
created or reused through the registry with --service-connection-string and
--count. Against Azure IoT Hub no other flag is needed; for the local hub add
--mqtt-addr, --service-endpoint and --ca-file from its banner.

Every flag can also be set as SIMULATOR_<FLAG>, e.g.
SIMULATOR_SERVICE_CONNECTION_STRING.

Flags:
`

func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("simulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	var c config
	fs.StringVar(&c.devicesFile, "devices-file", "", "file of device connection strings, one a line (# starts a comment)")
	fs.StringVar(&c.serviceConnectionString, "service-connection-string", "", "service connection string of a policy with RegistryWrite (registryReadWrite, iothubowner), used with --count")
	fs.IntVar(&c.count, "count", 0, "create (or reuse) this many devices through the registry")
	fs.StringVar(&c.prefix, "prefix", "sim-", "device id prefix for --count: PREFIX0001, PREFIX0002, ...")
	fs.StringVar(&c.mqttAddr, "mqtt-addr", "", "host:port devices dial instead of HostName:8883 (the local hub's MQTT address)")
	fs.StringVar(&c.serviceEndpoint, "service-endpoint", "", "REST API base URL instead of https://HostName (the local hub's https://127.0.0.1:PORT)")
	fs.StringVar(&c.caFile, "ca-file", "", "PEM CA certificate to trust besides the Azure roots (the local hub's tls/ca.pem)")
	fs.DurationVar(&c.rebootDuration, "reboot-duration", 5*time.Second, "how long a device stays offline while it reboots")
	fs.DurationVar(&c.rebootJitter, "reboot-jitter", 2*time.Second, "random spread of the reboot duration, plus or minus")
	fs.DurationVar(&c.backoff.Min, "backoff-min", device.DefaultBackoffMin, "first reconnect back-off")
	fs.DurationVar(&c.backoff.Max, "backoff-max", device.DefaultBackoffMax, "longest reconnect back-off")
	fs.IntVar(&c.connectConcurrency, "connect-concurrency", fleet.DefaultConnectConcurrency, "connection attempts in flight at once across the fleet")
	fs.Float64Var(&c.connectRate, "connect-rate", 0, "connection attempts started per second across the fleet, 0 for no limit (an Azure IoT Hub S1 hub admits the higher of 100 a second or 12 a second per unit)")
	fs.DurationVar(&c.progress, "progress", 10*time.Second, "interval of the progress line on stdout (0: only the final one)")
	fs.Uint64Var(&c.seed, "seed", 0, "seed for faults and jitter, to repeat a run (0: pick one and print it)")
	fs.Float64Var(&c.faults.OfflineShare, "offline-share", 0, "share of devices, 0 to 1, that never connect")
	fs.Float64Var(&c.faults.FailShare, "fail-share", 0, "share of reboots, 0 to 1, that fail (reply 500, report status failed)")
	fs.Float64Var(&c.faults.NeverBackShare, "never-back-share", 0, "share of reboots, 0 to 1, after which the device never reconnects")
	fs.DurationVar(&c.faults.MethodLatency, "method-latency", 0, "delay before every direct-method reply")
	level := fs.String("log-level", "info", "debug, info, warn or error (logs go to stderr)")

	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if err := applyEnv(fs, getenv); err != nil {
		return config{}, err
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return config{}, fmt.Errorf("--log-level: %w", err)
	}
	c.deviceConnectionStrings = fs.Args()
	if c.devicesFile != "" {
		more, err := readDevicesFile(c.devicesFile)
		if err != nil {
			return config{}, err
		}
		c.deviceConnectionStrings = append(c.deviceConnectionStrings, more...)
	}
	return c, c.validate()
}

// applyEnv sets every flag not given on the command line from its
// SIMULATOR_* variable.
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
	return "SIMULATOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func readDevicesFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--devices-file: %w", err)
	}
	var css []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			css = append(css, line)
		}
	}
	return css, nil
}

func (c config) validate() error {
	switch {
	case c.count < 0:
		return errors.New("--count must not be negative")
	case c.count > 0 && c.serviceConnectionString == "":
		return errors.New("--count needs --service-connection-string (a policy with RegistryWrite)")
	case c.count == 0 && c.serviceConnectionString != "":
		return errors.New("--service-connection-string needs --count")
	case c.count == 0 && len(c.deviceConnectionStrings) == 0:
		return errors.New("no devices: give device connection strings, --devices-file, or --service-connection-string with --count")
	case c.rebootDuration < 0 || c.rebootJitter < 0 || c.faults.MethodLatency < 0:
		return errors.New("durations must not be negative")
	case c.backoff.Min <= 0 || c.backoff.Max < c.backoff.Min:
		return errors.New("--backoff-min must be positive and at most --backoff-max")
	case c.connectConcurrency < 1:
		return errors.New("--connect-concurrency must be at least 1")
	case !(c.connectRate >= 0):
		return errors.New("--connect-rate must not be negative")
	case c.progress < 0:
		return errors.New("--progress must not be negative")
	}
	for name, share := range map[string]float64{"offline-share": c.faults.OfflineShare, "fail-share": c.faults.FailShare, "never-back-share": c.faults.NeverBackShare} {
		if !(share >= 0 && share <= 1) {
			return fmt.Errorf("--%s must be from 0 to 1, got %v", name, share)
		}
	}
	return nil
}
