package registry

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// countingCache derives each twin as itself and counts the derivations,
// full ones in n, of live state only in live.
func countingCache() (c *TwinCache, n, live *atomic.Int64) {
	n, live = new(atomic.Int64), new(atomic.Int64)
	return NewTwinCache(func(t Twin) (any, error) {
		n.Add(1)
		return t, nil
	}, func(prev any, l LiveState) (any, error) {
		live.Add(1)
		t := prev.(Twin)
		t.ConnectionState, t.LastActivityTime = l.ConnectionState, l.LastActivityTime
		return t, nil
	}), n, live
}

// requireCachedIsCurrent asserts the cache serves what Twins reads now,
// and returns how many twins it derived doing so.
func requireCachedIsCurrent(t *testing.T, s *Store, c *TwinCache, n *atomic.Int64) int64 {
	t.Helper()
	before := n.Load()
	got, err := s.CachedTwins(c)
	require.NoError(t, err)
	want, err := s.Twins()
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i], got[i], "twin %d", i)
	}
	return n.Load() - before
}

// Every change a twin shows drops that twin's cached value, and only it:
// device record, twin record (tags, desired, reported), connection state,
// activity, deletion and creation (in and out of id order).
func TestTwinCacheInvalidation(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"b", "d", "f"} {
		f.createDevice(t, id)
	}
	c, n, live := countingCache()
	require.EqualValues(t, 3, requireCachedIsCurrent(t, f.s, c, n))
	require.EqualValues(t, 0, requireCachedIsCurrent(t, f.s, c, n), "nothing changed")

	tick := t0
	later := func() time.Time { tick = tick.Add(time.Second); return tick }
	reason := "why"
	for _, step := range []struct {
		name    string
		change  func(t *testing.T)
		derived int64
		live    int64 // derived from live state only
	}{
		{"tags", func(t *testing.T) {
			_, err := f.s.PatchTwin("b", TwinPatch{Tags: mustJSON(t, `{"site":"x"}`)}, "")
			require.NoError(t, err)
		}, 1, 0},
		{"desired", func(t *testing.T) {
			_, err := f.s.PatchTwin("d", TwinPatch{Desired: mustJSON(t, `{"a":{"b":1}}`)}, "")
			require.NoError(t, err)
		}, 1, 0},
		{"replace", func(t *testing.T) {
			_, err := f.s.ReplaceTwin("d", TwinPatch{Tags: mustJSON(t, `{"t":1}`)}, "")
			require.NoError(t, err)
		}, 1, 0},
		{"reported", func(t *testing.T) {
			_, err := f.s.PatchReported("f", json.RawMessage(`{"temp":21.5}`))
			require.NoError(t, err)
		}, 1, 0},
		{"device disabled", func(t *testing.T) {
			_, err := f.s.UpdateDevice(Device{DeviceID: "b", Status: StatusDisabled, StatusReason: &reason}, "*")
			require.NoError(t, err)
		}, 1, 0},
		{"connected", func(t *testing.T) { f.s.SetConnected("d", true, later()) }, 0, 1},
		{"activity", func(t *testing.T) { f.s.TouchActivity("d", later()) }, 0, 1},
		{"older activity is no change", func(t *testing.T) { f.s.TouchActivity("d", t0) }, 0, 0},
		{"disconnected", func(t *testing.T) { f.s.SetConnected("d", false, later()) }, 0, 1},
		{"reported and activity", func(t *testing.T) {
			_, err := f.s.PatchReported("d", json.RawMessage(`{"x":1}`))
			require.NoError(t, err)
			f.s.TouchActivity("d", later())
		}, 1, 0},
		{"created out of order", func(t *testing.T) { f.createDevice(t, "a") }, 1, 0},
		{"created in order", func(t *testing.T) { f.createDevice(t, "g") }, 1, 0},
		{"deleted", func(t *testing.T) {
			f.s.SetConnected("f", true, later())
			require.NoError(t, f.s.DeleteDevice("f", ""))
		}, 0, 0},
		{"deleted and created again", func(t *testing.T) {
			_, err := f.s.PatchReported("b", json.RawMessage(`{"old":true}`))
			require.NoError(t, err)
			require.NoError(t, f.s.DeleteDevice("b", ""))
			f.createDevice(t, "b")
		}, 1, 0},
		{"empty patch is no change", func(t *testing.T) {
			_, err := f.s.PatchTwin("a", TwinPatch{}, "")
			require.NoError(t, err)
		}, 0, 0},
	} {
		t.Run(step.name, func(t *testing.T) {
			liveBefore := live.Load()
			step.change(t)
			require.Equal(t, step.derived, requireCachedIsCurrent(t, f.s, c, n), "full derivations")
			require.Equal(t, step.live, live.Load()-liveBefore, "derivations of live state")
		})
	}
	ids := func() []string {
		got, err := f.s.CachedTwins(c)
		require.NoError(t, err)
		var out []string
		for _, v := range got {
			out = append(out, v.(Twin).DeviceID)
		}
		return out
	}
	require.Equal(t, []string{"a", "b", "d", "g"}, ids())
}

