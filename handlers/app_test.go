package handlers_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// testApp is the handler served over loopback HTTP in front of a hub, as
// the Functions host would call it.
type testApp struct {
	URL    string
	logs   *syncBuffer
	offset atomic.Int64 // added to the real clock, for deadline tests
}

// appOptions tune newTestApp.
type appOptions struct {
	policy string // shared access policy; default serviceAndRegistryRead
	// connStr replaces the hub's connection string (e.g. a wrong key).
	connStr string
	// endpoint and transport replace the hub's (a fake hub).
	endpoint  string
	transport *http.Client
}

// newTestApp serves handlers.NewServer against hub (or opts' endpoint).
func newTestApp(t testing.TB, hub *localhub.Hub, opts appOptions) *testApp {
	t.Helper()
	if opts.policy == "" {
		opts.policy = "serviceAndRegistryRead"
	}
	if opts.connStr == "" {
		cs, err := hub.ServiceConnectionString(opts.policy)
		require.NoError(t, err)
		opts.connStr = cs
	}
	if opts.endpoint == "" {
		opts.endpoint = hub.HTTPSURL()
		opts.transport = hub.HTTPClient()
	}
	client, err := handlers.NewHubClient(handlers.Config{ConnectionString: opts.connStr, Endpoint: opts.endpoint},
		&iothub.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: opts.transport}})
	require.NoError(t, err)
	app := &testApp{logs: &syncBuffer{}}
	srv := httptest.NewServer(handlers.NewServer(handlers.Deps{
		Hub:    client,
		Logger: handlers.NewLogger(app.logs, app.logs, nil),
		Now:    func() time.Time { return time.Now().Add(time.Duration(app.offset.Load())) },
	}))
	t.Cleanup(srv.Close)
	app.URL = srv.URL
	return app
}

// do sends a request to the app and returns the response with its body read.
func (a *testApp) do(t testing.TB, method, path, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = a.URL + path
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, rd)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b
}

// decodeJSON decodes b into a generic map.
func decodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m), "body: %s", b)
	return m
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
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
