package handlers_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// TestHostileIDsCannotChangeTheHubPath sends ids that URL normalisation
// would turn into other paths (dot-segments, escaped slashes) to every
// route that takes one. Each must be refused with a 400 problem, or reach
// exactly the twin it names, never another hub resource (which answered
// 500 before).
func TestHostileIDsCannotChangeTheHubPath(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	// A legal id made of the characters that matter in URLs: it must
	// reach its own twin.
	const odd = "odd#?%2F.%2E%2E=id"
	_, err := hub.CreateDevice(odd)
	require.NoError(t, err)
	const at = "?requestedAt=2025-01-31T08:00:00Z"

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantCode           string
	}{
		{"reboot ..", http.MethodPost, "/api/devices/%2E%2E/reboot", 400, "InvalidDeviceId"},
		{"reboot .", http.MethodPost, "/api/devices/%2E/reboot", 400, "InvalidDeviceId"},
		{"reboot .. mixed case", http.MethodPost, "/api/devices/.%2e/reboot", 400, "InvalidDeviceId"},
		{"reboot escaped slash", http.MethodPost, "/api/devices/a%2Fb/reboot", 400, "InvalidDeviceId"},
		{"reboot escaped slash to ..", http.MethodPost, "/api/devices/..%2F..%2Fdevices/reboot", 400, "InvalidDeviceId"},
		{"reboot a legal id full of URL characters", http.MethodPost, "/api/devices/odd%23%3F%252F.%252E%252E=id/reboot", 409, "DeviceNotOnline"},
		{"status of ..", http.MethodGet, "/api/reboots/%2E%2E/abc" + at, 400, "InvalidDeviceId"},
		{"status of .", http.MethodGet, "/api/reboots/%2E/abc" + at, 400, "InvalidDeviceId"},
		{"status with escaped slash", http.MethodGet, "/api/reboots/a%2F..%2Fb/abc" + at, 400, "InvalidDeviceId"},
		{"status with requestId ..", http.MethodGet, "/api/reboots/dev-1/%2E%2E" + at, 400, "InvalidArgument"},
		{"status with requestId .", http.MethodGet, "/api/reboots/dev-1/%2E" + at, 400, "InvalidArgument"},
		{"status with requestId holding a slash", http.MethodGet, "/api/reboots/dev-1/a%2Fb" + at, 400, "InvalidArgument"},
		{"status of a legal id full of URL characters", http.MethodGet, "/api/reboots/odd%23%3F%252F.%252E%252E=id/r-1" + at, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := app.do(t, tt.method, tt.path, "", nil)
			if tt.wantCode == "" {
				require.Equal(t, tt.wantStatus, resp.StatusCode, "body: %s", body)
				got := decodeJSON(t, body)
				require.Equal(t, odd, got["deviceId"])
				require.Equal(t, "timedOut", got["state"], "the twin of %q was read", odd)
				return
			}
			got := requireProblem(t, resp, body, tt.wantStatus, tt.wantCode)
			if tt.wantCode == "DeviceNotOnline" {
				require.Contains(t, got["detail"], odd)
			}
		})
	}
}
