package rest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
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
// fleet status endpoint runs it: "cached" through the twin cache after a
// tenth of the twins changed (a wave's devices reported), "round-trip"
// reading every twin from bbolt and through json.Marshal and Unmarshal as
// queries did before, the floor it is measured against.
func BenchmarkTwinQuery(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		reg := fleetTwins(b, n)
		q, err := query.Parse(fleetStatusQuery)
		require.NoError(b, err)
		var round int
		for _, path := range []struct {
			name string
			docs func() ([]map[string]any, error)
		}{
			{"round-trip", func() ([]map[string]any, error) { return roundTripTwinDocuments(reg) }},
			{"cached", func() ([]map[string]any, error) {
				// A tenth of the twins changed since the last query.
				round++
				for i := round % 10; i < n; i += 10 {
					reg.TouchActivity(fmt.Sprintf("device-%05d", i), time.Now())
				}
				return twinDocuments(reg)
			}},
			{"cached-unchanged", func() ([]map[string]any, error) { return twinDocuments(reg) }},
		} {
			b.Run(fmt.Sprintf("twins=%d/%s", n, path.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					docs, err := path.docs()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := q.Run(docs); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
