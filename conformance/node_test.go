package conformance

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// modeEnv controls TestNodeSDKs: unset, it skips (saying why) when Node.js,
// npm or the right to bind port 443 is missing; "require" turns each of
// those into a failure (CI sets it); "skip" skips.
const modeEnv = "LOCALHUB_NODE_CONFORMANCE"

// sdkDir holds check.js, package.json and the committed package-lock.json
// that pins Microsoft's SDKs and everything they pull in.
const sdkDir = "node"

// TestNodeSDKs runs node/check.js — Microsoft's Node.js IoT Hub SDKs,
// unmodified — against a fresh in-process hub: the seed's reboot
// device-management flow, registry, twins, queries and errors.
//
// The Node service SDK builds https://{HostName}/… and cannot take a port,
// so the hub must serve HTTPS on 443, as Azure does; the device SDK dials
// MQTT on 8883. To keep out of the way of a hub on 127.0.0.1 (make run) and
// of other test runs, the hub listens on a random address of the loopback
// network 127.0.0.0/8 and uses it as its host name; its certificate names
// that address.
func TestNodeSDKs(t *testing.T) {
	node, npm, unavailable := nodeTools(t)

	hub := startHubOn443(t, unavailable)
	installSDKs(t, npm)
	owner, err := hub.ServiceConnectionString("iothubowner")
	if err != nil {
		t.Fatal(err)
	}
	runScript(t, node, "check.js", "OWNER_CONNECTION_STRING="+owner, "NODE_EXTRA_CA_CERTS="+hub.CAFile())
}

// nodeTools returns node and npm, or calls unavailable (which skips, or
// fails when modeEnv is "require").
func nodeTools(t *testing.T) (node, npm string, unavailable func(string, ...any)) {
	t.Helper()
	mode := os.Getenv(modeEnv)
	unavailable = func(format string, a ...any) {
		t.Helper()
		reason := fmt.Sprintf(format, a...)
		if mode == "require" {
			t.Fatalf("%s (and %s=require)", reason, modeEnv)
		}
		t.Skipf("SKIP %s: %s. Set %s=require to make this a failure.", t.Name(), reason, modeEnv)
	}
	switch mode {
	case "", "require":
	case "skip":
		t.Skipf("SKIP %s: %s=skip", t.Name(), modeEnv)
	default:
		t.Fatalf("%s must be skip or require, got %q", modeEnv, mode)
	}
	var err error
	if node, err = exec.LookPath("node"); err != nil {
		unavailable("Node.js is not installed (no node in PATH)")
	}
	if npm, err = exec.LookPath("npm"); err != nil {
		unavailable("npm is not installed (no npm in PATH)")
	}
	return node, npm, unavailable
}

// startHubOn443 starts a hub with HTTPS on port 443 and MQTT on 8883 of a
// random loopback address.
func startHubOn443(t *testing.T, unavailable func(string, ...any)) *localhub.Hub {
	t.Helper()
	var logs lockedBuffer
	t.Cleanup(func() {
		if t.Failed() && logs.Len() > 0 {
			t.Logf("hub log (warnings and errors):\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for attempt := 0; ; attempt++ {
		ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
		if attempt == 3 {
			ip = "127.0.0.1" // a system that binds only 127.0.0.1 (not Linux)
		}
		hub, err := localhub.Start(t.Context(), localhub.Options{
			Hostname:  ip,
			HTTPSAddr: net.JoinHostPort(ip, "443"),
			MQTTAddr:  net.JoinHostPort(ip, "8883"),
			Logger:    logger,
		})
		switch {
		case err == nil:
			t.Cleanup(func() {
				if err := hub.Close(); err != nil {
					t.Errorf("close hub: %v", err)
				}
			})
			return hub
		case errors.Is(err, syscall.EACCES):
			unavailable("binding %s:443 needs root or CAP_NET_BIND_SERVICE (%v)", ip, err)
		case attempt < 3 && (errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL)):
			continue
		default:
			t.Fatalf("start a hub on %s:443: %v", ip, err)
		}
	}
}

// installSDKs runs npm ci in sdkDir unless node_modules already holds what
// package-lock.json pins (a stamp records the lock file's hash).
func installSDKs(t *testing.T, npm string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(sdkDir, "package-lock.json"))
	if err != nil {
		t.Fatalf("the SDKs' lock file: %v", err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(sdkDir, "node_modules", ".localhub-package-lock.sha256")
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = sdkDir
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in conformance/%s failed (it needs the npm registry; %s=skip skips this test): %v\n%s", sdkDir, modeEnv, err, out)
	}
	t.Logf("npm ci installed the pinned SDKs in %s", time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runScript runs a script of sdkDir with env added: its "ok" lines are
// logged, each "FAIL" line is a test error with the details that follow
// it.
func runScript(t *testing.T, node, script string, env ...string) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = sdkDir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	out, runErr := cmd.CombinedOutput()

	var failure *strings.Builder
	flush := func() {
		if failure != nil {
			t.Error(failure.String())
			failure = nil
		}
	}
	lines := bufio.NewScanner(bytes.NewReader(out))
	for lines.Scan() {
		line := lines.Text()
		switch {
		case strings.HasPrefix(line, "ok "):
			flush()
			t.Log(line)
		case strings.HasPrefix(line, "FAIL "):
			flush()
			failure = &strings.Builder{}
			failure.WriteString(line)
		case failure != nil:
			failure.WriteString("\n" + line)
		default:
			t.Log(line)
		}
	}
	flush()
	if runErr != nil && !t.Failed() {
		t.Fatalf("node %s: %v", script, runErr)
	}
}

// lockedBuffer is the hub's log, written from its goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
