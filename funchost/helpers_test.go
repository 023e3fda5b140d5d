package funchost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// awaitTimeout bounds every wait for a log line or a restart.
const awaitTimeout = 20 * time.Second

// logRecorder is a slog handler that keeps every record as one line
// ("LEVEL message key=value ...") and wakes waiters on each new one.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	wake  chan struct{}
}

// newLogRecorder prints what it recorded when the test fails, or always
// with FUNCHOST_DUMP=1.
func newLogRecorder(t testing.TB) *logRecorder {
	r := &logRecorder{wake: make(chan struct{})}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("FUNCHOST_DUMP") != "" {
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Logf("host log:\n%s", strings.Join(r.lines, "\n"))
		}
	})
	return r
}

func (r *logRecorder) logger() *slog.Logger { return slog.New(&recordingHandler{rec: r}) }

func (r *logRecorder) add(line string) {
	r.mu.Lock()
	r.lines = append(r.lines, line)
	close(r.wake)
	r.wake = make(chan struct{})
	r.mu.Unlock()
}

// await returns the first line for which match is true, waiting for it.
func (r *logRecorder) await(t testing.TB, what string, match func(string) bool) string {
	t.Helper()
	lines := r.awaitN(t, what, 1, match)
	return lines[0]
}

// awaitN waits until n lines match and returns them.
func (r *logRecorder) awaitN(t testing.TB, what string, n int, match func(string) bool) []string {
	t.Helper()
	deadline := time.After(awaitTimeout)
	for {
		r.mu.Lock()
		var found []string
		for _, l := range r.lines {
			if match(l) {
				found = append(found, l)
			}
		}
		wake := r.wake
		r.mu.Unlock()
		if len(found) >= n {
			return found
		}
		select {
		case <-wake:
		case <-deadline:
			t.Fatalf("no %d log line(s) with %s within %s (found %d)", n, what, awaitTimeout, len(found))
		}
	}
}

// count returns how many lines match now.
func (r *logRecorder) count(match func(string) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if match(l) {
			n++
		}
	}
	return n
}

func containsAll(parts ...string) func(string) bool {
	return func(l string) bool {
		for _, p := range parts {
			if !strings.Contains(l, p) {
				return false
			}
		}
		return true
	}
}

type recordingHandler struct {
	rec   *logRecorder
	attrs []slog.Attr
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteString(" ")
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	h.rec.add(b.String())
	return nil
}

func (h *recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &recordingHandler{rec: h.rec, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *recordingHandler) WithGroup(string) slog.Handler { return h }

// startHost starts a host and closes it in t.Cleanup, where Close must
// not fail beyond what Err already said (a host that stopped by itself).
func startHost(t testing.TB, opts Options) *Host {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), awaitTimeout)
	defer cancel()
	h, err := Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		before := h.Err()
		err := h.Close()
		if before == nil {
			require.NoError(t, err, "Close")
		} else {
			require.EqualError(t, err, before.Error(), "Close adds nothing to why the host stopped")
		}
	})
	return h
}

// fakeApp is a script root for the fake worker (testdata/fakeworker).
type fakeApp struct {
	root string
}

// newFakeApp links the fake worker into a new script root with hostJSON
// and the given functions (folder name -> function.json).
func newFakeApp(t testing.TB, hostJSON string, functions map[string]string) fakeApp {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.Symlink(fakeWorkerPath(t), filepath.Join(root, "fakeworker")))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "work"), 0o755))
	write(t, filepath.Join(root, "host.json"), hostJSON)
	for name, fj := range functions {
		write(t, filepath.Join(root, name, "function.json"), fj)
	}
	return fakeApp{root: root}
}

// options completes opts for a host of the app: its script root, and a
// pre-bound loopback socket the fake worker inherits and serves on
// instead of the port the host picks, so that no test depends on a port
// staying free between the host picking it and the worker binding it.
func (a fakeApp) options(t testing.TB, opts Options) Options {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	opts.ScriptRoot = a.root
	opts.handlerListener = ln.(*net.TCPListener)
	s := maps.Clone(opts.Settings)
	if s == nil {
		s = map[string]string{}
	}
	s["FAKEWORKER_LISTEN_FD"] = "3" // the first of exec.Cmd.ExtraFiles
	opts.Settings = s
	return opts
}

// start starts a host of the app (see startHost).
func (a fakeApp) start(t testing.TB, opts Options) *Host {
	t.Helper()
	return startHost(t, a.options(t, opts))
}

// fakeWorker is the fake worker built once for the test binary.
var fakeWorker struct {
	once sync.Once
	dir  string
	path string
}

func fakeWorkerPath(t testing.TB) string {
	t.Helper()
	fakeWorker.once.Do(func() {
		dir, err := os.MkdirTemp("", "funchost-fakeworker")
		require.NoError(t, err)
		fakeWorker.dir = dir
		out := filepath.Join(dir, "fakeworker")
		funchosttest.Build(t, funchosttest.RepoRoot(t), "./funchost/testdata/fakeworker", out)
		fakeWorker.path = out
	})
	if fakeWorker.path == "" {
		t.Fatal("the fake worker did not build (see the first test that needed it)")
	}
	return fakeWorker.path
}

