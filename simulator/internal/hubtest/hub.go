// Package hubtest runs the local IoT Hub from the root module as a child
// process for integration tests and benchmarks, and makes the service
// calls they assert with. The simulator module never imports the root
// module: the hub is built from source with "go build".
package hubtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/iothub-reboot/devmgmt/simulator/internal/hubrest"
)

// RepoRoot finds the root module (github.com/iothub-reboot/devmgmt) above
// the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/iothub-reboot/devmgmt\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("root module github.com/iothub-reboot/devmgmt not found above the working directory")
		}
		dir = parent
	}
}

// Build compiles cmd/localhub from the root module (repoRoot) into dir and
// returns the binary's path.
func Build(repoRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "localhub")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/localhub")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build localhub: %w\n%s", err, out)
	}
	return bin, nil
}

// Main builds the local hub once for a test package, stores its path in
// *bin, runs the package's tests and returns their exit code:
//
//	func TestMain(m *testing.M) { os.Exit(hubtest.Main(m, &localhubBin)) }
func Main(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "simulator-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := RepoRoot()
	if err == nil {
		*bin, err = Build(root, dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Hub is a running local hub process. Its ports and data directory stay
// the same across Restart.
type Hub struct {
	Banner
	bin     string
	dataDir string
	stderr  string // file with the hub's log
	// listeners are bound once, on random loopback ports, and passed to
	// every incarnation of the hub (localhub serve --mqtt-addr fd:3 ...):
	// a restarted hub serves the same ports, which no other process can
	// take in between. They are, in order, MQTT, HTTPS, AMQP over TLS and
	// plain AMQP.
	listeners []*net.TCPListener

	cmd    *exec.Cmd
	exited chan struct{}
	svc    *hubrest.Client
}

// listenerFlags name the inherited sockets: exec.Cmd.ExtraFiles[i] is
// file descriptor 3+i in the hub.
var listenerFlags = []string{"--mqtt-addr", "--https-addr", "--amqp-addr", "--amqp-plain-addr"}

// Start runs the hub on random loopback ports with a temporary data
// directory. t.Cleanup stops it and closes its ports.
func Start(t testing.TB, bin string) *Hub {
	t.Helper()
	dir := t.TempDir()
	h := &Hub{
		bin:     bin,
		dataDir: filepath.Join(dir, "data"),
		stderr:  filepath.Join(dir, "localhub.log"),
	}
	t.Cleanup(func() {
		h.Stop(t)
		for _, ln := range h.listeners {
			_ = ln.Close()
		}
		if t.Failed() {
			if log, err := os.ReadFile(h.stderr); err == nil {
				t.Logf("localhub log:\n%s", lastBytes(log, 4000))
			}
		}
	})
	for range listenerFlags {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		h.listeners = append(h.listeners, ln)
	}
	h.start(t)
	return h
}

func (h *Hub) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(h.stderr, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatalf("hub log: %v", err)
	}
	defer logf.Close()
	args := []string{"serve", "--data-dir", h.dataDir, "--log-level", "warn"}
	// Duplicates of the sockets for the child, closed here once it has
	// them; ours stay open.
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, ln := range h.listeners {
		f, err := ln.File()
		if err != nil {
			t.Fatalf("pass the %s socket: %v", listenerFlags[i], err)
		}
		files = append(files, f)
		args = append(args, listenerFlags[i], fmt.Sprintf("fd:%d", 3+i))
	}
	cmd := exec.Command(h.bin, args...)
	cmd.ExtraFiles = files
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("hub stdout: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start localhub: %v", err)
	}
	h.cmd, h.exited = cmd, make(chan struct{})
	banner := make(chan error, 1)
	go func() {
		b, err := ParseBanner(stdout)
		h.Banner = b
		banner <- err
		_, _ = io.Copy(io.Discard, stdout) // nothing more is printed; keep the pipe drained anyway
		_ = cmd.Wait()
		close(h.exited)
	}()
	select {
	case err := <-banner:
		if err != nil {
			t.Fatalf("localhub: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("localhub printed no banner in 30 s")
	}
	if h.svc, err = hubrest.NewClient(h.Policies["iothubowner"], hubrest.Options{Endpoint: h.HTTPSURL, HTTPClient: h.HTTPClient(t)}); err != nil {
		t.Fatalf("service client: %v", err)
	}
}

// Stop ends the hub with SIGTERM and waits for it. It is safe to call
// more than once.
func (h *Hub) Stop(t testing.TB) {
	t.Helper()
	if h.cmd == nil {
		return
	}
	select {
	case <-h.exited:
	default:
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(15 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.exited
			t.Errorf("localhub ignored SIGTERM for 15 s")
		}
	}
	h.cmd = nil
}

// Restart stops the hub and starts a new process on the same ports and
// data directory.
func (h *Hub) Restart(t testing.TB) {
	t.Helper()
	h.Stop(t)
	h.start(t)
}

// HTTPClient trusts the hub's CA.
func (h *Hub) HTTPClient(t testing.TB) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(h.CAFile)
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the hub's CA file")
	}
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// CAPEM is the hub's CA certificate.
func (h *Hub) CAPEM(t testing.TB) []byte {
	t.Helper()
	pem, err := os.ReadFile(h.CAFile)
	if err != nil {
		t.Fatalf("read CA: %v", err)
	}
	return pem
}

// Service is a REST client with the iothubowner policy.
func (h *Hub) Service() *hubrest.Client { return h.svc }

// MethodResult is the hub's answer to a direct-method call.
type MethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// InvokeMethod calls a direct method as a service would. payload is
// marshalled as the request's payload (nil: null); a non-2xx answer is a
// *hubrest.ResponseError.
func (h *Hub) InvokeMethod(ctx context.Context, deviceID, method string, payload any, responseTimeoutSecs int) (MethodResult, error) {
	body, err := json.Marshal(map[string]any{"methodName": method, "payload": payload, "responseTimeoutInSeconds": responseTimeoutSecs})
	if err != nil {
		return MethodResult{}, err
	}
	b, err := h.svc.Do(ctx, http.MethodPost, "/twins/"+url.PathEscape(deviceID)+"/methods", body)
	if err != nil {
		return MethodResult{}, err
	}
	var r MethodResult
	return r, json.Unmarshal(b, &r)
}

// Twin is the part of a device twin the tests read.
type Twin struct {
	DeviceID        string `json:"deviceId"`
	ConnectionState string `json:"connectionState"`
	Properties      struct {
		Reported struct {
			Version  int `json:"$version"`
			IothubDM struct {
				Reboot Reboot `json:"reboot"`
			} `json:"iothubDM"`
		} `json:"reported"`
	} `json:"properties"`
}

// Reboot is iothubDM.reboot as the simulator reports it.
type Reboot struct {
	LastReboot string  `json:"lastReboot"`
	Status     string  `json:"status"`
	RequestID  *string `json:"requestId"`
	Reason     *string `json:"reason"`
}

// LastRebootTime parses the reported time.
func (r Reboot) LastRebootTime() (time.Time, error) {
	return time.Parse(time.RFC3339Nano, r.LastReboot)
}

// Twin reads a device twin.
func (h *Hub) Twin(ctx context.Context, deviceID string) (Twin, error) {
	b, err := h.svc.Do(ctx, http.MethodGet, "/twins/"+url.PathEscape(deviceID), nil)
	if err != nil {
		return Twin{}, err
	}
	var tw Twin
	return tw, json.Unmarshal(b, &tw)
}

// AwaitTwin polls the twin until ok holds, for up to timeout, and returns
// the last twin read.
func (h *Hub) AwaitTwin(ctx context.Context, deviceID string, timeout time.Duration, ok func(Twin) bool) (Twin, error) {
	var tw Twin
	var err error
	werr := Poll(ctx, timeout, func() bool {
		tw, err = h.Twin(ctx, deviceID)
		return err == nil && ok(tw)
	})
	if werr != nil {
		if err != nil {
			werr = fmt.Errorf("%w (last error: %v)", werr, err)
		}
		return tw, fmt.Errorf("twin of %s: %w", deviceID, werr)
	}
	return tw, nil
}

// Poll calls cond every 20 ms until it holds, for up to timeout. It is for
// state read over REST, such as twins, which no event announces.
func Poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met in %v", timeout)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return append([]byte("..."), b[len(b)-n:]...)
	}
	return bytes.Clone(b)
}
