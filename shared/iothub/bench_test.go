package iothub_test

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// BenchmarkInvokeMethod measures a direct-method round trip: client → hub
// over HTTPS → device over MQTT/TLS → back.
func BenchmarkInvokeMethod(b *testing.B) {
	hub := localhubtest.New(b, nil)
	client := newServiceClient(b, hub, "service")
	device := connectDevice(b, hub, createDevice(b, hub, "bench"), echo)
	req := iothub.MethodRequest{MethodName: "ping", Payload: json.RawMessage(`{"n":1}`), ResponseTimeout: 10 * time.Second}
	ctx := b.Context()

	var latencies []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		resp, err := client.InvokeMethod(ctx, "bench", req, nil)
		latencies = append(latencies, time.Since(start))
		require.NoError(b, err)
		require.Equal(b, 200, resp.Status)
		<-device.Calls // keep the device's record from filling up
	}
	b.ReportMetric(percentileMS(latencies, 0.50), "p50-ms")
	b.ReportMetric(percentileMS(latencies, 0.99), "p99-ms")
}

// percentileMS returns the p-th percentile (nearest rank) in milliseconds.
func percentileMS(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	i := max(0, int(math.Ceil(p*float64(len(sorted))))-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}
