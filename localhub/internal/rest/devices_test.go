package rest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

func TestCreateDevice(t *testing.T) {
	h := newTestHub(t)

	resp := h.do(request{method: http.MethodPut, path: "/devices/dev1",
		body: `{"deviceId":"dev1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}},"capabilities":{"iotEdge":false}}`})
	golden(t, "create_device", resp)
	dev := decodeJSON(t, resp.body)
	require.Equal(t, "dev1", dev["deviceId"])
	keys := dev["authentication"].(map[string]any)["symmetricKey"].(map[string]any)
	require.NotEmpty(t, keys["primaryKey"], "keys are generated when empty")

	dup := h.do(request{method: http.MethodPut, path: "/devices/dev1", body: `{"deviceId":"dev1"}`})
	golden(t, "create_device_exists", dup)
}

func TestPutDeviceRejectsBadBodies(t *testing.T) {
	h := newTestHub(t)
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"id mismatch", `{"deviceId":"other"}`, http.StatusBadRequest, "ArgumentInvalid"},
		{"not json", `{"deviceId":`, http.StatusBadRequest, "IotHubFormatError"},
		{"empty body", ``, http.StatusBadRequest, "IotHubFormatError"},
		{"trailing data", `{"deviceId":"d"} {}`, http.StatusBadRequest, "IotHubFormatError"},
		{"null device", `null`, http.StatusBadRequest, "ArgumentNull"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodPut, path: "/devices/d", body: tt.body})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			require.Equal(t, tt.code, resp.header.Get("iothub-errorcode"))
		})
	}
	golden(t, "put_device_id_mismatch", h.do(request{method: http.MethodPut, path: "/devices/d", body: `{"deviceId":"other"}`}))
	_, err := h.reg.GetDevice("d")
	require.Error(t, err, "no bad body created a device")
}

func TestPutDeviceBodyIDMayBeOmitted(t *testing.T) {
	h := newTestHub(t)
	resp := h.do(request{method: http.MethodPut, path: "/devices/d", body: `{}`})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	require.Equal(t, "d", decodeJSON(t, resp.body)["deviceId"])
}

func TestGetDevice(t *testing.T) {
	h := newTestHub(t)
	created := h.createDevice("dev1")

	resp := h.do(request{method: http.MethodGet, path: "/devices/dev1"})
	require.Equal(t, http.StatusOK, resp.status)
	var got registry.Device
	require.NoError(t, json.Unmarshal(resp.body, &got))
	require.Equal(t, created.ETag, got.ETag)
	require.Equal(t, created.Authentication.SymmetricKey, got.Authentication.SymmetricKey)

	golden(t, "get_device_not_found", h.do(request{method: http.MethodGet, path: "/devices/missing"}))
}

// IoT Hub's device ids allow ':' (MAC addresses) and ';' among others
// (azure-iot-sdk-csharp's DeviceIdRegex); '/' and spaces are refused.
func TestDeviceIDCharacters(t *testing.T) {
	h := newTestHub(t)
	for _, id := range []string{"AA:BB:CC:DD:EE:FF", "site;1", "a+b", "x#1", "q?", "50%", "(a),b=c@d$e'f!g*h_i.j-k"} {
		resp := h.do(request{method: http.MethodPut, path: "/devices/" + url.PathEscape(id), body: `{}`})
		require.Equal(t, http.StatusOK, resp.status, "%s: %s", id, resp.body)
		require.Equal(t, id, decodeJSON(t, resp.body)["deviceId"])
		twin := h.do(request{method: http.MethodGet, path: "/twins/" + url.PathEscape(id)})
		require.Equal(t, http.StatusOK, twin.status, id)
	}
	for _, id := range []string{"a b", "a&b", "é"} {
		resp := h.do(request{method: http.MethodPut, path: "/devices/" + url.PathEscape(id), body: `{}`})
		require.Equal(t, http.StatusBadRequest, resp.status, id)
		require.Equal(t, "ArgumentInvalid", resp.header.Get("iothub-errorcode"), id)
	}
}

func TestDeviceIDsWithEscapedSlashSurvive(t *testing.T) {
	h := newTestHub(t)
	resp := h.do(request{method: http.MethodGet, path: "/devices/a%2Fb"})
	require.Equal(t, http.StatusNotFound, resp.status)
	require.Contains(t, string(resp.body), "ErrorCode:DeviceNotFound;a/b")
}

