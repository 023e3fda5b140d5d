package iothub_test

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
	"github.com/iothub-reboot/devmgmt/shared/latency"
)

// BenchmarkInvokeMethod measures a direct-method round trip: client → hub
// over HTTPS → device over MQTT/TLS → back.
func BenchmarkInvokeMethod(b *testing.B) {
	hub := localhubtest.New(b, nil)
	client := newServiceClient(b, hub, "service")
	device := localhubtest.ConnectDevice(b, hub, createDevice(b, hub, "bench"), echo)
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
	b.ReportMetric(latency.PercentileMS(latencies, 0.50), "p50-ms")
	b.ReportMetric(latency.PercentileMS(latencies, 0.99), "p99-ms")
}

// BenchmarkInvokeMethod1000Devices measures direct-method throughput through
// the whole service path (client → HTTPS → hub → MQTT/TLS → device and back)
// with 1,000 devices connected, calls spread across them.
func BenchmarkInvokeMethod1000Devices(b *testing.B) {
	const fleetSize = 1000
	hub := localhubtest.New(b, nil)
	client := newServiceClient(b, hub, "service")

	ids := make([]string, fleetSize)
	var g errgroup.Group
	g.SetLimit(32)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%04d", i)
		cs := createDevice(b, hub, ids[i])
		g.Go(func() error {
			d, err := localhubtest.StartDevice(hub, cs, echo)
			if err != nil {
				return err
			}
			b.Cleanup(d.Close)
			go func() { // drain the device's call record so it never blocks
				for range d.Calls {
				}
			}()
			return nil
		})
	}
	require.NoError(b, g.Wait())

	req := iothub.MethodRequest{MethodName: "ping", Payload: json.RawMessage(`{"n":1}`), ResponseTimeout: 30 * time.Second}
	var next atomic.Int64
	b.SetParallelism(32) // 64 callers on 2 cores: enough to keep the hub busy
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[next.Add(1)%fleetSize]
			resp, err := client.InvokeMethod(b.Context(), id, req, nil)
			if err != nil || resp.Status != 200 {
				b.Errorf("InvokeMethod(%s) = %v, %v", id, resp.Status, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}
