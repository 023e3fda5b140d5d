package funchost

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// echoed is the fake worker's echo of a forwarded request.
type echoed struct {
	Method        string              `json:"method"`
	Path          string              `json:"path"`
	RawQuery      string              `json:"rawQuery"`
	Host          string              `json:"host"`
	Headers       map[string][]string `json:"headers"`
	Body          string              `json:"body"`
	ContentLength int64               `json:"contentLength"`
}

// TestForwarding checks enableForwardingHttpRequest (§2.4): original
// path, rebuilt query, all headers plus the host's, the caller's Host,
// body only with Content-Length > 0, and the handler's answer as-is.
func TestForwarding(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	h := app.start(t, Options{})
	u, err := url.Parse(h.URL())
	require.NoError(t, err)

	tests := []struct {
		name      string
		method    string
		path      string
		body      io.Reader
		wantQuery string
		wantBody  string
	}{
		{"query rebuilt with repeated keys joined", http.MethodGet, "/api/echo/42/a/b?k=1&k=2&z=x+y", nil, "k=1%2C2&z=x+y", ""},
		{"body with content length", http.MethodPost, "/api/echo/7/x", strings.NewReader("hello"), "", "hello"},
		{"chunked body dropped (no Content-Length)", http.MethodPost, "/api/echo/7/x", io.MultiReader(strings.NewReader("chunked")), "", ""},
		{"escaped slash kept in its segment", http.MethodGet, "/api/ECHO/a%2Fb/c", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, tt.method, h.URL()+tt.path, tt.body, http.Header{"User-Agent": {"curl/8.5.0"}, "X-Custom": {"a", "b"}})
			require.Equal(t, http.StatusOK, status, "body: %s", body)
			var e echoed
			require.NoError(t, json.Unmarshal(body, &e))
			require.Equal(t, tt.method, e.Method)
			wantPath, _ := url.PathUnescape(strings.Split(tt.path, "?")[0])
			require.Equal(t, wantPath, e.Path, "the original path")
			require.Equal(t, tt.wantQuery, e.RawQuery)
			require.Equal(t, u.Host, e.Host, "the caller's Host")
			require.Equal(t, tt.wantBody, e.Body)
			require.Equal(t, []string{"a", "b"}, e.Headers["X-Custom"])
			require.Equal(t, []string{HostVersion}, e.Headers["X-Azure-Functions-Hostversion"])
			require.Regexp(t, guidRE, e.Headers["X-Azure-Functions-Invocationid"][0])
			require.Equal(t, []string{"curl/8.5.0 Azure-Functions-Host/" + HostVersion}, e.Headers["User-Agent"])
		})
	}
}

// TestHTTPEnvelope checks the default mode (§2.1/§2.2) with the fake
// worker, which answers Outputs.res with the envelope it got as the body,
// statusCode "201" as a string and a boolean header.
func TestHTTPEnvelope(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	logs := newLogRecorder(t)
	h := app.start(t, Options{Logger: logs.logger()})

	resp, err := http.Post(h.URL()+"/api/items/42?force=true&code=secret", "application/json", strings.NewReader(`{"delay":5}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "statusCode as a numeric string")
	require.Equal(t, "True", resp.Header.Get("X-Fake"), "header values rendered as .NET ToString")
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	var env struct {
		Data struct {
			Req struct {
				URL        string `json:"Url"`
				Method     string
				Query      map[string]string
				Headers    map[string][]string
				Params     map[string]string
				Identities []map[string]any
				Body       string
			} `json:"req"`
		}
		Metadata map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(body, &env))
	req := env.Data.Req
	require.Equal(t, h.URL()+"/api/items/42?force=true&code=secret", req.URL)
	require.Equal(t, http.MethodPost, req.Method)
	require.Equal(t, map[string]string{"force": "true", "code": "secret"}, req.Query)
	require.Equal(t, map[string]string{"id": "42"}, req.Params)
	require.Equal(t, []string{"application/json"}, req.Headers["Content-Type"])
	require.Len(t, req.Identities, 1)
	require.Equal(t, `{"delay":5}`, req.Body)

	require.JSONEq(t, `"\"42\""`, string(env.Metadata["id"]), "route values double-encoded")
	require.JSONEq(t, `"\"true\""`, string(env.Metadata["force"]))
	require.NotContains(t, env.Metadata, "code", "the function key is not metadata")
	require.Contains(t, env.Metadata, "sys")
	logs.await(t, "the invocation's Logs entry", containsAll("INFO http envelope for Envelope", "function=Envelope"))

	status, _ := do(t, http.MethodPost, h.URL()+"/api/items/notanint", nil, nil)
	require.Equal(t, http.StatusNotFound, status, "the int constraint")
}

// TestDisabled checks AzureWebJobs.<name>.Disabled: true (any case) or 1.
func TestDisabled(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	tests := []struct {
		value      string
		wantStatus int
	}{
		{"true", http.StatusNotFound},
		{"True", http.StatusNotFound},
		{"1", http.StatusNotFound},
		{"false", http.StatusOK},
		{"0", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			h := app.start(t, Options{Settings: map[string]string{"AzureWebJobs.Info.Disabled": tt.value}})
			status, _ := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
			require.Equal(t, tt.wantStatus, status)
			status, _ = do(t, http.MethodGet, h.URL()+"/api/echo/1/x", nil, nil)
			require.Equal(t, http.StatusOK, status, "other functions keep running")
		})
	}
}

// TestNotFound: unknown routes, the wrong method, and paths outside the
// route prefix are 404; / is the landing page.
func TestNotFound(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	h := app.start(t, Options{})
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/api/nope", http.StatusNotFound},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/info", http.StatusNotFound},
		{http.MethodGet, "/apiinfo", http.StatusNotFound},
		{http.MethodGet, "/api", http.StatusNotFound},
		{http.MethodDelete, "/api/info", http.StatusNotFound},
		{http.MethodGet, "/api/echo/1", http.StatusOK},
		{http.MethodGet, "/api/info/", http.StatusOK},
		{http.MethodGet, "/", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			status, _ := do(t, tt.method, h.URL()+tt.path, nil, nil)
			require.Equal(t, tt.want, status)
		})
	}
}