func TestMain(m *testing.M) {
	if child := os.Getenv(childEnv); child != "" {
		os.Exit(runChild(child))
	}
	code := m.Run()
	if fakeWorker.dir != "" {
		os.RemoveAll(fakeWorker.dir)
	}
	os.Exit(code)
}

func write(t testing.TB, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
}

// Function definitions for the fake worker's apps.
const (
	fakeHostJSON = `{
  "version": "2.0",
  "functionTimeout": "00:01:00",
  "customHandler": {
    "description": {
      "defaultExecutablePath": "fakeworker",
      "workingDirectory": "work",
      "arguments": ["--port=%FUNCTIONS_CUSTOMHANDLER_PORT%", "--s=%FAKE_SETTING%", "--gone=%FAKE_NOT_SET_ANYWHERE%"]
    },
    "enableForwardingHttpRequest": true
  }
}`
	echoFunction = `{"bindings":[
  {"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["get","post"],"route":"echo/{id}/{*rest}"},
  {"type":"http","direction":"out","name":"res"}]}`
	infoFunction = `{"bindings":[
  {"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"info"},
  {"type":"http","direction":"out","name":"res"}]}`
	exitFunction = `{"bindings":[
  {"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"route":"exit"},
  {"type":"http","direction":"out","name":"res"}]}`
	// envelopeFunction has two outputs, so it never qualifies for
	// forwarding and gets the §2.1 envelope.
	envelopeFunction = `{"bindings":[
  {"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"route":"items/{id:int}"},
  {"type":"http","direction":"out","name":"res"},
  {"type":"queue","direction":"out","name":"msg","queueName":"q","connection":"AzureWebJobsStorage"}]}`
)

func fakeFunctions() map[string]string {
	return map[string]string{"Echo": echoFunction, "Info": infoFunction, "Exit": exitFunction, "Envelope": envelopeFunction}
}

// do sends a request and returns the status and body.
func do(t testing.TB, method, url string, body io.Reader, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

// workerInfo is the fake worker's GET /api/info.
type workerInfo struct {
	PID  int               `json:"pid"`
	Cwd  string            `json:"cwd"`
	Args []string          `json:"args"`
	Env  map[string]string `json:"env"`
}

func info(t testing.TB, h *Host) workerInfo {
	t.Helper()
	status, body := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
	require.Equal(t, http.StatusOK, status, "body: %s", body)
	var wi workerInfo
	require.NoError(t, json.Unmarshal(body, &wi))
	return wi
}

// ehHub is a local hub whose built-in endpoint feeds the tests' Event
// Hubs triggers over AMQP, with a producer to send it events.
type ehHub struct {
	*localhub.Hub
	producer *azeventhubs.ProducerClient
}

// newEHHub starts a hub (localhubtest.New) and a producer on its plain
// AMQP listener.
func newEHHub(t testing.TB, opts *localhub.Options) *ehHub {
	t.Helper()
	return connectEHHub(t, localhubtest.New(t, opts))
}

// connectEHHub adds a producer to hub, closed in t.Cleanup. The policy
// iothubowner may publish to the local hub's built-in endpoint.
func connectEHHub(t testing.TB, hub *localhub.Hub) *ehHub {
	t.Helper()
	cs, err := hub.EventHubConnectionString("iothubowner", true)
	require.NoError(t, err)
	p, err := azeventhubs.NewProducerClientFromConnectionString(cs, "", nil)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close(context.Background()) })
	return &ehHub{Hub: hub, producer: p}
}

// send publishes one event per body to a partition, in order.
func (h *ehHub) send(t testing.TB, partition string, bodies ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), awaitTimeout)
	defer cancel()
	batch, err := h.producer.NewEventDataBatch(ctx, &azeventhubs.EventDataBatchOptions{PartitionID: &partition})
	require.NoError(t, err)
	for _, b := range bodies {
		require.NoError(t, batch.AddEventData(&azeventhubs.EventData{Body: []byte(b)}, nil))
	}
	require.NoError(t, h.producer.SendEventDataBatch(ctx, batch, nil))
}

// ehSettings point the fake app's Event Hubs functions (ehFunction) at
// hub's built-in endpoint, as local.settings.json does for func start:
// the UseDevelopmentEmulator=true connection string of policy service.
func ehSettings(t testing.TB, hub *localhub.Hub) map[string]string {
	t.Helper()
	cs, err := hub.EventHubConnectionString("service", true)
	require.NoError(t, err)
	return map[string]string{"FAKE_HUB": hub.EventHubName(), "FAKE_EH": cs, "FAKE_GROUP": "localdev"}
}

// tcpProxy forwards connections from a listener of its own, bound once,
// to a target address that can change: a stable address for a server
// that restarts on another port.
type tcpProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// port is ":<port>" of the proxy's listener.
func (p *tcpProxy) port() string {
	return ":" + strconv.Itoa(p.ln.Addr().(*net.TCPAddr).Port)
}

// retarget sends new connections to target.
func (p *tcpProxy) retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.forward(c) })
	}
}

// forward pipes c to the target until either side closes.
func (p *tcpProxy) forward(c net.Conn) {
	defer c.Close()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(c, up) {
		return
	}
	defer p.untrack(c, up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// track registers conns for closing at cleanup; false once closed.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}
