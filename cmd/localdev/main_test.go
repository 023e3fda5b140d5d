package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

const waitFor = 30 * time.Second

// TestRun starts the whole local system in process on random ports, reads
// the try-block, calls the reboot route the way its curl line does, and
// stops everything by cancelling ctx.
func TestRun(t *testing.T) {
	app := funchosttest.AppRoot(t)
	fakeSim := filepath.Join(t.TempDir(), "fakesim")
	funchosttest.Build(t, funchosttest.RepoRoot(t), "./cmd/localdev/testdata/fakesim", fakeSim)

	tests := []struct {
		name       string
		simulator  string
		env        map[string]string
		device     string
		wantStderr []string // awaited while running
		wantAtExit []string
	}{
		{
			name:       "without simulator",
			simulator:  filepath.Join(t.TempDir(), "missing"),
			device:     "sim-0001",
			wantStderr: []string{"device simulator not found", "make build"},
		},
		{
			name:      "with a simulator, prefix from the environment",
			simulator: fakeSim,
			env:       map[string]string{"LOCALDEV_PREFIX": "dev-", "LOCALDEV_DEVICES": "2"},
			device:    "dev-0001",
			wantStderr: []string{
				"simulator | fakesim started connectionString=registryReadWrite args=--count 2 --prefix dev- --mqtt-addr 127.0.0.1:",
				"--service-endpoint https://127.0.0.1:", "--ca-file " + "/",
			},
			wantAtExit: []string{"simulator | fakesim stopping", "device simulator stopped"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{
				"--data-dir", t.TempDir(),
				"--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
				"--amqp-addr", "127.0.0.1:0", "--amqp-plain-addr", "127.0.0.1:0",
				"--script-root", app, "--simulator", tt.simulator,
			}
			getenv := func(k string) string { return tt.env[k] }
			stdout := newWatchedBuffer()
			stderr := newWatchedBuffer()
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
				}
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, getenv, stdout, stderr) }()

			appURL := awaitTryBlock(t, stdout, done, tt.device)
			stderr.await(t, done, "the handler's own output, prefixed", `handler   | time=`)
			for _, want := range tt.wantStderr {
				stderr.await(t, done, want, want)
			}

			resp, err := http.Post(appURL+"/api/devices/"+tt.device+"/reboot", "application/json", nil)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusNotFound, resp.StatusCode, "body: %s", body)
			require.Contains(t, string(body), "DeviceNotFound", "the handler answered through the hub")

			cancel()
			awaitReturn(t, done)
			for _, want := range tt.wantAtExit {
				require.Contains(t, stderr.String(), want)
			}
			requireStopOrder(t, stderr.String(), tt.simulator == fakeSim)
		})
	}
}

// awaitTryBlock waits for the try-block, checks it and returns the
// function app's URL from its reboot line.
func awaitTryBlock(t *testing.T, stdout *watchedBuffer, done <-chan error, device string) string {
	t.Helper()
	block := stdout.await(t, done, "the try-block", "TwinChangeProcessor logs one line")
	m := regexp.MustCompile(`curl -s -X POST (http://127\.0\.0\.1:\d+)/api/devices/` + device + `/reboot`).FindStringSubmatch(block)
	require.NotNil(t, m, "no reboot curl line for %s in:\n%s", device, block)
	for _, want := range []string{"Prefer: respond-async", m[1] + "/api/reboots", "reboot reported deviceId=" + device + " lastReboot=", "function keys are not checked"} {
		require.Contains(t, block, want)
	}
	return m[1]
}

// awaitReturn waits for run to return nil after its context ended.
func awaitReturn(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("run did not return after cancel")
	}
}

// requireStopOrder checks that the log says each part stopped, in the
// reverse order of the start, and then that everything did, with no part
// waiting out a grace period.
func requireStopOrder(t *testing.T, log string, simulated bool) {
	t.Helper()
	for _, slow := range []string{"killing it", "still in flight", "level=ERROR"} {
		require.NotContains(t, log, slow)
	}
	order := []string{`msg="shutting down"`, `msg="Functions host stopped" component=funchost took=`,
		`msg="local IoT Hub stopped" component=localhub took=`, `msg="local system stopped" took=`}
	if simulated {
		order = append([]string{order[0], `msg="device simulator stopped" took=`}, order[1:]...)
	}
	at := 0
	for _, line := range order {
		require.Equal(t, 1, strings.Count(log, line), "once: %s", line)
		i := strings.Index(log, line)
		require.Greater(t, i, at, "%s comes after the previous stop line", line)
		at = i
	}
}

