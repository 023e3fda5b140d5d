package rest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/rest"
)

// Conflicting ServeMux patterns panic at registration; building the server
// is the test.
func TestNewServerRegistersRoutes(t *testing.T) {
	require.NotPanics(t, func() { rest.NewServer(rest.Deps{}) })
}

func TestUnknownRoutes(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	tests := []struct {
		name, method, path, golden string
	}{
		{"unknown path", http.MethodGet, "/nothing/here", "no_route"},
		{"module twins are not served", http.MethodGet, "/twins/dev1/modules/m1", "no_route_modules"},
		{"wrong method", http.MethodPost, "/devices/dev1", "method_not_allowed"},
		{"wrong method on twins", http.MethodDelete, "/twins/dev1", "method_not_allowed_twins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.golden, h.do(request{method: tt.method, path: tt.path}))
		})
	}
}

func TestUnknownRoutesStillNeedAuth(t *testing.T) {
	h := newTestHub(t)
	resp := h.do(request{method: http.MethodGet, path: "/nothing", auth: "none"})
	require.Equal(t, http.StatusUnauthorized, resp.status)
}

// IoT Hub serves the api-versions its SDKs send and answers anything else,
// like a missing one, with 400 InvalidProtocolVersion.
func TestAPIVersionRequired(t *testing.T) {
	h := newTestHub(t)
	golden(t, "missing_api_version", h.do(request{method: http.MethodGet, path: "/devices?top=1"}))
	golden(t, "unsupported_api_version", h.do(request{method: http.MethodGet, path: "/devices?api-version=1999-01-01"}))

	for _, v := range []string{"2016-11-14", "2018-06-30", "2020-09-30", "2021-04-12", "2025-08-01-preview"} {
		resp := h.do(request{method: http.MethodGet, path: "/devices?api-version=" + v})
		require.Equal(t, http.StatusOK, resp.status, "api-version %s", v)
	}
	for _, v := range []string{"1999-01-01", "2021-04-12%20", "2021-04-12-PREVIEW", "2021-4-12", "latest", "2021-04-13"} {
		resp := h.do(request{method: http.MethodGet, path: "/devices?api-version=" + v})
		require.Equal(t, http.StatusBadRequest, resp.status, "api-version %s", v)
		require.Equal(t, "InvalidProtocolVersion", resp.header.Get("iothub-errorcode"), "api-version %s", v)
	}
}

func TestRequestsAreLoggedWithPatternAndNoToken(t *testing.T) {
	h := newTestHub(t)
	token := h.policyToken("iothubowner")
	resp := h.do(request{method: http.MethodGet, path: "/devices/missing", auth: token})
	require.Equal(t, http.StatusNotFound, resp.status)

	logs := h.logs.String()
	require.Contains(t, logs, `pattern="GET /devices/{id}"`)
	require.Contains(t, logs, "status=404")
	require.Contains(t, logs, "op=GetDevice")
	sig := token[strings.Index(token, "sig="):]
	require.NotContains(t, logs, sig[:20])
}

// NewServer works without a device side: nothing is ever online.
func TestNoDeviceSide(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	srv := httptest.NewTLSServer(rest.NewServer(rest.Deps{Hostname: hubHost, Registry: h.reg, Now: h.now}))
	t.Cleanup(srv.Close)
	h.srv = srv

	resp := h.do(request{method: http.MethodPost, path: "/twins/dev1/methods", body: `{"methodName":"m"}`})
	require.Equal(t, http.StatusNotFound, resp.status, string(resp.body))
	require.Equal(t, "DeviceNotOnline", resp.header.Get("iothub-errorcode"))
	resp = h.do(request{method: http.MethodGet, path: "/statistics/service"})
	require.JSONEq(t, `{"connectedDeviceCount":0}`, string(resp.body))
}
