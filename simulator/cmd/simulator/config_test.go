package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
	"github.com/iothub-reboot/devmgmt/simulator/internal/fleet"
)

const devCS = "HostName=localhost;DeviceId=d1;SharedAccessKey=a2V5"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig([]string{devCS}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, config{
		deviceConnectionStrings: []string{devCS},
		prefix:                  "sim-",
		rebootDuration:          5 * time.Second,
		rebootJitter:            2 * time.Second,
		backoff:                 device.Backoff{Min: time.Second, Max: 30 * time.Second},
		connectConcurrency:      fleet.DefaultConnectConcurrency,
		progress:                10 * time.Second,
	}, c)
}

func TestLoadConfigFlagsAndEnvironment(t *testing.T) {
	e := env(map[string]string{
		"SIMULATOR_SERVICE_CONNECTION_STRING": "HostName=h;SharedAccessKeyName=p;SharedAccessKey=a2V5",
		"SIMULATOR_COUNT":                     "7",
		"SIMULATOR_FAIL_SHARE":                "0.2",
		"SIMULATOR_METHOD_LATENCY":            "3s",
		"SIMULATOR_PREFIX":                    "from-env-",
	})
	c, err := loadConfig([]string{"--prefix", "from-flag-", "--offline-share", "0.1", "--seed", "42", "--mqtt-addr", "127.0.0.1:8883", "--log-level", "debug"}, e, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 7, c.count)
	require.Equal(t, "from-flag-", c.prefix, "a flag beats the environment")
	require.Equal(t, fleet.Faults{OfflineShare: 0.1, Faults: device.Faults{FailShare: 0.2, MethodLatency: 3 * time.Second}}, c.faults)
	require.Equal(t, uint64(42), c.seed)
	require.Equal(t, "127.0.0.1:8883", c.mqttAddr)
	require.Equal(t, "HostName=h;SharedAccessKeyName=p;SharedAccessKey=a2V5", c.serviceConnectionString)
}

func TestLoadConfigDevicesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.txt")
	require.NoError(t, os.WriteFile(path, []byte("# my devices\n"+devCS+"\n\n  HostName=localhost;DeviceId=d2;SharedAccessKey=a2V5  \r\n"), 0o600))
	c, err := loadConfig([]string{"--devices-file", path, "HostName=localhost;DeviceId=d0;SharedAccessKey=a2V5"}, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, []string{
		"HostName=localhost;DeviceId=d0;SharedAccessKey=a2V5",
		devCS,
		"HostName=localhost;DeviceId=d2;SharedAccessKey=a2V5",
	}, c.deviceConnectionStrings)
}

func TestLoadConfigRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no devices", nil, nil, "no devices"},
		{"count without service", []string{"--count", "3"}, nil, "--count needs --service-connection-string"},
		{"service without count", []string{"--service-connection-string", "x"}, nil, "needs --count"},
		{"share above one", []string{"--fail-share", "1.5", devCS}, nil, "--fail-share must be from 0 to 1"},
		{"negative share", []string{"--offline-share", "-0.1", devCS}, nil, "--offline-share must be from 0 to 1"},
		{"back-off inverted", []string{"--backoff-min", "10s", "--backoff-max", "1s", devCS}, nil, "--backoff-min"},
		{"negative duration", []string{"--reboot-duration", "-1s", devCS}, nil, "must not be negative"},
		{"no concurrency", []string{"--connect-concurrency", "0", devCS}, nil, "--connect-concurrency"},
		{"negative rate", []string{"--connect-rate", "-1", devCS}, nil, "--connect-rate must not be negative"},
		{"rate not a number", []string{"--connect-rate", "NaN", devCS}, nil, "--connect-rate must not be negative"},
		{"bad environment value", []string{devCS}, map[string]string{"SIMULATOR_COUNT": "many"}, "SIMULATOR_COUNT"},
		{"bad log level", []string{"--log-level", "loud", devCS}, nil, "--log-level"},
		{"missing devices file", []string{"--devices-file", "/nonexistent/devices.txt"}, nil, "--devices-file"},
		{"unknown flag", []string{"--nope"}, nil, "flag provided but not defined"},
	}
	for _, tt := range tests {
		_, err := loadConfig(tt.args, env(tt.env), io.Discard)
		require.ErrorContains(t, err, tt.want, tt.name)
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	_, err := loadConfig([]string{"-h"}, env(nil), io.Discard)
	require.ErrorIs(t, err, flag.ErrHelp)
}

func TestEnvKey(t *testing.T) {
	require.Equal(t, "SIMULATOR_SERVICE_CONNECTION_STRING", envKey("service-connection-string"))
	require.Equal(t, "SIMULATOR_COUNT", envKey("count"))
}
