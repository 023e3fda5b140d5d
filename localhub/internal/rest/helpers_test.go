package rest_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/localhub/internal/rest"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

var update = flag.Bool("update", false, "update golden files in testdata/")

// hubHost is the hub host name the server is configured with.
const hubHost = "localhub.test"

// testBearer is the configured Entra ID stand-in.
const testBearer = "test-bearer-token"

// fixedNow is the server's clock, so timestamps in golden files are stable.
var fixedNow = time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC)

// testHub is a REST server over a real registry and a fake device side.
type testHub struct {
	t       *testing.T
	srv     *httptest.Server
	reg     *registry.Store
	devices *fakeDevices
	jobs    *jobs.Engine
	logs    *lockedBuffer
}

func (h *testHub) now() time.Time { return fixedNow }

// depsOverride changes the test server's configuration.
type depsOverride struct {
	bearer string
	quotas rest.Quotas
	// now, if set, is the REST server's clock (the registry's stays
	// fixedNow).
	now func() time.Time
}

func newTestHub(t *testing.T) *testHub {
	t.Helper()
	return newTestHubWith(t, nil)
}

func newTestHubWith(t *testing.T, override func(*depsOverride)) *testHub {
	t.Helper()
	o := depsOverride{bearer: testBearer}
	if override != nil {
		override(&o)
	}
	reg, err := registry.Open(registry.Options{
		Path: filepath.Join(t.TempDir(), "registry.db"),
		Now:  func() time.Time { return fixedNow },
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, reg.Close()) })

	restNow := o.now
	if restNow == nil {
		restNow = func() time.Time { return fixedNow }
	}
	logs := &lockedBuffer{}
	devices := &fakeDevices{}
	engine, err := jobs.Start(jobs.Options{
		Store:                     reg,
		Devices:                   devices,
		SelectDevices:             rest.SelectDevices(reg),
		Now:                       func() time.Time { return fixedNow },
		MaxActiveJobs:             o.quotas.ConcurrentJobs,
		DeviceOperationsPerSecond: o.quotas.JobDeviceOperations,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, engine.Close()) })
	h := rest.NewServer(rest.Deps{
		Hostname:    hubHost,
		Registry:    reg,
		Devices:     devices,
		Jobs:        engine,
		BearerToken: o.bearer,
		Quotas:      o.quotas,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         restNow,
	})
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return &testHub{t: t, srv: srv, reg: reg, devices: devices, jobs: engine, logs: logs}
}

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.String()
}

// policyToken mints a Go-SDK-style token (escaped sr) for a policy, valid
// for an hour of the server's clock.
func (h *testHub) policyToken(policy string) string {
	h.t.Helper()
	p, ok := h.reg.Policy(policy)
	require.True(h.t, ok, "policy %s", policy)
	tok, err := sas.New(hubHost, p.KeyName, p.PrimaryKey, fixedNow.Add(time.Hour))
	require.NoError(h.t, err)
	return tok
}

// nodeToken mints a token the way the Node service SDK does: sr left raw,
// fields in the order sr, sig, skn, se.
func nodeToken(t *testing.T, resource, keyName, key string, expiry time.Time) string {
	t.Helper()
	k, err := base64.StdEncoding.DecodeString(key)
	require.NoError(t, err)
	se := strconv.FormatInt(expiry.Unix(), 10)
	mac := hmac.New(sha256.New, k)
	mac.Write([]byte(resource + "\n" + se))
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return "SharedAccessSignature sr=" + resource + "&sig=" + sig + "&skn=" + url.QueryEscape(keyName) + "&se=" + se
}

// request describes one call; auth "" means iothubowner.
type request struct {
	method  string
	path    string // api-version is added unless the path has a query
	body    string
	auth    string
	headers map[string]string
}

// response is what a test inspects.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (h *testHub) do(req request) response {
	h.t.Helper()
	return h.doCtx(h.t.Context(), req)
}

