package main

import (
	"bytes"
	"context"
	"flag"
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
	for _, want := range []string{"Prefer: respond-async", m[1] + "/api/reboots", "lastReboot=", "function keys are not checked"} {
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
	deadline := time.After(waitFor)
	for {
		w.mu.Lock()
		content, wake := w.buf.String(), w.wake
		w.mu.Unlock()
		if strings.Contains(content, marker) {
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
	cmd.Env = append(os.Environ(), "HOSTNAME=from-the-shell")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasSuffix(last, "bin/localdev"), "the last command starts localdev: %s", last)
	for _, w := range want {
		require.Contains(t, last, w)
	}

	cmd = exec.Command(mk, "-n", "-s", "-C", funchosttest.RepoRoot(t), "run")
	cmd.Env = append(os.Environ(), "HOSTNAME=from-the-shell", "DEVICES=9")
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.NotContains(t, string(out), "LOCALDEV_", "knobs only in the environment are not passed")
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
