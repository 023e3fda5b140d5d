package funchost

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// appSettings are the app settings of the repository's function app
// pointed at a local hub (settings.md), as cmd/localdev sets them: the
// Event Hubs trigger reads the hub's built-in endpoint over AMQP.
func appSettings(t testing.TB, hub *localhub.Hub) map[string]string {
	t.Helper()
	cs, err := hub.ServiceConnectionString("serviceAndRegistryRead")
	require.NoError(t, err)
	eh, err := hub.EventHubConnectionString("service", true)
	require.NoError(t, err)
	return map[string]string{
		"IOTHUB_CONNECTION_STRING":                  cs,
		"IOTHUB_ENDPOINT":                           hub.HTTPSURL(),
		"IOTHUB_CA_FILE":                            hub.CAFile(),
		"IOTHUB_EVENTHUB_CONNECTION":                eh,
		"IOTHUB_EVENTHUB_NAME":                      hub.EventHubName(),
		"IOTHUB_CONSUMER_GROUP":                     "localdev",
		"AzureWebJobs.TwinChangeProcessor.Disabled": "false",
	}
}

// TestFunctionApp runs the repository's real handler under the local host
// against a local hub with a device played over MQTT: forwarded HTTP
// functions, the envelope mode, and the Event Hubs batch the real handler
// must accept.
func TestFunctionApp(t *testing.T) {
	app := funchosttest.AppRoot(t)
	hub := localhubtest.New(t, nil)
	logs := newLogRecorder(t)
	h := startHost(t, Options{ScriptRoot: app, Settings: appSettings(t, hub), Logger: logs.logger()})
	dev := localhubtest.NewDevice(t, hub, "dev-1", localhubtest.Reply(200, `{"result":"Reboot started"}`))

	t.Run("ready", func(t *testing.T) {
		status, body := do(t, http.MethodGet, h.URL()+"/", nil, nil)
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, string(body), "Functions 4.0 app is up and running")
		logs.await(t, "the forwarded mode", containsAll("function loaded", "function=RebootDevice", "mode=forwarded"))
	})

	t.Run("reboot forwarded", func(t *testing.T) {
		status, body := do(t, http.MethodPost, h.URL()+"/api/devices/dev-1/reboot", nil, nil)
		require.Equal(t, http.StatusOK, status, "body: %s", body)
		require.Equal(t, "reboot", dev.NextCall(t).Name)
		var got struct {
			DeviceID  string `json:"deviceId"`
			Status    int    `json:"status"`
			StatusURL string `json:"statusUrl"`
		}
		require.NoError(t, json.Unmarshal(body, &got))
		require.Equal(t, "dev-1", got.DeviceID)
		require.Equal(t, 200, got.Status)
		require.True(t, strings.HasPrefix(got.StatusURL, h.URL()+"/api/reboots/dev-1/"), "built from the caller's Host: %s", got.StatusURL)
	})

	t.Run("reboot async then status", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.URL()+"/api/devices/dev-1/reboot", nil)
		require.NoError(t, err)
		req.Header.Set("Prefer", "respond-async")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.Equal(t, "reboot", dev.NextCall(t).Name)
		status, body := do(t, http.MethodGet, resp.Header.Get("Location"), nil, nil)
		require.Contains(t, []int{http.StatusOK, http.StatusAccepted}, status, "body: %s", body)
	})

	t.Run("twin change reaches TwinChangeProcessor", func(t *testing.T) {
		const lastReboot = "2025-06-01T12:00:05.123Z"
		dev.ReportJSON(t, map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"lastReboot": lastReboot, "status": "running"}}})
		logs.await(t, "the invocation's Logs entry", containsAll("reboot reported", "deviceId=dev-1", "lastReboot="+lastReboot, "function=TwinChangeProcessor"))
		logs.await(t, "a successful invocation", containsAll("Executed 'Functions.TwinChangeProcessor' (Succeeded)"))
		// The handler writes the line to Logs only, so the host prints it once.
		require.Equal(t, 1, logs.count(containsAll("reboot reported", "deviceId=dev-1", "lastReboot="+lastReboot)))
		require.Zero(t, logs.count(containsAll("WARN", "source=handler")), "the handler warned about the envelope")
	})

	t.Run("unknown route", func(t *testing.T) {
		status, _ := do(t, http.MethodGet, h.URL()+"/api/devices/dev-1", nil, nil)
		require.Equal(t, http.StatusNotFound, status)
	})

	t.Run("device not found comes from the handler", func(t *testing.T) {
		status, body := do(t, http.MethodPost, h.URL()+"/api/devices/nobody/reboot", nil, nil)
		require.Equal(t, http.StatusNotFound, status)
		require.Contains(t, string(body), "DeviceNotFound")
	})
}

// TestFunctionAppEnvelopeMode runs the real handler with forwarding off
// (overridden by an AzureFunctionsJobHost__ setting), so RebootDevice gets
// the §2.1 envelope and answers through Outputs.res.
func TestFunctionAppEnvelopeMode(t *testing.T) {
	app := funchosttest.AppRoot(t)
	hub := localhubtest.New(t, nil)
	settings := appSettings(t, hub)
	settings["AzureFunctionsJobHost__customHandler__enableForwardingHttpRequest"] = "false"
	settings["AzureWebJobs.TwinChangeProcessor.Disabled"] = "true"
	logs := newLogRecorder(t)
	h := startHost(t, Options{ScriptRoot: app, Settings: settings, Logger: logs.logger()})
	dev := localhubtest.NewDevice(t, hub, "dev-2", localhubtest.Reply(200, `{"result":"Reboot started"}`))

	logs.await(t, "the envelope mode", containsAll("function loaded", "function=RebootDevice", "mode=envelope"))
	resp, err := http.Post(h.URL()+"/api/devices/dev-2/reboot", "application/json", strings.NewReader(`{"delaySeconds":0}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	require.Equal(t, "reboot", dev.NextCall(t).Name)
	require.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	require.Contains(t, string(body), `"statusUrl":"`+h.URL()+`/api/reboots/dev-2/`)

	status, body := do(t, http.MethodPost, h.URL()+"/api/devices/bad%20id!/reboot", nil, nil)
	require.Equal(t, http.StatusBadRequest, status, "a business error travels in Outputs.res: %s", body)
}