func (h *testHub) doCtx(ctx context.Context, req request) response {
	h.t.Helper()
	path := req.path
	if !strings.Contains(path, "?") {
		path += "?api-version=2021-04-12"
	}
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequestWithContext(ctx, req.method, h.srv.URL+path, body)
	require.NoError(h.t, err)
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	switch req.auth {
	case "":
		r.Header.Set("Authorization", h.policyToken("iothubowner"))
	case "none":
	default:
		r.Header.Set("Authorization", req.auth)
	}
	for k, v := range req.headers {
		r.Header.Set(k, v)
	}
	resp, err := h.srv.Client().Do(r)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// createDevice registers a device through the API.
func (h *testHub) createDevice(id string) registry.Device {
	h.t.Helper()
	resp := h.do(request{method: http.MethodPut, path: "/devices/" + url.PathEscape(id), body: `{"deviceId":"` + id + `"}`})
	require.Equal(h.t, http.StatusOK, resp.status, string(resp.body))
	var d registry.Device
	require.NoError(h.t, json.Unmarshal(resp.body, &d))
	return d
}

// decodeJSON unmarshals a response body into a generic value.
func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(b, &v), string(b))
	return v
}

// Golden files hold the status, the headers that are part of IoT Hub's
// contract and the body, with random parts normalised.
var (
	trackingHex = regexp.MustCompile(`[0-9a-f]{32}-G:0-TimeStamp:`)
	randomField = regexp.MustCompile(`"(primaryKey|secondaryKey|generationId|etag|deviceEtag)":"[^"]*"`)
	goldenHdrs  = []string{"Allow", "Content-Type", "ETag", "Iothub-Errorcode", "X-Ms-Continuation", "X-Ms-Item-Type"}
)

func golden(t *testing.T, name string, resp response) {
	t.Helper()
	var b strings.Builder
	b.WriteString("HTTP " + strconv.Itoa(resp.status) + "\n")
	hdrs := append([]string(nil), goldenHdrs...)
	sort.Strings(hdrs)
	for _, k := range hdrs {
		if v := resp.header.Get(k); v != "" {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	body := trackingHex.ReplaceAll(resp.body, []byte("<tracking>-G:0-TimeStamp:"))
	body = randomField.ReplaceAll(body, []byte(`"$1":"<random>"`))
	b.Write(body)
	b.WriteString("\n")
	got := b.String()

	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	require.Equal(t, string(want), got, "golden file %s (run go test -update after checking the diff)", path)
}

// fakeDevices is the device side for REST mapping tests only; the method
// path with real MQTT devices is tested end to end elsewhere.
type fakeDevices struct {
	mu           sync.Mutex
	invoke       func(ctx context.Context, call methodCall) (int, []byte, error)
	calls        []methodCall
	disconnected []string
	connected    int
}

type methodCall struct {
	DeviceID, Method string
	Payload          []byte
	Response         time.Duration
	Connect          time.Duration
}

func (f *fakeDevices) InvokeMethod(ctx context.Context, deviceID, method string, payload []byte, responseTimeout, connectTimeout time.Duration) (int, []byte, error) {
	call := methodCall{deviceID, method, payload, responseTimeout, connectTimeout}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	invoke := f.invoke
	f.mu.Unlock()
	if invoke == nil {
		return 200, []byte(`{}`), nil
	}
	return invoke(ctx, call)
}

func (f *fakeDevices) ConnectedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *fakeDevices) DisconnectDevice(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnected = append(f.disconnected, id)
}

func (f *fakeDevices) setInvoke(fn func(ctx context.Context, call methodCall) (int, []byte, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invoke, f.calls = fn, nil
}

func (f *fakeDevices) lastCall(t *testing.T) methodCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.NotEmpty(t, f.calls)
	return f.calls[len(f.calls)-1]
}

func (f *fakeDevices) disconnects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.disconnected...)
}

func registryDevice(i int) registry.Device {
	return registry.Device{DeviceID: "dev" + strconv.Itoa(1000+i)}
}
