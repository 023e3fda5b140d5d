package registry

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkTouchActivity is the registry's part of every telemetry
// publish (TouchActivity, under the registry's write lock), from 1,000
// devices at once: "alone", and "queried" while a reader reads every
// twin over and over as twin queries do (queryTwins). touches/s is the
// publish side, queries/s the reader's.
func BenchmarkTouchActivity(b *testing.B) {
	for _, queried := range []bool{false, true} {
		name := "alone"
		if queried {
			name = "queried"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b)
			const devices = 1000
			seedDevices(b, f.s, devices)
			require.NoError(b, f.s.db.View(f.s.load))
			ids := make([]string, 0, devices)
			for id := range f.s.devices {
				ids = append(ids, id)
			}
			var (
				wg      sync.WaitGroup
				queries atomic.Int64
			)
			stop := make(chan struct{})
			if queried {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						n, err := queryTwins(f.s)
						if err != nil || n != devices {
							b.Errorf("read %d twins: %v", n, err)
							return
						}
						queries.Add(1)
					}
				})
			}
			var next, tick atomic.Int64
			b.SetParallelism(4)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := ids[next.Add(1)%devices]
				for pb.Next() {
					f.s.TouchActivity(id, t0.Add(time.Duration(tick.Add(1))*time.Microsecond))
				}
			})
			b.StopTimer()
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "touches/s")
			b.ReportMetric(float64(queries.Load())/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

// benchCache derives each twin as itself, as cheaply as a cache can.
var benchCache = NewTwinCache(func(t Twin) (any, error) { return t, nil }, func(prev any, l LiveState) (any, error) {
	t := prev.(Twin)
	t.ConnectionState, t.LastActivityTime = l.ConnectionState, l.LastActivityTime
	return t, nil
})

// queryTwins reads every twin as a twin query does.
func queryTwins(s *Store) (int, error) {
	twins, err := s.CachedTwins(benchCache)
	return len(twins), err
}
