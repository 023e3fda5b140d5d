package rest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

func TestGetTwin(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")

	resp := h.do(request{method: http.MethodGet, path: "/twins/dev1"})
	golden(t, "get_twin", resp)
	var twin registry.Twin
	require.NoError(t, json.Unmarshal(resp.body, &twin))
	require.Equal(t, `"`+twin.ETag+`"`, resp.header.Get("ETag"))

	golden(t, "get_twin_not_found", h.do(request{method: http.MethodGet, path: "/twins/missing"}))
}

func TestPatchTwin(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")

	tests := []struct {
		name, body string
		wantTags   map[string]any
		wantFreq   any
	}{
		{
			name:     "Node patch",
			body:     `{"tags":{"site":"lab"},"properties":{"desired":{"freq":5}}}`,
			wantTags: map[string]any{"site": "lab"},
			wantFreq: float64(5),
		},
		{
			// The Go SDK (UpdateDeviceTwin) and the az CLI (device-twin update
			// --set) send a twin read back whole: read-only fields and the
			// hub-maintained $metadata/$version included. IoT Hub ignores its
			// reported section.
			name: "Go whole twin",
			body: `{"deviceId":"dev1","etag":"AAAAAAAAAAE=","version":3,"status":"enabled",
				"tags":{"site":"lab","floor":2},
				"properties":{"desired":{"freq":7,"$metadata":{"$lastUpdated":"2024-01-01T00:00:00Z"},"$version":4},
				              "reported":{"battery":1,"$metadata":{"$lastUpdated":"2024-01-01T00:00:00Z"},"$version":2}}}`,
			wantTags: map[string]any{"site": "lab", "floor": float64(2)},
			wantFreq: float64(7),
		},
		{
			// The C# SDK's Twin always carries an empty reported section.
			name:     "C# twin patch",
			body:     `{"tags":{"site":"lab","floor":2},"properties":{"desired":{"freq":9},"reported":{}}}`,
			wantTags: map[string]any{"site": "lab", "floor": float64(2)},
			wantFreq: float64(9),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodPatch, path: "/twins/dev1", body: tt.body})
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			var twin registry.Twin
			require.NoError(t, json.Unmarshal(resp.body, &twin))
			require.Equal(t, tt.wantTags, twin.Tags)
			require.Equal(t, tt.wantFreq, twin.Properties.Desired["freq"])
			require.NotContains(t, twin.Properties.Reported, "battery", "reported is read-only for services")
			require.Equal(t, `"`+twin.ETag+`"`, resp.header.Get("ETag"))
		})
	}
}

func TestReplaceTwin(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	resp := h.do(request{method: http.MethodPatch, path: "/twins/dev1", body: `{"tags":{"a":1,"b":2},"properties":{"desired":{"x":1,"y":2}}}`})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))

	resp = h.do(request{method: http.MethodPut, path: "/twins/dev1", body: `{"tags":{"c":3},"properties":{"desired":{"z":3}}}`})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	var twin registry.Twin
	require.NoError(t, json.Unmarshal(resp.body, &twin))
	require.Equal(t, map[string]any{"c": float64(3)}, twin.Tags)
	require.NotContains(t, twin.Properties.Desired, "x")
	require.Equal(t, float64(3), twin.Properties.Desired["z"])
}

func TestUpdateTwinIfMatch(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	twin, err := h.reg.GetTwin("dev1")
	require.NoError(t, err)

	tests := []struct {
		name    string
		method  string
		ifMatch func(etag string) string
		status  int
	}{
		{"patch no If-Match", http.MethodPatch, func(string) string { return "" }, http.StatusOK},
		{"patch star", http.MethodPatch, func(string) string { return "*" }, http.StatusOK},
		{"patch quoted star", http.MethodPatch, func(string) string { return `"*"` }, http.StatusOK},
		{"patch quoted etag", http.MethodPatch, func(e string) string { return `"` + e + `"` }, http.StatusOK},
		{"patch stale etag", http.MethodPatch, func(string) string { return `"AAAAAAAAAAA="` }, http.StatusPreconditionFailed},
		{"put quoted etag", http.MethodPut, func(e string) string { return `"` + e + `"` }, http.StatusOK},
		{"put stale etag", http.MethodPut, func(string) string { return `"AAAAAAAAAAA="` }, http.StatusPreconditionFailed},
	}
	etag := twin.ETag
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := map[string]string{}
			if v := tt.ifMatch(etag); v != "" {
				headers["If-Match"] = v
			}
			resp := h.do(request{method: tt.method, path: "/twins/dev1", body: `{"tags":{"n":1}}`, headers: headers})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			if resp.status == http.StatusOK {
				etag = decodeJSON(t, resp.body)["etag"].(string)
			}
		})
	}
	golden(t, "patch_twin_precondition_failed", h.do(request{method: http.MethodPatch, path: "/twins/dev1",
		body: `{"tags":{"n":1}}`, headers: map[string]string{"If-Match": `"AAAAAAAAAAA="`}}))
}

