package handlers_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

func TestRebootDeviceSync(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	dev := localhubtest.NewDevice(t, hub, "dev-sync", localhubtest.Reply(200, `{"result":"Reboot started"}`))

	tests := []struct {
		name      string
		body      string
		wantDelay int
	}{
		{"no body", "", 0},
		{"empty object", "{}", 0},
		{"all fields", `{"responseTimeoutSeconds":10,"connectTimeoutSeconds":5,"delaySeconds":3}`, 3},
		{"nulls take the defaults", `{"responseTimeoutSeconds":null,"delaySeconds":null}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().UTC().Truncate(time.Millisecond)
			resp, body := app.do(t, http.MethodPost, "/api/devices/dev-sync/reboot", tt.body, nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
			require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
			got := decodeJSON(t, body)
			requestID := got["requestId"].(string)
			require.Regexp(t, `^[0-9a-f-]{36}$`, requestID)
			requestedAt, err := time.Parse(time.RFC3339, got["requestedAt"].(string))
			require.NoError(t, err)
			require.False(t, requestedAt.Before(before))
			require.Equal(t, map[string]any{
				"deviceId":    "dev-sync",
				"requestId":   requestID,
				"requestedAt": got["requestedAt"],
				"status":      float64(200),
				"payload":     map[string]any{"result": "Reboot started"},
				"statusUrl":   app.URL + "/api/reboots/dev-sync/" + requestID + "?requestedAt=" + strings.ReplaceAll(got["requestedAt"].(string), ":", "%3A"),
			}, got)

			call := dev.NextCall(t)
			require.Equal(t, "reboot", call.Name)
			require.JSONEq(t, `{"requestId":"`+requestID+`","delaySeconds":`+itoa(tt.wantDelay)+`}`, string(call.Payload))
		})
	}
}

func TestRebootDeviceAsyncPollsStatusToCompletion(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	dev := localhubtest.NewDevice(t, hub, "dev-async", localhubtest.Reply(200, `{"result":"Reboot started"}`))
	reportReboot(t, dev, map[string]any{"lastReboot": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), "status": "running"})

	resp, body := app.do(t, http.MethodPost, "/api/devices/dev-async/reboot?code=fn-key", `{"delaySeconds":1}`,
		map[string]string{"Prefer": "respond-async"})
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "body: %s", body)
	accepted := decodeJSON(t, body)
	requestID := accepted["requestId"].(string)
	location := resp.Header.Get("Location")
	require.Equal(t, accepted["statusUrl"], location)
	require.Contains(t, location, "code=fn-key", "a Logic App polls exactly Location, so it must carry the caller's key")
	require.Equal(t, "10", resp.Header.Get("Retry-After"))
	require.Equal(t, "respond-async", resp.Header.Get("Preference-Applied"))
	call := dev.NextCall(t)
	require.JSONEq(t, `{"requestId":"`+requestID+`","delaySeconds":1}`, string(call.Payload))

	poll := func(wantStatus int, wantState string) map[string]any {
		t.Helper()
		resp, body := app.do(t, http.MethodGet, location, "", nil)
		require.Equal(t, wantStatus, resp.StatusCode, "body: %s", body)
		got := decodeJSON(t, body)
		require.Equal(t, wantState, got["state"])
		if wantStatus == http.StatusAccepted {
			require.Equal(t, location, resp.Header.Get("Location"))
			require.Equal(t, "10", resp.Header.Get("Retry-After"))
		}
		return got
	}

	// The twin still shows the previous boot.
	poll(http.StatusAccepted, "pending")
	reportReboot(t, dev, map[string]any{"status": "rebooting", "requestId": requestID})
	got := poll(http.StatusAccepted, "pending")
	require.Equal(t, "rebooting", got["deviceStatus"])

	lastReboot := time.Now().UTC().Format(time.RFC3339Nano)
	reportReboot(t, dev, map[string]any{"lastReboot": lastReboot, "status": "running", "requestId": requestID})
	got = poll(http.StatusOK, "completed")
	require.Equal(t, map[string]any{
		"deviceId":     "dev-async",
		"requestId":    requestID,
		"state":        "completed",
		"requestedAt":  accepted["requestedAt"],
		"deadline":     got["deadline"],
		"lastReboot":   lastReboot,
		"deviceStatus": "running",
		"matchedBy":    "requestId",
	}, got)
}

func TestRebootStatusOutcomes(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})

	// start reboots device id and returns the status URL.
	start := func(t *testing.T, id string) (*localhubtest.Device, string, string) {
		dev := localhubtest.NewDevice(t, hub, id, localhubtest.Reply(200, `{}`))
		resp, body := app.do(t, http.MethodPost, "/api/devices/"+id+"/reboot", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		dev.NextCall(t)
		got := decodeJSON(t, body)
		return dev, got["statusUrl"].(string), got["requestId"].(string)
	}

	t.Run("device that does not echo request ids", func(t *testing.T) {
		dev, status, _ := start(t, "silent-echo")
		last := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
		reportReboot(t, dev, map[string]any{"lastReboot": last})
		resp, body := app.do(t, http.MethodGet, status, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		got := decodeJSON(t, body)
		require.Equal(t, "completed", got["state"])
		require.Equal(t, "lastReboot", got["matchedBy"])
		require.Equal(t, last, got["lastReboot"])
	})
	t.Run("device reports failure", func(t *testing.T) {
		dev, status, requestID := start(t, "failing")
		reportReboot(t, dev, map[string]any{"status": "failed", "requestId": requestID, "reason": "firmware busy"})
		resp, body := app.do(t, http.MethodGet, status, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		got := decodeJSON(t, body)
		require.Equal(t, "failed", got["state"])
		require.Equal(t, "firmware busy", got["reason"])
	})
	t.Run("device never comes back", func(t *testing.T) {
		_, status, _ := start(t, "gone")
		resp, _ := app.do(t, http.MethodGet, status, "", nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		app.offset.Store(int64(11 * time.Minute)) // past the default 10m deadline
		defer app.offset.Store(0)
		resp, body := app.do(t, http.MethodGet, status, "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		require.Equal(t, "timedOut", decodeJSON(t, body)["state"])
	})
	t.Run("unknown device", func(t *testing.T) {
		resp, body := app.do(t, http.MethodGet, "/api/reboots/nobody/r1?requestedAt=2025-01-31T08:00:00Z", "", nil)
		requireProblem(t, resp, body, http.StatusNotFound, "DeviceNotFound")
	})
	t.Run("bad status URLs", func(t *testing.T) {
		for _, path := range []string{
			"/api/reboots/dev-1/r1",                       // no requestedAt
			"/api/reboots/dev-1/r1?requestedAt=yesterday", // not RFC 3339
			"/api/reboots/bad%20id/r1?requestedAt=2025-01-31T08:00:00Z",
			"/api/reboots/dev-1/" + strings.Repeat("r", 129) + "?requestedAt=2025-01-31T08:00:00Z",
		} {
			resp, body := app.do(t, http.MethodGet, path, "", nil)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "GET %s: %s", path, body)
		}
	})
}

func TestRebootDeviceErrors(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	localhubtest.NewDevice(t, hub, "grumpy", localhubtest.Reply(500, `{"error":"disk full"}`))
	localhubtest.NewDevice(t, hub, "mute", localhubtest.Silent)
	localhubtest.NewDevice(t, hub, "garbled", localhubtest.Reply(200, `{'result': 'ok'}`))
	_, err := hub.CreateDevice("offline")
	require.NoError(t, err)

	tests := []struct {
		name       string
		device     string
		body       string
		wantStatus int
		wantCode   string
		wantDetail string
		wantExtra  map[string]any
	}{
		{"invalid device id", "bad%20id", "", 400, "InvalidDeviceId", "device id contains ' '", nil},
		{"device id too long", strings.Repeat("d", 129), "", 400, "InvalidDeviceId", "maximum is 128", nil},
		{"response timeout too short", "grumpy", `{"responseTimeoutSeconds":4}`, 400, "InvalidArgument", "responseTimeoutSeconds must be within 5..300", nil},
		{"response timeout too long", "grumpy", `{"responseTimeoutSeconds":301}`, 400, "InvalidArgument", "responseTimeoutSeconds", nil},
		{"negative connect timeout", "grumpy", `{"connectTimeoutSeconds":-1}`, 400, "InvalidArgument", "connectTimeoutSeconds must be within 0..300", nil},
		{"connect timeout too long", "grumpy", `{"connectTimeoutSeconds":301}`, 400, "InvalidArgument", "connectTimeoutSeconds", nil},
		{"negative delay", "grumpy", `{"delaySeconds":-1}`, 400, "InvalidArgument", "delaySeconds", nil},
		{"fractional timeout", "grumpy", `{"responseTimeoutSeconds":5.5}`, 400, "InvalidArgument", "responseTimeoutSeconds must be a whole number", nil},
		{"string timeout", "grumpy", `{"responseTimeoutSeconds":"30"}`, 400, "InvalidArgument", "whole number", nil},
		{"unknown field", "grumpy", `{"delay":5}`, 400, "InvalidArgument", `unknown field "delay"`, nil},
		{"malformed JSON", "grumpy", `{"delaySeconds":`, 400, "MalformedJson", "not valid JSON", nil},
		{"not an object", "grumpy", `[1]`, 400, "MalformedJson", "JSON object", nil},
		{"two objects", "grumpy", `{} {}`, 400, "MalformedJson", "data after", nil},
		{"body too large", "grumpy", `{"delaySeconds":1` + strings.Repeat(" ", 17<<10) + `}`, 400, "BodyTooLarge", "16384 bytes", nil},
		{"unknown device", "ghost", "", 404, "DeviceNotFound", `"ghost"`, nil},
		{"device offline", "offline", "", 409, "DeviceNotOnline", "not connected", nil},
		{"device answers 500", "grumpy", "", 502, "DeviceError", "refused the reboot: it answered the reboot method with status 500", map[string]any{
			"deviceId": "grumpy", "deviceStatus": float64(500), "devicePayload": map[string]any{"error": "disk full"}}},
		{"device answers with a payload that is not JSON", "garbled", "", 502, "DeviceError", "payload that is not JSON", map[string]any{"deviceId": "garbled"}},
		{"device never answers", "mute", `{"responseTimeoutSeconds":5}`, 504, "DeviceTimeout", "outcome is unknown", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := app.do(t, http.MethodPost, "/api/devices/"+tt.device+"/reboot", tt.body,
				map[string]string{"X-Azure-Functions-InvocationId": "inv-1"})
			got := requireProblem(t, resp, body, tt.wantStatus, tt.wantCode)
			require.Contains(t, got["detail"], tt.wantDetail)
			require.Equal(t, "inv-1", got["invocationId"])
			for k, v := range tt.wantExtra {
				require.Equal(t, v, got[k], "member %s", k)
			}
		})
	}
}

func TestRebootDeviceHubRefusesCredentials(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	const wrongKey = "d3Jvbmcta2V5LXdyb25nLWtleQ=="
	app := newTestApp(t, hub, appOptions{connStr: "HostName=" + hub.Hostname() + ";SharedAccessKeyName=service;SharedAccessKey=" + wrongKey})
	localhubtest.NewDevice(t, hub, "dev-1", localhubtest.Reply(200, `{}`))

	resp, body := app.do(t, http.MethodPost, "/api/devices/dev-1/reboot", "", nil)
	got := requireProblem(t, resp, body, http.StatusInternalServerError, "InternalError")
	require.Equal(t, float64(401), got["hubStatus"])
	require.NotContains(t, string(body), wrongKey)
	require.NotContains(t, app.logs.String(), wrongKey)
}

// requireProblem checks an RFC 9457 problem response and returns its body.
func requireProblem(t testing.TB, resp *http.Response, body []byte, status int, code string) map[string]any {
	t.Helper()
	require.Equal(t, status, resp.StatusCode, "body: %s", body)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	got := decodeJSON(t, body)
	require.Equal(t, code, got["errorCode"])
	require.Equal(t, float64(status), got["status"])
	// about:blank: no per-problem documentation exists to point to, so the
	// title is the status phrase and errorCode says what happened.
	require.Equal(t, "about:blank", got["type"])
	require.Equal(t, http.StatusText(status), got["title"])
	require.NotEmpty(t, got["detail"])
	return got
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// reportReboot reports the iothubDM.reboot section, where the handlers
// look for a device's reboot progress.
func reportReboot(t testing.TB, dev *localhubtest.Device, section map[string]any) {
	t.Helper()
	dev.ReportJSON(t, map[string]any{"iothubDM": map[string]any{"reboot": section}})
}

// A caller that disconnects while the hub waits for the device learns
// nothing, but the device may be rebooting: the log must say so, not show
// a request with status 0.
func TestRebootDeviceCallerDisconnectIsLogged(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	dev := localhubtest.NewDevice(t, hub, "dev-gone", localhubtest.Silent)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, app.URL+"/api/devices/dev-gone/reboot", strings.NewReader(`{"responseTimeoutSeconds":60}`))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	call := dev.NextCall(t) // the device has the request
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	var payload struct{ RequestID string }
	require.NoError(t, json.Unmarshal(call.Payload, &payload))
	require.Eventually(t, func() bool { return strings.Contains(app.logs.String(), "outcome=callerDisconnected") }, 10*time.Second, 10*time.Millisecond)
	logs := app.logs.String()
	require.Contains(t, logs, `level=WARN msg="reboot outcome unknown: the caller disconnected during the reboot call; the device may already be rebooting" deviceId=dev-gone requestId=`+payload.RequestID)
	require.Contains(t, logs, `msg=request method=POST route="POST /api/devices/{deviceId}/reboot" outcome=callerDisconnected`)
	require.NotContains(t, logs, "status=0")
}