// Without a live function a change of live state derives the twin anew.
// One device holds one cached value: a second cache takes the slot over.
func TestTwinCacheWithoutLive(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	var n atomic.Int64
	c := NewTwinCache(func(t Twin) (any, error) { n.Add(1); return t, nil }, nil)
	require.EqualValues(t, 1, requireCachedIsCurrent(t, f.s, c, &n))
	f.s.SetConnected("d", true, t0.Add(time.Second))
	require.EqualValues(t, 1, requireCachedIsCurrent(t, f.s, c, &n))
	require.EqualValues(t, 0, requireCachedIsCurrent(t, f.s, c, &n))

	other, m, _ := countingCache()
	require.EqualValues(t, 1, requireCachedIsCurrent(t, f.s, other, m))
	require.EqualValues(t, 1, requireCachedIsCurrent(t, f.s, c, &n))
}

// A refused write commits nothing and leaves the cached twin as it was;
// so does a write whose commit fails.
func TestTwinCacheKeepsOnlyCommittedState(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	c, n, _ := countingCache()
	requireCachedIsCurrent(t, f.s, c, n)

	_, err := f.s.PatchTwin("d", TwinPatch{Tags: mustJSON(t, `{"a":1}`)}, `"wrong-etag"`)
	require.ErrorIs(t, err, ErrPreconditionFailed)
	_, err = f.s.PatchReported("d", json.RawMessage(`{"bad name":1}`))
	require.Error(t, err)
	require.EqualValues(t, 0, requireCachedIsCurrent(t, f.s, c, n))

	// A commit that fails (the file is closed under the store) moves no
	// revision: the cache still serves the committed twin, without
	// reading the file.
	require.NoError(t, f.s.db.Close())
	_, err = f.s.PatchReported("d", json.RawMessage(`{"lost":1}`))
	require.Error(t, err)
	before := n.Load()
	got, err := f.s.CachedTwins(c)
	require.NoError(t, err)
	require.Equal(t, before, n.Load())
	require.NotContains(t, got[0].(Twin).Properties.Reported, "lost")
}

// Readers and writers at once (run with -race): once the writers stop,
// the cache serves what bbolt and the live state hold.
func TestTwinCacheConcurrent(t *testing.T) {
	f := newFixture(t)
	const devices = 8
	for i := range devices {
		f.createDevice(t, fmt.Sprintf("dev%d", i))
	}
	c, n, _ := countingCache()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range devices {
		id := fmt.Sprintf("dev%d", i)
		wg.Go(func() {
			for k := range 20 {
				_, err := f.s.PatchReported(id, json.RawMessage(fmt.Sprintf(`{"k":%d}`, k)))
				require.NoError(t, err)
				f.s.SetConnected(id, k%2 == 0, t0.Add(time.Duration(k)*time.Second))
			}
		})
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := f.s.CachedTwins(c)
				require.NoError(t, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	requireCachedIsCurrent(t, f.s, c, n)
}

// A change is in the cache before it is notified: whoever reads twins on
// hearing of a change (here the notification hook itself, which real
// hooks must not do) sees it.
func TestTwinCacheChangedBeforeNotification(t *testing.T) {
	c, _, _ := countingCache()
	var (
		s    *Store
		seen []string
	)
	onChange := func(n Notification) {
		if n.OpType != OpUpdateTwin && n.OpType != OpReplaceTwin {
			return
		}
		twins, err := s.CachedTwins(c)
		require.NoError(t, err)
		tw := twins[0].(Twin)
		site, _ := tw.Tags["site"].(string)
		reported, _ := tw.Properties.Reported["k"].(json.Number)
		seen = append(seen, site+"/"+string(reported))
	}
	s, err := Open(Options{Path: t.TempDir() + "/registry.db", OnChange: onChange})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	_, err = s.CreateDevice(Device{DeviceID: "d"})
	require.NoError(t, err)
	_, err = s.CachedTwins(c)
	require.NoError(t, err)

	_, err = s.PatchTwin("d", TwinPatch{Tags: map[string]any{"site": "a"}}, "")
	require.NoError(t, err)
	_, err = s.PatchReported("d", json.RawMessage(`{"k":1}`))
	require.NoError(t, err)
	_, err = s.ReplaceTwin("d", TwinPatch{Tags: map[string]any{"site": "b"}}, "")
	require.NoError(t, err)
	require.Equal(t, []string{"a/", "a/1", "b/1"}, seen)
}

// Devices created and deleted over and over, with no query to sort the
// id order, leave it bounded by the registry's size, and a query after
// still lists exactly the devices there are.
func TestTwinCacheOrderBoundedWithoutQueries(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "keep")
	for i := range 500 {
		id := fmt.Sprintf("churn%d", i%3)
		f.createDevice(t, id)
		require.NoError(t, f.s.DeleteDevice(id, ""))
	}
	f.s.mu.RLock()
	n := len(f.s.order)
	f.s.mu.RUnlock()
	require.LessOrEqual(t, n, 2*1+orderSlack+1)

	c, cn, _ := countingCache()
	require.EqualValues(t, 1, requireCachedIsCurrent(t, f.s, c, cn))
}

// After a restart the same cache serves the committed twins, derived
// anew, with the live state gone (Disconnected, no activity) as the
// registry's; values cached before the restart are never served.
func TestTwinCacheAcrossRestart(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "a")
	f.createDevice(t, "b")
	c, n, _ := countingCache()
	f.s.SetConnected("a", true, t0.Add(time.Second))
	_, err := f.s.PatchReported("b", json.RawMessage(`{"k":1}`))
	require.NoError(t, err)
	require.EqualValues(t, 2, requireCachedIsCurrent(t, f.s, c, n))

	f.reopen(t)
	require.EqualValues(t, 2, requireCachedIsCurrent(t, f.s, c, n), "every twin derived anew")
	got, err := f.s.CachedTwins(c)
	require.NoError(t, err)
	require.Equal(t, Disconnected, got[0].(Twin).ConnectionState)
	require.True(t, got[0].(Twin).LastActivityTime.IsZero())
	require.Equal(t, json.Number("1"), got[1].(Twin).Properties.Reported["k"])
}

