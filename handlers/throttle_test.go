package handlers_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// A hub allowing one call per hour of each kind the app makes: the second
// call of each kind is throttled (after the client's short retries for the
// idempotent ones) and reaches the caller as 429 Throttled.
func TestThrottledHubMapsTo429(t *testing.T) {
	t.Parallel()
	const oncePerHour = 1.0 / 3600
	hub := localhubtest.New(t, &localhub.Options{Quotas: localhub.Quotas{
		DirectMethods: oncePerHour, TwinReads: oncePerHour, Queries: oncePerHour,
	}})
	app := newTestApp(t, hub, appOptions{})
	dev := localhubtest.NewDevice(t, hub, "dev-throttled", localhubtest.Reply(200, `{"result":"Reboot started"}`))

	for _, tt := range []struct{ method, path string }{
		{http.MethodPost, "/api/devices/dev-throttled/reboot"},
		{http.MethodGet, "/api/reboots/dev-throttled/r1?requestedAt=2025-01-31T08:00:00Z"},
		{http.MethodGet, "/api/reboots"},
	} {
		resp, body := app.do(t, tt.method, tt.path, "", nil)
		require.Less(t, resp.StatusCode, 300, "first %s %s: %s", tt.method, tt.path, body)

		resp, body = app.do(t, tt.method, tt.path, "", nil)
		got := requireProblem(t, resp, body, http.StatusTooManyRequests, "Throttled")
		require.Equal(t, "ThrottlingException", got["hubErrorCode"])
		// The local hub, like IoT Hub as far as documented, names no
		// Retry-After; the app suggests its default.
		require.Equal(t, "10", resp.Header.Get("Retry-After"), "%s %s", tt.method, tt.path)
	}
	require.Equal(t, "reboot", dev.NextCall(t).Name, "the first reboot reached the device")
}
