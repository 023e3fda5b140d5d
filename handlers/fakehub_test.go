package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// A fake hub endpoint stands in for what only Azure does: a 429 carrying
// a Retry-After header (the local hub throttles when asked to, but names
// no Retry-After), answers the local hub never gives, and a record of the
// exact requests the app sends.

// fakeHub is an HTTPS endpoint answering every request with one response.
type fakeHub struct {
	status int
	header map[string]string
	body   string
	// answer, when set, picks the status and body per request instead.
	answer func(method, path string) (int, string)

	mu       sync.Mutex
	requests []recordedRequest
}

type recordedRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newFakeHubApp(t *testing.T, hub *fakeHub) *testApp {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hub.mu.Lock()
		hub.requests = append(hub.requests, recordedRequest{r.Method, r.URL.Path, r.Header.Clone(), body})
		hub.mu.Unlock()
		for k, v := range hub.header {
			w.Header().Set(k, v)
		}
		status, answer := hub.status, hub.body
		if hub.answer != nil {
			status, answer = hub.answer(r.Method, r.URL.Path)
		}
		w.WriteHeader(status)
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return newTestApp(t, nil, appOptions{
		connStr:   "HostName=fake.azure-devices.net;SharedAccessKeyName=serviceAndRegistryRead;SharedAccessKey=c2VjcmV0",
		endpoint:  srv.URL,
		transport: srv.Client(),
	})
}

func (h *fakeHub) recorded() []recordedRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recordedRequest(nil), h.requests...)
}

func TestHubRetryAfterIsPassedOn(t *testing.T) {
	hub := &fakeHub{
		status: http.StatusTooManyRequests,
		header: map[string]string{"iothub-errorcode": "ThrottlingException", "Retry-After": "30", "Content-Type": "application/json"},
		body:   `{"Message":"ErrorCode:ThrottlingException;Throttled","ExceptionMessage":""}`,
	}
	app := newFakeHubApp(t, hub)
	for _, tt := range []struct{ method, path string }{
		{http.MethodPost, "/api/devices/dev-1/reboot"},
		{http.MethodGet, "/api/reboots/dev-1/r1?requestedAt=2025-01-31T08:00:00Z"},
		{http.MethodGet, "/api/reboots"},
	} {
		resp, body := app.do(t, tt.method, tt.path, "", nil)
		got := requireProblem(t, resp, body, http.StatusTooManyRequests, "Throttled")
		require.Equal(t, "30", resp.Header.Get("Retry-After"), "%s %s", tt.method, tt.path)
		require.Equal(t, "ThrottlingException", got["hubErrorCode"])
	}
	// A Retry-After beyond the client's cap is not slept on: one hub call each.
	require.Len(t, hub.recorded(), 3)
}

func TestRebootDeviceSendsTheDirectMethodIoTHubExpects(t *testing.T) {
	hub := &fakeHub{status: http.StatusOK, header: map[string]string{"Content-Type": "application/json"},
		body: `{"status":200,"payload":{"result":"ok"}}`}
	app := newFakeHubApp(t, hub)
	resp, body := app.do(t, http.MethodPost, "/api/devices/dev%2B1/reboot", `{"responseTimeoutSeconds":45,"connectTimeoutSeconds":10,"delaySeconds":7}`, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	requestID := decodeJSON(t, body)["requestId"].(string)

	reqs := hub.recorded()
	require.Len(t, reqs, 1)
	got := reqs[0]
	require.Equal(t, http.MethodPost, got.Method)
	require.Equal(t, "/twins/dev+1/methods", got.Path)
	require.Regexp(t, `^SharedAccessSignature sr=fake\.azure-devices\.net&sig=.+&se=\d+&skn=serviceAndRegistryRead$`, got.Header.Get("Authorization"))
	var sent map[string]any
	require.NoError(t, json.Unmarshal(got.Body, &sent))
	require.Equal(t, map[string]any{
		"methodName":               "reboot",
		"payload":                  map[string]any{"requestId": requestID, "delaySeconds": float64(7)},
		"responseTimeoutInSeconds": float64(45),
		"connectTimeoutInSeconds":  float64(10),
	}, sent)
}

func TestUnexpectedHubAnswersMapTo500(t *testing.T) {
	hub := &fakeHub{status: http.StatusForbidden, header: map[string]string{"iothub-errorcode": "IotHubUnauthorizedAccess"},
		body: `{"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized","ExceptionMessage":""}`}
	app := newFakeHubApp(t, hub)
	resp, body := app.do(t, http.MethodPost, "/api/devices/dev-1/reboot", "", nil)
	got := requireProblem(t, resp, body, http.StatusInternalServerError, "InternalError")
	require.Equal(t, "IotHubUnauthorizedAccess", got["hubErrorCode"])
	require.Contains(t, got["detail"], "HTTP 403")
}

// Each route describes a hub failure as the call it made: only the reboot
// method has an unknown outcome after a timeout; a twin read or a query
// changed nothing and is simply retried.
func TestHubErrorsNameTheCallThatFailed(t *testing.T) {
	tests := []struct {
		method, path string
		hubStatus    int
		hubCode      string
		wantStatus   int
		wantCode     string
		wantDetail   string
	}{
		{http.MethodPost, "/api/devices/dev-1/reboot", 504, "GatewayTimeout", 504, "DeviceTimeout", "did not answer the reboot method in time. The outcome is unknown"},
		{http.MethodGet, "/api/reboots/dev-1/r1?requestedAt=2025-01-31T08:00:00Z", 504, "GatewayTimeout", 504, "HubTimeout", "did not complete the twin read in time. Nothing was changed"},
		{http.MethodGet, "/api/reboots", 504, "GatewayTimeout", 504, "HubTimeout", "did not complete the twin query in time"},
		{http.MethodPost, "/api/devices/dev-1/reboot", 429, "ThrottlingException", 429, "Throttled", "refused the reboot method call because its quota"},
		{http.MethodGet, "/api/reboots/dev-1/r1?requestedAt=2025-01-31T08:00:00Z", 429, "ThrottlingException", 429, "Throttled", "refused the twin read because its quota"},
		{http.MethodGet, "/api/reboots", 429, "ThrottlingException", 429, "Throttled", "refused the twin query because its quota"},
		{http.MethodGet, "/api/reboots/dev-1/r1?requestedAt=2025-01-31T08:00:00Z", 403, "IotHubUnauthorizedAccess", 500, "InternalError", "failed the twin read with HTTP 403"},
		{http.MethodGet, "/api/reboots", 403, "IotHubUnauthorizedAccess", 500, "InternalError", "failed the twin query with HTTP 403"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.hubCode, func(t *testing.T) {
			hub := &fakeHub{status: tt.hubStatus, header: map[string]string{"iothub-errorcode": tt.hubCode, "Retry-After": "1"},
				body: `{"Message":"ErrorCode:` + tt.hubCode + `;x","ExceptionMessage":""}`}
			app := newFakeHubApp(t, hub)
			resp, body := app.do(t, tt.method, tt.path, "", nil)
			got := requireProblem(t, resp, body, tt.wantStatus, tt.wantCode)
			require.Contains(t, got["detail"], tt.wantDetail)
			if tt.method == http.MethodGet {
				require.NotContains(t, got["detail"], "reboot method")
			}
		})
	}
}