// A device deleted and created again under the same id while queries
// run (run with -race): no query's value for the old device is served
// for the new one, and the ids stay unique and in order.
func TestTwinCacheRecreatedConcurrently(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "a")
	f.createDevice(t, "x")
	c, n, _ := countingCache()
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				twins, err := f.s.CachedTwins(c)
				require.NoError(t, err)
				for i := 1; i < len(twins); i++ {
					require.Less(t, twins[i-1].(Twin).DeviceID, twins[i].(Twin).DeviceID)
				}
			}
		})
	}
	for k := range 30 {
		require.NoError(t, f.s.DeleteDevice("x", ""))
		f.createDevice(t, "x")
		_, err := f.s.PatchReported("x", json.RawMessage(fmt.Sprintf(`{"k":%d}`, k)))
		require.NoError(t, err)
		f.s.TouchActivity("x", t0.Add(time.Duration(k+1)*time.Second))
	}
	close(stop)
	readers.Wait()
	requireCachedIsCurrent(t, f.s, c, n)
	got, err := f.s.CachedTwins(c)
	require.NoError(t, err)
	require.Equal(t, json.Number("29"), got[1].(Twin).Properties.Reported["k"])
}

// A bounded cache keeps values up to its budget, in id order; the twins
// beyond it are derived by every read, and still served current. A
// deleted device's value frees its bytes; a value replaced by another
// cache's frees them from the cache it belonged to.
func TestTwinCacheBudget(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		f.createDevice(t, id)
	}
	c, n, live := countingCache()
	c.Bounded(250, func(any) int64 { return 100 })
	require.EqualValues(t, 5, requireCachedIsCurrent(t, f.s, c, n))
	require.EqualValues(t, 200, f.s.CacheBytes(c))
	require.EqualValues(t, 3, requireCachedIsCurrent(t, f.s, c, n), "c, d and e are not kept")
	require.EqualValues(t, 200, f.s.CacheBytes(c))

	// A change of live state to a kept twin keeps it, at its size.
	f.s.TouchActivity("a", t0.Add(time.Second))
	liveBefore := live.Load()
	require.EqualValues(t, 3, requireCachedIsCurrent(t, f.s, c, n))
	require.EqualValues(t, 1, live.Load()-liveBefore)
	require.EqualValues(t, 200, f.s.CacheBytes(c))

	// Deleting a kept twin makes room for the next one.
	require.NoError(t, f.s.DeleteDevice("b", ""))
	require.EqualValues(t, 100, f.s.CacheBytes(c))
	require.EqualValues(t, 3, requireCachedIsCurrent(t, f.s, c, n))
	require.EqualValues(t, 200, f.s.CacheBytes(c))
	require.EqualValues(t, 2, requireCachedIsCurrent(t, f.s, c, n), "c is kept now")

	// A changed record is rebuilt and kept in its own place.
	_, err := f.s.PatchReported("a", json.RawMessage(`{"k":1}`))
	require.NoError(t, err)
	require.EqualValues(t, 3, requireCachedIsCurrent(t, f.s, c, n))
	require.EqualValues(t, 200, f.s.CacheBytes(c))

	// Another cache taking the slots over frees c's bytes.
	other, m, _ := countingCache()
	require.EqualValues(t, 4, requireCachedIsCurrent(t, f.s, other, m))
	require.EqualValues(t, 0, f.s.CacheBytes(c))
	require.EqualValues(t, 0, f.s.CacheBytes(other), "a cache without a size function counts nothing")
	require.EqualValues(t, 4, requireCachedIsCurrent(t, f.s, c, n))
	require.EqualValues(t, 200, f.s.CacheBytes(c))
}