func TestRunWithoutApp(t *testing.T) {
	err := run(t.Context(), []string{"--script-root", t.TempDir(), "--data-dir", t.TempDir()}, func(string) string { return "" }, io.Discard, io.Discard)
	require.ErrorContains(t, err, "no function app in")
	require.ErrorContains(t, err, "make build")
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			require.Equal(t, config{dataDir: ".localhub", hostname: "localhost", mqttAddr: "127.0.0.1:8883", httpsAddr: "127.0.0.1:8443",
				amqpAddr: "127.0.0.1:5671", amqpPlain: "127.0.0.1:5672",
				httpAddr: "127.0.0.1:7071", scriptRoot: "dist/local", simulator: "bin/simulator", devices: 3, prefix: "sim-"}, c)
		}},
		{name: "flags win over the environment", args: []string{"--http-addr", "127.0.0.1:9999", "--devices", "5"},
			env: map[string]string{"LOCALDEV_HTTP_ADDR": "127.0.0.1:1", "LOCALDEV_DATA_DIR": "/tmp/x", "LOCALDEV_LOG_LEVEL": "debug"},
			check: func(t *testing.T, c config) {
				require.Equal(t, "127.0.0.1:9999", c.httpAddr)
				require.Equal(t, 5, c.devices)
				require.Equal(t, "/tmp/x", c.dataDir)
				require.Equal(t, "DEBUG", c.logLevel.String())
			}},
		{name: "bad env number", env: map[string]string{"LOCALDEV_DEVICES": "many"}, wantErr: "LOCALDEV_DEVICES"},
		{name: "negative devices", args: []string{"--devices", "-1"}, wantErr: "negative"},
		{name: "bad level", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	p := &prefixWriter{prefix: "sim | ", w: &out}
	p.Write([]byte("one\ntw"))
	p.Write([]byte("o\nthree"))
	p.flush()
	require.Equal(t, "sim | one\nsim | two\nsim | three\n", out.String())
}

func TestConsoleHandler(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(consoleHandler{next: slog.NewTextHandler(&out, nil), out: &out}).With("component", "funchost")
	logger.Info(`time=x level=INFO msg="reboot reported" deviceId=d`, "source", "handler", "stream", "stdout")
	logger.Info("host line", "source", "other")
	require.Equal(t, "handler   | time=x level=INFO msg=\"reboot reported\" deviceId=d\n", strings.SplitAfter(out.String(), "\n")[0])
	require.Contains(t, out.String(), `msg="host line" component=funchost source=other`)
}

// watchedBuffer is an io.Writer whose content a test can await.
type watchedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func newWatchedBuffer() *watchedBuffer { return &watchedBuffer{wake: make(chan struct{})} }

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	close(w.wake)
	w.wake = make(chan struct{})
	return n, err
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// await waits until the content holds marker and returns all of it; it
// fails early when run returns.
func (w *watchedBuffer) await(t *testing.T, done <-chan error, what, marker string) string {
	t.Helper()
	return w.awaitFunc(t, done, what, func(content string) bool { return strings.Contains(content, marker) })
}

// awaitFunc waits until ok(content) and returns the content; it fails
// early when run returns.
func (w *watchedBuffer) awaitFunc(t *testing.T, done <-chan error, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		w.mu.Lock()
		content, wake := w.buf.String(), w.wake
		w.mu.Unlock()
		if ok(content) {
			return content
		}
		select {
		case <-wake:
		case err := <-done:
			t.Fatalf("run returned (%v) before %s", err, what)
		case <-deadline:
			t.Fatalf("no %s within %s", what, waitFor)
		}
	}
}

