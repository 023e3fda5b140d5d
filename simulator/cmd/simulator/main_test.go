package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/simulator/internal/hubrest"
	"github.com/iothub-reboot/devmgmt/simulator/internal/hubtest"
)

var localhubBin string

func TestMain(m *testing.M) { os.Exit(hubtest.Main(m, &localhubBin)) }

// lockedBuffer collects run's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRunAgainstTheLocalHub runs the command as a user would from the
// hub's banner: it creates the devices, connects the ones not offline, and
// reboots on request until stopped.
func TestRunAgainstTheLocalHub(t *testing.T) {
	hub := hubtest.Start(t, localhubBin)
	var stdout, stderr lockedBuffer
	args := []string{
		"--count", "2", "--prefix", "e2e-", "--offline-share", "0.5", "--seed", "3",
		"--mqtt-addr", hub.MQTTAddr, "--service-endpoint", hub.HTTPSURL, "--ca-file", hub.CAFile,
		"--reboot-duration", "200ms", "--reboot-jitter", "0", "--progress", "0", "--log-level", "warn",
	}
	getenv := env(map[string]string{"SIMULATOR_SERVICE_CONNECTION_STRING": hub.Policies["registryReadWrite"]})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, &stdout, &stderr) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
		require.Contains(t, stdout.String(), "stopped devices=2 offline=1 connected=0")
		require.Empty(t, stderr.String(), "no warnings")
	}()

	// One of the two devices is online and reports; the other never connects.
	var online string
	err := hubtest.Poll(ctx, 30*time.Second, func() bool {
		for _, id := range []string{"e2e-0001", "e2e-0002"} {
			if tw, err := hub.Twin(ctx, id); err == nil && tw.Properties.Reported.IothubDM.Reboot.Status == "running" {
				online = id
			}
		}
		return online != ""
	})
	require.NoError(t, err, "a device came online")
	offline := map[string]string{"e2e-0001": "e2e-0002", "e2e-0002": "e2e-0001"}[online]
	require.Contains(t, stdout.String(), "simulating 2 devices (1 offline), seed 3")

	res, err := hub.InvokeMethod(ctx, online, "reboot", map[string]any{"requestId": "cli-1"}, 5)
	require.NoError(t, err)
	require.Equal(t, 200, res.Status)
	tw, err := hub.AwaitTwin(ctx, online, 15*time.Second, func(tw hubtest.Twin) bool {
		rb := tw.Properties.Reported.IothubDM.Reboot
		return rb.Status == "running" && rb.RequestID != nil && *rb.RequestID == "cli-1"
	})
	require.NoError(t, err, "rebooted and back: %+v", tw.Properties.Reported.IothubDM.Reboot)

	_, err = hub.InvokeMethod(ctx, offline, "reboot", nil, 5)
	var re *hubrest.ResponseError
	require.True(t, errors.As(err, &re), "%v", err)
	require.Equal(t, "DeviceNotOnline", re.ErrorCode)
}

// TestRunReusesDevices: a second run with the same prefix reuses the
// devices (409 DeviceAlreadyExists, then their keys) instead of failing.
func TestRunReusesDevices(t *testing.T) {
	hub := hubtest.Start(t, localhubBin)
	first, err := hub.Service().EnsureDevice(t.Context(), "again-0001")
	require.NoError(t, err)
	_, key, _ := strings.Cut(first, "SharedAccessKey=")

	var stdout lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	args := []string{"--service-connection-string", hub.Policies["iothubowner"], "--count", "1", "--prefix", "again-",
		"--mqtt-addr", hub.MQTTAddr, "--service-endpoint", hub.HTTPSURL, "--ca-file", hub.CAFile, "--progress", "0", "--log-level", "error"}
	go func() { done <- run(ctx, args, env(nil), &stdout, &lockedBuffer{}) }()
	_, err = hub.AwaitTwin(ctx, "again-0001", 30*time.Second, func(tw hubtest.Twin) bool { return tw.ConnectionState == "Connected" })
	require.NoError(t, err, "connected with the existing key")
	cancel()
	require.NoError(t, <-done)
	again, err := hub.Service().EnsureDevice(t.Context(), "again-0001")
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(again, key), "the key did not change")
}

func TestRunRefusesBadCAFile(t *testing.T) {
	err := run(t.Context(), []string{"--ca-file", "/nonexistent/ca.pem", devCS}, env(nil), &lockedBuffer{}, &lockedBuffer{})
	require.ErrorContains(t, err, "--ca-file")
}

func TestRunNeverEchoesAConnectionString(t *testing.T) {
	bad := "HostName=localhost;DeviceId=d1;SharedAccessKey=" // no key
	err := run(t.Context(), []string{bad}, env(nil), &lockedBuffer{}, &lockedBuffer{})
	require.ErrorContains(t, err, "device 1")
	require.NotContains(t, err.Error(), "HostName=")
}
