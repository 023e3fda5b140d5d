package rest_test

import (
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

func TestAuthentication(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	owner, ok := h.reg.Policy("iothubowner")
	require.True(t, ok)
	dev, err := h.reg.GetDevice("dev1")
	require.NoError(t, err)
	srvURL, err := url.Parse(h.srv.URL)
	require.NoError(t, err)

	goToken := func(resource, policy, key string, expiry time.Time) string {
		tok, err := sas.New(resource, policy, key, expiry)
		require.NoError(t, err)
		return tok
	}
	otherKey := "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="

	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"Go token, escaped sr", goToken(hubHost, "iothubowner", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusOK},
		{"Node token, raw sr", nodeToken(t, hubHost, "iothubowner", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusOK},
		{"secondary key", goToken(hubHost, "iothubowner", owner.SecondaryKey, fixedNow.Add(time.Hour)), http.StatusOK},
		{"audience is the dialled host:port", goToken(srvURL.Host, "iothubowner", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusOK},
		{"audience is the dialled host", goToken(srvURL.Hostname(), "iothubowner", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusOK},
		{"audience covers the path", goToken(hubHost+"/devices", "iothubowner", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusOK},
		{"expired within clock skew", goToken(hubHost, "iothubowner", owner.PrimaryKey, fixedNow.Add(-5*time.Minute+time.Second)), http.StatusOK},
		{"expired beyond clock skew", goToken(hubHost, "iothubowner", owner.PrimaryKey, fixedNow.Add(-5*time.Minute-time.Second)), http.StatusUnauthorized},
		{"wrong key", goToken(hubHost, "iothubowner", otherKey, fixedNow.Add(time.Hour)), http.StatusUnauthorized},
		{"unknown policy", goToken(hubHost, "nosuchpolicy", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusUnauthorized},
		{"other hub", goToken("otherhub.azure-devices.net", "iothubowner", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusUnauthorized},
		{"other path", goToken(hubHost+"/twins", "iothubowner", owner.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusUnauthorized},
		{"device token (no skn)", goToken(hubHost, "", dev.Authentication.SymmetricKey.PrimaryKey, fixedNow.Add(time.Hour)), http.StatusUnauthorized},
		{"garbage token", "SharedAccessSignature sr=x", http.StatusUnauthorized},
		{"no header", "none", http.StatusUnauthorized},
		{"basic auth", "Basic dXNlcjpwYXNz", http.StatusUnauthorized},
		{"bearer", "Bearer " + testBearer, http.StatusOK},
		{"wrong bearer", "Bearer nope", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodGet, path: "/devices/dev1", auth: tt.auth})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			if tt.status == http.StatusUnauthorized {
				golden(t, "unauthorized", resp)
			}
		})
	}
}

func TestBearerDisabledWithoutConfiguredToken(t *testing.T) {
	h := newTestHubWith(t, func(d *depsOverride) { d.bearer = "" })
	resp := h.do(request{method: http.MethodGet, path: "/devices", auth: "Bearer "})
	require.Equal(t, http.StatusUnauthorized, resp.status)
}

func TestAuthorizationRights(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	tests := []struct {
		policy, method, path, body string
		status                     int
	}{
		{"registryRead", http.MethodGet, "/devices/dev1", "", http.StatusOK},
		{"registryRead", http.MethodGet, "/statistics/devices", "", http.StatusOK},
		{"registryRead", http.MethodPut, "/devices/dev2", `{}`, http.StatusUnauthorized},
		{"registryRead", http.MethodPost, "/twins/dev1/methods", `{"methodName":"m"}`, http.StatusUnauthorized},
		{"registryRead", http.MethodGet, "/twins/dev1", "", http.StatusUnauthorized},
		{"registryReadWrite", http.MethodPut, "/devices/dev2", `{}`, http.StatusOK},
		{"registryReadWrite", http.MethodDelete, "/devices/dev2", "", http.StatusNoContent},
		{"registryReadWrite", http.MethodPost, "/devices/query", `{"query":"SELECT * FROM devices"}`, http.StatusUnauthorized},
		{"service", http.MethodGet, "/twins/dev1", "", http.StatusOK},
		{"service", http.MethodPatch, "/twins/dev1", `{"tags":{"a":1}}`, http.StatusOK},
		{"service", http.MethodPost, "/twins/dev1/methods", `{"methodName":"m"}`, http.StatusOK},
		{"service", http.MethodPost, "/devices/query", `{"query":"SELECT * FROM devices"}`, http.StatusOK},
		{"service", http.MethodGet, "/statistics/service", "", http.StatusOK},
		{"service", http.MethodGet, "/devices/dev1", "", http.StatusUnauthorized},
		{"device", http.MethodGet, "/twins/dev1", "", http.StatusUnauthorized},
		{"serviceAndRegistryRead", http.MethodGet, "/devices/dev1", "", http.StatusOK},
		{"serviceAndRegistryRead", http.MethodPost, "/twins/dev1/methods", `{"methodName":"m"}`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.policy+" "+tt.method+" "+tt.path, func(t *testing.T) {
			resp := h.do(request{method: tt.method, path: tt.path, body: tt.body, auth: h.policyToken(tt.policy)})
			require.Equal(t, tt.status, resp.status, string(resp.body))
		})
	}
	golden(t, "unauthorized_rights", h.do(request{method: http.MethodPost, path: "/twins/dev1/methods",
		body: `{"methodName":"m"}`, auth: h.policyToken("registryRead")}))
}

// A token the server verified once is remembered (tokenCache); these are
// what must still hold for it on every request.
func TestRepeatedTokenIsCheckedOnEveryRequest(t *testing.T) {
	var clock atomic.Int64
	clock.Store(fixedNow.UnixNano())
	h := newTestHubWith(t, func(d *depsOverride) {
		d.bearer = testBearer
		d.now = func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	})
	h.createDevice("dev1")
	h.createDevice("dev2")
	owner, ok := h.reg.Policy("iothubowner")
	require.True(t, ok)
	expiry := fixedNow.Add(time.Hour).Truncate(time.Second) // se is whole seconds
	mint := func(resource, key string) string {
		tok, err := sas.New(resource, "iothubowner", key, expiry)
		require.NoError(t, err)
		return tok
	}
	get := func(path, auth string) int {
		return h.do(request{method: http.MethodGet, path: path, auth: auth}).status
	}

	scoped := mint(hubHost+"/devices/dev1", owner.PrimaryKey)
	for range 3 {
		require.Equal(t, http.StatusOK, get("/devices/dev1", scoped))
	}
	require.Equal(t, http.StatusUnauthorized, get("/devices/dev2", scoped), "the audience is checked per request")

	// The same sr, se and skn with another key's signature.
	forged := mint(hubHost+"/devices/dev1", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
	require.Equal(t, strings.Split(scoped, "&sig=")[0], strings.Split(forged, "&sig=")[0])
	require.Equal(t, http.StatusUnauthorized, get("/devices/dev1", forged))
	require.Equal(t, http.StatusOK, get("/devices/dev1", scoped))

	clock.Store(expiry.Add(sas.MaxClockSkew).UnixNano())
	require.Equal(t, http.StatusOK, get("/devices/dev1", scoped), "valid up to expiry plus the skew")
	clock.Store(expiry.Add(sas.MaxClockSkew + time.Second).UnixNano())
	require.Equal(t, http.StatusUnauthorized, get("/devices/dev1", scoped))
}
