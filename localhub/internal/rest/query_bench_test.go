package rest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/query"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// fleetTwins opens a registry with n twins shaped like a fleet reboot's:
// a wave tag, a reported reboot, half of them connected.
func fleetTwins(tb testing.TB, n int) *registry.Store {
	tb.Helper()
	reg, err := registry.Open(registry.Options{Path: filepath.Join(tb.TempDir(), "registry.db")})
	require.NoError(tb, err)
	tb.Cleanup(func() { reg.Close() })
	// Writers in parallel, so group commit shares the fsyncs.
	const writers = 64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				id := fmt.Sprintf("device-%05d", i)
				if _, err := reg.CreateDevice(registry.Device{DeviceID: id}); err != nil {
					errs <- err
					return
				}
				tags := map[string]any{"fleetReboot": map[string]any{"fleetId": "fleet-1", "wave": json.Number(fmt.Sprint(i % 10))}, "site": "plant-7"}
				if _, err := reg.PatchTwin(id, registry.TwinPatch{Tags: tags, Desired: map[string]any{"interval": json.Number("30")}}, ""); err != nil {
					errs <- err
					return
				}
				reported := fmt.Sprintf(`{"iothubDM":{"reboot":{"lastReboot":"2024-05-06T07:08:%02dZ","requestId":"fleet-1","status":"rebooted"}},"temp":21.5,"fw":[1,2,{"x":null}]}`, i%60)
				if _, err := reg.PatchReported(id, json.RawMessage(reported)); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					reg.SetConnected(id, true, time.Now())
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(tb, <-errs)
	return reg
}

// fleetStatusQuery is the shape of the fleet status endpoint's queries: a
// projection over every twin with a condition on tags and reported.
const fleetStatusQuery = "SELECT TOP 100 deviceId, tags.fleetReboot.wave AS wave, properties.reported.iothubDM.reboot AS reboot FROM devices " +
	"WHERE tags.fleetReboot.fleetId = 'fleet-1' AND properties.reported.iothubDM.reboot.requestId = 'fleet-1' AND properties.reported.iothubDM.reboot.status IN ['failed', 'refused']"

// BenchmarkTwinQuery is one fleet status query over n twins, as the
// fleet status endpoint runs it, reading the documents three ways:
//
//   - round-trip: every twin from bbolt, then json.Marshal and Unmarshal
//     of them all, as queries did before the cache: the floor;
//   - reported-10%: through the cache after a tenth of the twins
//     reported (a wave's devices: their records changed);
//   - activity-10%: after a tenth of the devices published (only their
//     live state changed);
//   - unchanged: through the cache, nothing changed.
//
// The changes are made with the timer stopped. x-faster-than-round-trip
// is the floor's time per query over the path's, in the same run.
func BenchmarkTwinQuery(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		reg := fleetTwins(b, n)
		q, err := query.Parse(fleetStatusQuery)
		require.NoError(b, err)
		var (
			round   int
			floorNs float64 // round-trip's time per query
		)
		tenth := func(change func(id string)) {
			round++
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Go(func() {
					for i := round%10 + 10*w; i < n; i += 10 * 16 {
						change(fmt.Sprintf("device-%05d", i))
					}
				})
			}
			wg.Wait()
		}
		for _, path := range []struct {
			name   string
			change func()
			docs   func() ([]map[string]any, error)
		}{
			{"round-trip", nil, func() ([]map[string]any, error) { return roundTripTwinDocuments(reg) }},
			{"reported-10%", func() {
				tenth(func(id string) {
					patch := fmt.Sprintf(`{"iothubDM":{"reboot":{"lastReboot":"2024-05-06T07:09:%02dZ"}}}`, round%60)
					if _, err := reg.PatchReported(id, json.RawMessage(patch)); err != nil {
						b.Error(err)
					}
				})
			}, func() ([]map[string]any, error) { return twinDocuments(reg) }},
			{"activity-10%", func() {
				tenth(func(id string) { reg.TouchActivity(id, time.Now()) })
			}, func() ([]map[string]any, error) { return twinDocuments(reg) }},
			{"unchanged", nil, func() ([]map[string]any, error) { return twinDocuments(reg) }},
		} {
			b.Run(fmt.Sprintf("twins=%d/%s", n, path.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if path.change != nil {
						b.StopTimer()
						path.change()
						b.StartTimer()
					}
					docs, err := path.docs()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := q.Run(docs); err != nil {
						b.Fatal(err)
					}
				}
				perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				if path.change == nil && path.name == "round-trip" {
					floorNs = perOp
				} else if floorNs > 0 {
					b.ReportMetric(floorNs/perOp, "x-faster-than-round-trip")
				}
			})
		}
	}
}

// BenchmarkTwinCacheMemory reports the heap the cached documents of 10,000
// twins keep, per twin (heap after a collection, before and after the
// first query fills the cache), against what reading them by the JSON
// round trip allocated per twin for every query (the floor, in the same
// run).
func BenchmarkTwinCacheMemory(b *testing.B) {
	const n = 10000
	reg := fleetTwins(b, n)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	_, err := twinDocuments(reg)
	require.NoError(b, err)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	kept := (float64(m1.HeapAlloc) - float64(m0.HeapAlloc)) / n

	var floor float64
	for b.Loop() {
		runtime.ReadMemStats(&m0)
		_, err := roundTripTwinDocuments(reg)
		require.NoError(b, err)
		runtime.ReadMemStats(&m1)
		floor = float64(m1.TotalAlloc-m0.TotalAlloc) / n
	}
	b.ReportMetric(kept, "cached-B/twin")
	b.ReportMetric(float64(reg.CacheBytes(twinDocs))/n, "estimated-B/twin")
	b.ReportMetric(floor, "round-trip-alloc-B/twin")
	b.ReportMetric(floor/kept, "round-trip-alloc/cached")
}
