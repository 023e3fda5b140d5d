package registry

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkPatchReportedParallel is many devices reporting at once, with
// fsync on: the case group commit exists for. "ungrouped" is one
// transaction per write, for comparison.
func BenchmarkPatchReportedParallel(b *testing.B) {
	for _, bc := range []struct {
		name  string
		limit int
	}{
		{"grouped", maxGroup},
		{"ungrouped", 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFixture(b)
			f.s.writes.limit = bc.limit
			const devices = 256
			for i := range devices {
				f.createDevice(b, fmt.Sprintf("dev%d", i))
			}
			var next atomic.Int64
			patch := json.RawMessage(`{"iothubDM":{"reboot":{"lastReboot":"2024-05-06T07:08:10Z"}},"temp":21.5}`)
			b.SetParallelism(16) // many more writers than CPUs, like devices
			b.ReportAllocs()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				id := fmt.Sprintf("dev%d", next.Add(1)%devices)
				for pb.Next() {
					if _, err := f.s.PatchReported(id, patch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "patches/s")
		})
	}
}

func BenchmarkPatchReportedSerial(b *testing.B) {
	f := newFixture(b)
	f.createDevice(b, "d")
	patch := json.RawMessage(`{"temp":21.5}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.s.PatchReported("d", patch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeviceKeys(b *testing.B) {
	f := newFixture(b)
	f.createDevice(b, "d")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, _, err := f.s.DeviceKeys("d"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTwins10k reads every twin of a 10,000-device hub, as a query
// does.
func BenchmarkTwins10k(b *testing.B) {
	f := newFixture(b)
	seedDevices(b, f.s, 10_000)
	b.ReportAllocs()
	for b.Loop() {
		twins, err := f.s.Twins()
		if err != nil {
			b.Fatal(err)
		}
		if len(twins) != 10_000 {
			b.Fatalf("got %d twins", len(twins))
		}
	}
}

// seedDevices writes n devices with small twins in one transaction.
func seedDevices(tb testing.TB, s *Store, n int) {
	tb.Helper()
	patch := map[string]any{"fw": "1.2.3", "net": map[string]any{"rssi": json.Number("-40"), "kind": "wifi"}}
	require.NoError(tb, s.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			rec := &deviceRecord{DeviceID: fmt.Sprintf("dev%05d", i), GenerationID: newGenerationID(), Status: StatusEnabled,
				Keys: storedKeys{PrimaryKey: newKey(), SecondaryKey: newKey()}}
			if err := putDevice(tx, rec); err != nil {
				return err
			}
			twin := newTwinRecord(t0)
			twin.Reported.merge(patch, t0, 0)
			twin.Tags.merge(map[string]any{"site": "north"}, time.Time{}, 0)
			if err := putTwin(tx, rec.DeviceID, twin); err != nil {
				return err
			}
		}
		return nil
	}))
}

// Twins reads every twin in one transaction, in device-id order. How fast
// is BenchmarkTwins10k's business, not a test's.
func TestTwinsReturnsEveryTwinInOrder(t *testing.T) {
	f := newFixture(t)
	seedDevices(t, f.s, 2_000)
	twins, err := f.s.Twins()
	require.NoError(t, err)
	require.Len(t, twins, 2_000)
	require.Equal(t, "dev00000", twins[0].DeviceID)
	require.Equal(t, "dev01999", twins[1999].DeviceID)
	require.Equal(t, "north", twins[1999].Tags["site"])
}
