package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// TestMain lets the test binary serve as the harness's child processes,
// as the perf binary does.
func TestMain(m *testing.M) {
	if r := os.Getenv(roleEnv); r != "" {
		os.Exit(runChild(context.Background(), r))
	}
	os.Exit(m.Run())
}

// The floor must cost what the hub costs on the wire: same TLS version,
// cipher suite, key exchange and certificate, for a client with Go's
// defaults.
func TestFloorTLSMatchesHub(t *testing.T) {
	dir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = hub.Close() })
	floor, err := floorTLS(dir)
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", floor)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()

	state := func(addr string) tls.ConnectionState {
		cfg := hub.TLSConfig()
		cfg.ServerName = "localhost"
		c, err := tls.Dial("tcp", addr, cfg)
		require.NoError(t, err)
		defer c.Close()
		return c.ConnectionState()
	}
	h, f := state(hub.MQTTAddr()), state(ln.Addr().String())
	require.Equal(t, h.Version, f.Version)
	require.Equal(t, h.CipherSuite, f.CipherSuite)
	require.Equal(t, h.CurveID, f.CurveID)
	require.Equal(t, h.PeerCertificates[0].Raw, f.PeerCertificates[0].Raw)
}

// A small run of the whole harness: hub, floor, paho fleets, callers and
// the report, with every child process real.
func TestScenarioEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: starts a hub, a broker and two device fleets")
	}
	o := options{
		devices: []int{8}, inFlight: 4, duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond,
		rounds: 1, serial: 20, concurrency: 4, simulator: "off", methods: true, repo: "../..",
	}
	sc, err := runScenario(t.Context(), o, 8, t.TempDir(), false, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NotEmpty(t, sc.hubLoad)
	require.Positive(t, sc.hubLoad[0].calls)
	require.Positive(t, sc.floorLoad[0].calls)
	require.Len(t, sc.hubSerial, 20)
	require.Len(t, sc.floorSerial, 20)
	require.Positive(t, sc.hubPaho.Goroutines, "the hub holds goroutines for the connected devices")

	md := (&report{machine: describeMachine("../.."), scenarios: []scenario{sc}}).markdown()
	for _, want := range []string{"| metric | devices |", "direct-method round trips/s, 64 in flight | 8 |", "one call in flight, p99", "(bare broker)"} {
		require.Contains(t, md, want)
	}
}

func TestMethodReply(t *testing.T) {
	for req, want := range map[string]string{
		"$iothub/methods/POST/ping/?$rid=17": "$iothub/methods/res/200/?$rid=17",
		"d000001/methods/POST/ping/?$rid=9":  "d000001/methods/res/200/?$rid=9",
	} {
		got, ok := methodReply(req)
		require.True(t, ok, req)
		require.Equal(t, want, got)
	}
	for _, bad := range []string{"$iothub/twin/res/200/?$rid=1", "d/methods/POST/ping"} {
		_, ok := methodReply(bad)
		require.False(t, ok, bad)
	}
	// Same length on both paths, so both carry packets of the same size.
	require.Len(t, floorRequestTopic(deviceID(0), "ping", 17), len("$iothub/methods/POST/ping/?$rid=17"))
}

func TestConnectedLine(t *testing.T) {
	took, ok := connectedLine("2025-06-01T12:00:04Z connected devices=1000 offline=0 took=1.912s mem=58.1MB")
	require.True(t, ok)
	require.Equal(t, 1912*time.Millisecond, took)
	_, ok = connectedLine("2025-06-01T12:00:10Z progress devices=1000 offline=0 connected=1000")
	require.False(t, ok)
}

func TestThousands(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567.4: "1,234,567", -4321: "-4,321"} {
		require.Equal(t, want, thousands(v))
	}
}

func TestReadStatusAndCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("SKIP: no /proc on this system")
	}
	st, err := readStatus(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, st.rss)
	require.Positive(t, st.anon)
	_, err = cpuTime(os.Getpid())
	require.NoError(t, err)
}

func TestFirstLines(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "all.txt")
	require.NoError(t, os.WriteFile(src, []byte("a\nb\nc\n"), 0o600))
	got, err := firstLines(src, 2, dir)
	require.NoError(t, err)
	b, err := os.ReadFile(got)
	require.NoError(t, err)
	require.Equal(t, "a\nb\n", string(b))
	_, err = firstLines(src, 5, dir)
	require.Error(t, err)
}

func TestParseOptions(t *testing.T) {
	o, err := parseOptions([]string{"-devices", "100, 2000", "-node", "off"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []int{100, 2000}, o.devices)
	for _, bad := range [][]string{{"-devices", "1"}, {"-devices", "x"}, {"-node", "maybe"}, {"-rounds", "0"}} {
		_, err := parseOptions(bad, io.Discard)
		require.Error(t, err, strings.Join(bad, " "))
	}
}