func TestUpdateTwinErrors(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown device", "/twins/missing", `{"tags":{"a":1}}`, http.StatusNotFound, "DeviceNotFound"},
		{"bad json", "/twins/dev1", `{"tags":`, http.StatusBadRequest, "IotHubFormatError"},
		{"invalid key", "/twins/dev1", `{"properties":{"desired":{"a.b":1}}}`, http.StatusBadRequest, "ArgumentInvalid"},
		{"empty desired key", "/twins/dev1", `{"properties":{"desired":{"":1}}}`, http.StatusBadRequest, "ArgumentInvalid"},
		{"empty nested tag key", "/twins/dev1", `{"tags":{"a":{"":1}}}`, http.StatusBadRequest, "ArgumentInvalid"},
		{"tags not an object", "/twins/dev1", `{"tags":5}`, http.StatusBadRequest, "IotHubFormatError"},
		{"body is an array", "/twins/dev1", `[]`, http.StatusBadRequest, "IotHubFormatError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodPatch, path: tt.path, body: tt.body})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			require.Equal(t, tt.code, resp.header.Get("iothub-errorcode"))
		})
	}
}

// Bad twin bodies are refused with IoT Hub's envelope and change nothing:
// a null twin is not "replace with nothing", and reported properties are
// the device's.
func TestUpdateTwinRefusesBadInputAndLosesNothing(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	resp := h.do(request{method: http.MethodPatch, path: "/twins/dev1", body: `{"tags":{"site":"lab"},"properties":{"desired":{"freq":5}}}`})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	before := resp.body

	tests := []struct {
		name, method, body, code string
	}{
		{"replace with null", http.MethodPut, `null`, "ArgumentNull"},
		{"patch with null", http.MethodPatch, ` null `, "ArgumentNull"},
		{"patch reported", http.MethodPatch, `{"properties":{"reported":{"battery":1}}}`, "ArgumentInvalid"},
		{"patch reported with desired", http.MethodPatch, `{"properties":{"desired":{"freq":6},"reported":{"battery":1}}}`, "ArgumentInvalid"},
		{"replace reported", http.MethodPut, `{"properties":{"desired":{},"reported":{"battery":1}}}`, "ArgumentInvalid"},
		{"reported not an object", http.MethodPatch, `{"properties":{"reported":"x"}}`, "ArgumentInvalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: tt.method, path: "/twins/dev1", body: tt.body})
			require.Equal(t, http.StatusBadRequest, resp.status, string(resp.body))
			require.Equal(t, tt.code, resp.header.Get("iothub-errorcode"))
			after := h.do(request{method: http.MethodGet, path: "/twins/dev1"})
			require.JSONEq(t, string(before), string(after.body), "a refused update changes nothing")
		})
	}
	golden(t, "replace_twin_null", h.do(request{method: http.MethodPut, path: "/twins/dev1", body: `null`}))
	golden(t, "patch_twin_reported", h.do(request{method: http.MethodPatch, path: "/twins/dev1", body: `{"properties":{"reported":{"battery":1}}}`}))
}

// A new twin's $metadata.$lastUpdated is its creation time, as on IoT Hub.
func TestNewTwinIsStampedWithCreationTime(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	twin := decodeJSON(t, h.do(request{method: http.MethodGet, path: "/twins/dev1"}).body)
	props := twin["properties"].(map[string]any)
	for _, sec := range []string{"desired", "reported"} {
		meta := props[sec].(map[string]any)["$metadata"].(map[string]any)
		require.Equal(t, fixedNow.Format("2006-01-02T15:04:05.0000000Z"), meta["$lastUpdated"], sec)
	}
}

// Twin date strings with an offset read back and query in UTC.
func TestTwinDatesReadBackAndQueryInUTC(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	resp := h.do(request{method: http.MethodPatch, path: "/twins/dev1",
		body: `{"properties":{"desired":{"rebootAt":"2024-05-06T11:58:00-08:00","local":"2024-05-06T11:58:00"}}}`})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	desired := decodeJSON(t, resp.body)["properties"].(map[string]any)["desired"].(map[string]any)
	require.Equal(t, "2024-05-06T19:58:00Z", desired["rebootAt"])
	require.Equal(t, "2024-05-06T11:58:00", desired["local"], "a date without zone is kept as sent")

	q := h.do(request{method: http.MethodPost, path: "/devices/query",
		body: `{"query":"SELECT deviceId FROM devices WHERE properties.desired.rebootAt >= '2024-05-06T19:00:00Z'"}`})
	require.Equal(t, http.StatusOK, q.status, string(q.body))
	require.JSONEq(t, `[{"deviceId":"dev1"}]`, string(q.body))
}
