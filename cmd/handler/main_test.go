package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These tests run the built executable as the Functions host does: start
// it with FUNCTIONS_CUSTOMHANDLER_PORT and the app settings in its
// environment, send GET / until it answers, stop it with SIGTERM. The port
// is 0: the handler binds a free port itself and logs it, so no test picks
// a port, releases it and hopes nobody takes it before the handler does.

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

// handlerProcess is the running executable and its output.
type handlerProcess struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	// addr receives the address from the "handler listening" line.
	addr    chan string
	outDone chan struct{}
}

var listeningAddr = regexp.MustCompile(`msg="handler listening" addr=(\S+)`)

// startHandler starts bin as the host would, with env as its whole
// environment.
func startHandler(t testing.TB, bin string, env ...string) *handlerProcess {
	t.Helper()
	p := &handlerProcess{cmd: exec.Command(bin), addr: make(chan string, 1), outDone: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = &p.stderr
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		defer close(p.outDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.stdout.Write(append(sc.Bytes(), '\n'))
			if m := listeningAddr.FindSubmatch(sc.Bytes()); m != nil {
				p.addr <- string(m[1])
			}
		}
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.wait()
		}
	})
	return p
}

// listening waits for the handler to log its address.
func (p *handlerProcess) listening(t testing.TB) string {
	t.Helper()
	select {
	case addr := <-p.addr:
		return addr
	case <-p.outDone:
		t.Fatalf("the handler exited without listening; stderr: %s", p.stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatalf("the handler did not listen within 10s; stderr: %s", p.stderr.String())
	}
	return ""
}

// wait waits for the process, once its output is read.
func (p *handlerProcess) wait() error {
	<-p.outDone
	return p.cmd.Wait()
}

// ready sends the host's readiness probe, GET /, and returns its status.
func ready(t testing.TB, addr string) int {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/")
	require.NoError(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestHandlerProcess(t *testing.T) {
	bin := buildHandler(t)

	t.Run("ready on GET /, stops cleanly on SIGTERM", func(t *testing.T) {
		p := startHandler(t, bin, "FUNCTIONS_CUSTOMHANDLER_PORT=0", "IOTHUB_CONNECTION_STRING="+testConnStr)
		addr := p.listening(t)
		require.True(t, strings.HasPrefix(addr, "127.0.0.1:"), "loopback only: %s", addr)
		require.Equal(t, http.StatusOK, ready(t, addr))
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, p.wait(), "stderr: %s", p.stderr.String())
		require.Contains(t, p.stdout.String(), "handler stopped")
		require.NotContains(t, p.stdout.String(), "c2VjcmV0")
		require.Empty(t, p.stderr.String())
	})

	t.Run("refuses to start without IoT Hub access", func(t *testing.T) {
		p := startHandler(t, bin, "FUNCTIONS_CUSTOMHANDLER_PORT=0")
		err := p.wait()
		var exitErr *exec.ExitError
		require.True(t, errors.As(err, &exitErr), "want a non-zero exit, got %v", err)
		require.Equal(t, 1, exitErr.ExitCode(), "not 0 (the host would not restart) nor 200 (restart at once)")
		require.Contains(t, p.stderr.String(), "handler: configuration: no IoT Hub access configured: set IOTHUB_CONNECTION_STRING")
	})
}

// BenchmarkColdStart measures exec → first answer on GET /, with a
// connection string and with the managed identity configuration used in
// Azure (no token is fetched before the first hub call). The host probes
// every 25 ms, so its own wait rounds up to that.
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
				start := time.Now()
				p := startHandler(b, bin, append([]string{"FUNCTIONS_CUSTOMHANDLER_PORT=0"}, cfg.env...)...)
				require.Equal(b, http.StatusOK, ready(b, p.listening(b)), "stderr: %s", p.stderr.String())
				starts = append(starts, time.Since(start))
				require.NoError(b, p.cmd.Process.Signal(syscall.SIGTERM))
				require.NoError(b, p.wait())
			}
			slices.Sort(starts)
			b.ReportMetric(float64(starts[len(starts)/2])/float64(time.Millisecond), "p50-ms")
			b.ReportMetric(float64(starts[len(starts)-1])/float64(time.Millisecond), "max-ms")
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the process's output goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
