package rest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/rest"
)

// The test server's clock stands still, so no quota refills during a test:
// each class allows exactly its burst.
func TestQuotasThrottleEachClass(t *testing.T) {
	h := newTestHubWith(t, func(o *depsOverride) {
		o.quotas = rest.Quotas{RegistryOperations: 1, TwinReads: 2, TwinUpdates: 1, DirectMethods: 1, Queries: 1}
	})
	h.createDevice("dev1") // the one registry operation

	throttled := func(t *testing.T, req request, wantNested bool) {
		t.Helper()
		resp := h.do(req)
		require.Equal(t, http.StatusTooManyRequests, resp.status, "body: %s", resp.body)
		require.Equal(t, "ThrottlingException", resp.header.Get("iothub-errorcode"))
		msg, _ := decodeJSON(t, resp.body)["Message"].(string)
		if wantNested {
			require.Equal(t, float64(429001), decodeJSON(t, []byte(msg))["errorCode"])
		} else {
			require.True(t, strings.HasPrefix(msg, "ErrorCode:ThrottlingException;"), msg)
		}
	}

	throttled(t, request{method: http.MethodGet, path: "/devices/dev1"}, false)

	for range 2 {
		require.Equal(t, http.StatusOK, h.do(request{method: http.MethodGet, path: "/twins/dev1"}).status)
	}
	throttled(t, request{method: http.MethodGet, path: "/twins/dev1"}, false)

	patch := request{method: http.MethodPatch, path: "/twins/dev1", body: `{"tags":{"a":1}}`}
	require.Equal(t, http.StatusOK, h.do(patch).status)
	throttled(t, patch, false)
	throttled(t, request{method: http.MethodPut, path: "/twins/dev1", body: `{"tags":{}}`}, false)

	invoke := request{method: http.MethodPost, path: "/twins/dev1/methods", body: `{"methodName":"reboot"}`}
	require.Equal(t, http.StatusOK, h.do(invoke).status)
	throttled(t, invoke, true)

	query := request{method: http.MethodPost, path: "/devices/query", body: `{"query":"SELECT * FROM devices"}`}
	require.Equal(t, http.StatusOK, h.do(query).status)
	throttled(t, query, false)

	// Statistics are not metered, and a throttled call reached no device.
	require.Equal(t, http.StatusOK, h.do(request{method: http.MethodGet, path: "/statistics/service"}).status)
	require.Len(t, h.devices.calls, 1)
}

func TestUnauthorizedCallsUseNoQuota(t *testing.T) {
	h := newTestHubWith(t, func(o *depsOverride) { o.quotas = rest.Quotas{TwinReads: 1} })
	h.createDevice("dev1")
	for range 3 {
		resp := h.do(request{method: http.MethodGet, path: "/twins/dev1", auth: "SharedAccessSignature sr=x&sig=y&se=1&skn=z"})
		require.Equal(t, http.StatusUnauthorized, resp.status)
	}
	require.Equal(t, http.StatusOK, h.do(request{method: http.MethodGet, path: "/twins/dev1"}).status)
}

func TestNoQuotasNoThrottling(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	for range 50 {
		require.Equal(t, http.StatusOK, h.do(request{method: http.MethodGet, path: "/twins/dev1"}).status)
	}
}

func TestS1Quotas(t *testing.T) {
	q := rest.S1Quotas()
	require.InDelta(t, 100.0/60, q.RegistryOperations, 1e-9)
	require.Equal(t, 100.0, q.TwinReads)
	require.Equal(t, 50.0, q.TwinUpdates)
	require.Equal(t, 40.0, q.DirectMethods)
	require.InDelta(t, 20.0/60, q.Queries, 1e-9)
}