func TestUpdateDeviceIfMatch(t *testing.T) {
	h := newTestHub(t)
	dev := h.createDevice("dev1")

	tests := []struct {
		name    string
		ifMatch func(etag string) string
		status  int
	}{
		{"star", func(string) string { return "*" }, http.StatusOK},
		{"quoted star (Node)", func(string) string { return `"*"` }, http.StatusOK},
		{"quoted etag", func(e string) string { return `"` + e + `"` }, http.StatusOK},
		{"stale etag", func(string) string { return `"bm9wZQ=="` }, http.StatusPreconditionFailed},
	}
	etag := dev.ETag
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodPut, path: "/devices/dev1",
				body: `{"deviceId":"dev1","status":"enabled"}`, headers: map[string]string{"If-Match": tt.ifMatch(etag)}})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			if resp.status == http.StatusOK {
				etag = decodeJSON(t, resp.body)["etag"].(string)
			}
		})
	}
	golden(t, "update_device_precondition_failed", h.do(request{method: http.MethodPut, path: "/devices/dev1",
		body: `{"deviceId":"dev1"}`, headers: map[string]string{"If-Match": `"bm9wZQ=="`}}))

	missing := h.do(request{method: http.MethodPut, path: "/devices/ghost", body: `{"deviceId":"ghost"}`,
		headers: map[string]string{"If-Match": "*"}})
	require.Equal(t, http.StatusNotFound, missing.status)
	require.Equal(t, "DeviceNotFound", missing.header.Get("iothub-errorcode"))
}

func TestDisablingADeviceDisconnectsIt(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")

	resp := h.do(request{method: http.MethodPut, path: "/devices/dev1",
		body: `{"deviceId":"dev1","status":"disabled"}`, headers: map[string]string{"If-Match": "*"}})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	require.Equal(t, "disabled", decodeJSON(t, resp.body)["status"])
	require.Equal(t, []string{"dev1"}, h.devices.disconnects())
}

func TestDeleteDevice(t *testing.T) {
	h := newTestHub(t)
	tests := []struct {
		name    string
		ifMatch func(etag string) string
		status  int
	}{
		{"no If-Match", func(string) string { return "" }, http.StatusNoContent},
		{"star", func(string) string { return "*" }, http.StatusNoContent},
		{"quoted star", func(string) string { return `"*"` }, http.StatusNoContent},
		{"quoted etag", func(e string) string { return `"` + e + `"` }, http.StatusNoContent},
		{"stale etag", func(string) string { return `"bm9wZQ=="` }, http.StatusPreconditionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := h.createDevice("dev1")
			headers := map[string]string{}
			if v := tt.ifMatch(dev.ETag); v != "" {
				headers["If-Match"] = v
			}
			resp := h.do(request{method: http.MethodDelete, path: "/devices/dev1", headers: headers})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			if tt.status == http.StatusNoContent {
				require.Empty(t, resp.body)
				require.Contains(t, h.devices.disconnects(), "dev1")
				return
			}
			require.NoError(t, h.reg.DeleteDevice("dev1", ""))
		})
	}
	golden(t, "delete_device_not_found", h.do(request{method: http.MethodDelete, path: "/devices/missing"}))
}

func TestListDevices(t *testing.T) {
	h := newTestHub(t)
	for _, id := range []string{"c", "a", "b"} {
		h.createDevice(id)
	}
	tests := []struct {
		name, path string
		want       []string
	}{
		{"Go path", "/devices", []string{"a", "b", "c"}},
		{"Node path", "/devices/", []string{"a", "b", "c"}},
		{"top", "/devices?api-version=2020-09-30&top=2", []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodGet, path: tt.path})
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			var devs []registry.Device
			require.NoError(t, json.Unmarshal(resp.body, &devs))
			var ids []string
			for _, d := range devs {
				ids = append(ids, d.DeviceID)
			}
			require.Equal(t, tt.want, ids)
		})
	}
	for _, top := range []string{"0", "1001", "x"} {
		resp := h.do(request{method: http.MethodGet, path: "/devices?api-version=2021-04-12&top=" + top})
		require.Equal(t, http.StatusBadRequest, resp.status, "top=%s", top)
		require.Equal(t, "ArgumentInvalid", resp.header.Get("iothub-errorcode"))
	}
}

func TestListDevicesEmptyIsArray(t *testing.T) {
	h := newTestHub(t)
	resp := h.do(request{method: http.MethodGet, path: "/devices"})
	require.Equal(t, http.StatusOK, resp.status)
	require.JSONEq(t, `[]`, string(resp.body))
}

func TestStatistics(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("a")
	h.createDevice("b")
	resp := h.do(request{method: http.MethodPut, path: "/devices/b", body: `{"status":"disabled"}`, headers: map[string]string{"If-Match": "*"}})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	h.devices.mu.Lock()
	h.devices.connected = 1
	h.devices.mu.Unlock()

	golden(t, "statistics_devices", h.do(request{method: http.MethodGet, path: "/statistics/devices"}))
	golden(t, "statistics_service", h.do(request{method: http.MethodGet, path: "/statistics/service"}))
}