// TestRunReboot is make run's stack end to end with the real simulator:
// a device reboots on request, comes back with a new lastReboot, the hub
// routes the twin change to its built-in endpoint, the local host reads
// it over AMQP with azeventhubs, and the log has exactly one `reboot
// reported` line for it, the handler's output and the host's relaying of
// the invocation's Logs together; the report the device makes when its
// reboot starts, which carries the previous lastReboot, adds none.
//
// Then the stack stops, the hub alone runs on the same data dir while the
// device reports another boot, and the stack starts again: the host
// resumes from its checkpoints, so it processes the report made while it
// was down (host.json's fromEnd would skip it) and none of the events it
// had processed (fromStart would repeat them).
func TestRunReboot(t *testing.T) {
	app := funchosttest.AppRoot(t)
	repo := funchosttest.RepoRoot(t)
	sim := filepath.Join(t.TempDir(), "simulator")
	funchosttest.Build(t, filepath.Join(repo, "simulator"), "./cmd/simulator", sim)
	// The simulator reads SIMULATOR_* from the environment localdev passes on.
	t.Setenv("SIMULATOR_REBOOT_DURATION", "200ms")
	t.Setenv("SIMULATOR_REBOOT_JITTER", "0s")
	t.Setenv("SIMULATOR_PROGRESS", "0s")

	dataDir := t.TempDir()
	args := []string{
		"--data-dir", dataDir,
		"--mqtt-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--amqp-addr", "127.0.0.1:0", "--amqp-plain-addr", "127.0.0.1:0",
		"--script-root", app, "--simulator", sim,
	}
	getenv := func(k string) string { return map[string]string{"LOCALDEV_DEVICES": "1"}[k] }
	stdout, stderr := newWatchedBuffer(), newWatchedBuffer()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, stdout, stderr) }()

	const device = "sim-0001"
	appURL := awaitTryBlock(t, stdout, done, device)
	stderr.await(t, done, "the simulated device", `msg="devices ready" count=1`)
	var before string
	require.Eventually(t, func() bool {
		before, _ = reportedLastReboot(appURL, device)
		return before != ""
	}, waitFor, 20*time.Millisecond, "the device reports its boot")

	resp, err := http.Post(appURL+"/api/devices/"+device+"/reboot", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	back := regexp.MustCompile(`simulator \| .*msg="back from reboot" deviceId=` + device + ` lastReboot=(\S+)`)
	log := stderr.await(t, done, "the device back from its reboot", `msg="back from reboot"`)
	m := back.FindStringSubmatch(log)
	require.NotNil(t, m, "no back-from-reboot line")
	after := m[1]
	require.NotEqual(t, before, after)

	// The invocation that logged the new lastReboot, then its end: every
	// line it makes is in the log once run has returned.
	var line string
	stderr.awaitFunc(t, done, "the processor's line for the new lastReboot", func(log string) bool {
		if lines := rebootReportedLines(t, log, device)[instant(t, after)]; len(lines) > 0 {
			line = lines[0]
			return true
		}
		return false
	})
	m = regexp.MustCompile(`invocationId=([0-9a-f-]{36})`).FindStringSubmatch(line)
	require.NotNil(t, m, "no invocation id in %s", line)
	stderr.await(t, done, "the end of that invocation", "Executed 'Functions.TwinChangeProcessor' (Succeeded)\" component=funchost function=TwinChangeProcessor invocationId="+m[1])
	cancel()
	awaitReturn(t, done)

	lines := rebootReportedLines(t, stderr.String(), device)
	require.Len(t, lines[instant(t, after)], 1, "one reboot reported line for the reboot, after the device is back:\n%s", strings.Join(lines[instant(t, after)], "\n"))
	require.LessOrEqual(t, len(lines[instant(t, before)]), 1, "the reboot's start (status rebooting, the previous lastReboot) adds no reboot reported line:\n%s", strings.Join(lines[instant(t, before)], "\n"))
	requireStopOrder(t, stderr.String(), true)

	// While the stack is down, the device reports a boot to the hub alone.
	const whileDown = "2031-01-02T03:04:05.678Z"
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir})
	require.NoError(t, err)
	deviceCS, err := hub.DeviceConnectionString(device)
	require.NoError(t, err)
	dev, err := localhubtest.StartDevice(hub, deviceCS, localhubtest.Reply(200, `{}`))
	require.NoError(t, err)
	_, err = dev.Report(`{"iothubDM":{"reboot":{"lastReboot":"` + whileDown + `","status":"running"}}}`)
	dev.Close()
	require.NoError(t, err)
	require.NoError(t, hub.Close())

	// The stack again, without devices.
	args[len(args)-1] = filepath.Join(t.TempDir(), "no-simulator")
	stdout2, stderr2 := newWatchedBuffer(), newWatchedBuffer()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("second run: stdout:\n%s\nstderr:\n%s", stdout2, stderr2)
		}
	})
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	done2 := make(chan error, 1)
	go func() { done2 <- run(ctx2, args, getenv, stdout2, stderr2) }()
	awaitTryBlock(t, stdout2, done2, device)
	stderr2.awaitFunc(t, done2, "the report made while the host was down", func(log string) bool {
		return len(rebootReportedLines(t, log, device)[instant(t, whileDown)]) > 0
	})
	cancel2()
	awaitReturn(t, done2)
	again := rebootReportedLines(t, stderr2.String(), device)
	require.Len(t, again[instant(t, whileDown)], 1)
	require.Len(t, again, 1, "nothing the host had checkpointed is processed again:\n%s", stderr2)
}

