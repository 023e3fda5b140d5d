package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
	"github.com/iothub-reboot/devmgmt/shared/latency"
)

// BenchmarkRebootDeviceOverhead measures what RebootDevice adds to a raw
// direct-method round trip (client → local hub over HTTPS → paho device
// over MQTT/TLS → back). Each iteration makes one raw call and one call
// through the handler (over loopback HTTP, as the host forwards it), so
// both see the same conditions; overhead-p50-ms is the difference of the
// medians.
func BenchmarkRebootDeviceOverhead(b *testing.B) {
	hub := localhubtest.New(b, nil)
	dev := localhubtest.NewDevice(b, hub, "bench-dev", localhubtest.Reply(200, `{"result":"Reboot started"}`))
	app := newTestApp(b, hub, appOptions{})
	cs, err := hub.ServiceConnectionString("serviceAndRegistryRead")
	require.NoError(b, err)
	client, err := handlers.NewHubClient(handlers.Config{ConnectionString: cs, Endpoint: hub.HTTPSURL()},
		&iothub.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()}})
	require.NoError(b, err)
	payload := json.RawMessage(`{"requestId":"6f1c0a52-3f0e-4a57-9a39-2b1f1f0b8c11","delaySeconds":0}`)
	httpClient := &http.Client{}
	ctx := b.Context()

	var raw, viaApp []time.Duration
	for b.Loop() {
		start := time.Now()
		resp, err := client.InvokeMethod(ctx, "bench-dev", iothub.MethodRequest{MethodName: "reboot", Payload: payload, ResponseTimeout: 30 * time.Second}, nil)
		raw = append(raw, time.Since(start))
		require.NoError(b, err)
		require.Equal(b, 200, resp.Status)
		<-dev.Calls

		start = time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, app.URL+"/api/devices/bench-dev/reboot", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		httpResp, err := httpClient.Do(req)
		require.NoError(b, err)
		io.Copy(io.Discard, httpResp.Body)
		httpResp.Body.Close()
		viaApp = append(viaApp, time.Since(start))
		require.Equal(b, http.StatusOK, httpResp.StatusCode)
		<-dev.Calls
	}
	rawP50, appP50 := latency.PercentileMS(raw, 0.5), latency.PercentileMS(viaApp, 0.5)
	b.ReportMetric(rawP50, "raw-p50-ms")
	b.ReportMetric(appP50, "app-p50-ms")
	b.ReportMetric(appP50-rawP50, "overhead-p50-ms")
}
