package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run the built executable as the Functions host does: start
// it with FUNCTIONS_CUSTOMHANDLER_PORT and the app settings in its
// environment, probe GET / until it answers, stop it with SIGTERM.

// testConnStr configures a hub that is never called here.
const testConnStr = "HostName=example.azure-devices.net;SharedAccessKeyName=serviceAndRegistryRead;SharedAccessKey=c2VjcmV0"

// buildHandler builds the handler binary once per test.
func buildHandler(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "handler")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// startHandler starts bin as the host would and returns the process with
// its output buffers.
func startHandler(t testing.TB, bin string, env ...string) (cmd *exec.Cmd, stdout, stderr *bytes.Buffer) {
	t.Helper()
	cmd = exec.Command(bin)
	cmd.Env = env
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	require.NoError(t, cmd.Start())
	return cmd, stdout, stderr
}

// probe sends GET / every interval until any HTTP answer, as the host's
// readiness check does (every 25 ms); it returns the status and the time
// since start.
func probe(t testing.TB, port string, start time.Time, interval time.Duration) (int, time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	for time.Since(start) < 10*time.Second {
		resp, err := client.Get("http://127.0.0.1:" + port + "/")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, time.Since(start)
		}
		time.Sleep(interval) // the host polls too: there is no event to wait for
	}
	t.Fatal("the handler never answered GET /")
	return 0, 0
}

func TestHandlerProcess(t *testing.T) {
	bin := buildHandler(t)

	t.Run("ready on GET /, stops cleanly on SIGTERM", func(t *testing.T) {
		port := freePort(t)
		cmd, stdout, stderr := startHandler(t, bin, "FUNCTIONS_CUSTOMHANDLER_PORT="+port, "IOTHUB_CONNECTION_STRING="+testConnStr)
		status, _ := probe(t, port, time.Now(), 25*time.Millisecond)
		require.Equal(t, http.StatusOK, status)
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, cmd.Wait(), "stderr: %s", stderr)
		require.Contains(t, stdout.String(), "handler listening")
		require.NotContains(t, stdout.String(), "c2VjcmV0")
		require.Empty(t, stderr.String())
	})

	t.Run("refuses to start without IoT Hub access", func(t *testing.T) {
		cmd, _, stderr := startHandler(t, bin, "FUNCTIONS_CUSTOMHANDLER_PORT="+freePort(t))
		err := cmd.Wait()
		var exitErr *exec.ExitError
		require.True(t, errors.As(err, &exitErr), "want a non-zero exit, got %v", err)
		require.Equal(t, 1, exitErr.ExitCode(), "not 0 (the host would not restart) nor 200 (restart at once)")
		require.Contains(t, stderr.String(), "handler: configuration: no IoT Hub access configured: set IOTHUB_CONNECTION_STRING")
	})
}

// BenchmarkColdStart measures exec → first answer on GET /, probing every
// 0.5 ms (the host probes every 25 ms, so its own wait rounds up to that),
// with a connection string and with the managed identity configuration
// used in Azure (no token is fetched before the first hub call).
func BenchmarkColdStart(b *testing.B) {
	bin := buildHandler(b)
	for _, cfg := range []struct {
		name string
		env  []string
	}{
		{"connection-string", []string{"IOTHUB_CONNECTION_STRING=" + testConnStr}},
		{"managed-identity", []string{"IOTHUB_HOSTNAME=example.azure-devices.net", "IDENTITY_ENDPOINT=http://127.0.0.1:1/msi/token", "IDENTITY_HEADER=x", "AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000000"}},
	} {
		b.Run(cfg.name, func(b *testing.B) {
			var starts []time.Duration
			for b.Loop() {
				port := freePort(b)
				start := time.Now()
				cmd, _, stderr := startHandler(b, bin, append([]string{"FUNCTIONS_CUSTOMHANDLER_PORT=" + port}, cfg.env...)...)
				status, took := probe(b, port, start, 500*time.Microsecond)
				require.Equal(b, http.StatusOK, status, "stderr: %s", stderr)
				starts = append(starts, took)
				require.NoError(b, cmd.Process.Signal(syscall.SIGTERM))
				require.NoError(b, cmd.Wait())
			}
			slices.Sort(starts)
			b.ReportMetric(float64(starts[len(starts)/2])/float64(time.Millisecond), "p50-ms")
			b.ReportMetric(float64(starts[len(starts)-1])/float64(time.Millisecond), "max-ms")
		})
	}
}