// instant parses a lastReboot, which the device, the report and the
// processor may each render with a different number of fraction digits.
func instant(t *testing.T, lastReboot string) int64 {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, lastReboot)
	require.NoError(t, err, "lastReboot %q", lastReboot)
	return at.UnixNano()
}

// reportedLastReboot is the device's lastReboot in the reboot report, ""
// until it has one.
func reportedLastReboot(appURL, device string) (string, error) {
	resp, err := http.Get(appURL + "/api/reboots")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /api/reboots: %s", resp.Status)
	}
	var page struct {
		Value []struct {
			DeviceID   string `json:"deviceId"`
			LastReboot string `json:"lastReboot"`
		} `json:"value"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return "", err
	}
	for _, d := range page.Value {
		if d.DeviceID == device {
			return d.LastReboot, nil
		}
	}
	return "", nil
}

// rebootReportedLines groups the log's `reboot reported` lines of device
// by lastReboot (see instant), whichever channel they came by: the
// handler's output or the host's relaying of an invocation's Logs.
func rebootReportedLines(t *testing.T, log, device string) map[int64][]string {
	t.Helper()
	lastReboot := regexp.MustCompile(`lastReboot=([^\s"]+)`)
	out := map[int64][]string{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "reboot reported") || !strings.Contains(line, "deviceId="+device) {
			continue
		}
		if m := lastReboot.FindStringSubmatch(line); m != nil {
			at := instant(t, m[1])
			out[at] = append(out[at], line)
		}
	}
	return out
}

// TestMakeRunKnobs: `make run KNOB=value` hands every localdev flag to
// localdev as LOCALDEV_KNOB, quoted for the shell, and leaves knobs that
// are only in make's environment out.
func TestMakeRunKnobs(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed: the Makefile's run target is not checked")
	}
	args := []string{"-n", "-s", "-C", funchosttest.RepoRoot(t), "run"}
	var want []string
	for _, name := range localdevFlags(t) {
		knob := strings.TrimPrefix(envKey(name), "LOCALDEV_")
		value := "v " + name + " it's"
		args = append(args, knob+"="+value)
		want = append(want, envKey(name)+"='v "+name+" it'\\''s'")
	}
	cmd := exec.Command(mk, args...)
	cmd.Env = append(environWithoutMake(), "HOSTNAME=from-the-shell")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasSuffix(last, "bin/localdev"), "the last command starts localdev: %s", last)
	for _, w := range want {
		require.Contains(t, last, w)
	}

	cmd = exec.Command(mk, "-n", "-s", "-C", funchosttest.RepoRoot(t), "run")
	cmd.Env = append(environWithoutMake(), "HOSTNAME=from-the-shell", "DEVICES=9")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, string(out), "LOCALDEV_", "knobs only in the environment are not passed")
}

// environWithoutMake is the environment without what a make running the
// tests (make test) passes to its children, command-line variables
// included, which would reach the make under test.
func environWithoutMake() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES":
		default:
			env = append(env, kv)
		}
	}
	return env
}

// localdevFlags lists localdev's flag names.
func localdevFlags(t *testing.T) []string {
	t.Helper()
	var stderr bytes.Buffer
	_, err := loadConfig([]string{"-h"}, func(string) string { return "" }, &stderr)
	require.ErrorIs(t, err, flag.ErrHelp)
	names := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(stderr.String(), -1)
	require.NotEmpty(t, names)
	var out []string
	for _, n := range names {
		out = append(out, n[1])
	}
	return out
}
