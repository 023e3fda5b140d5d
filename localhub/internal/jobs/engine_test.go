package jobs

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/query"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// The engine's timing (pace, start times, slots, retention) under
// testing/synctest's fake clock. The device side is a recording stand-in:
// the real device endpoint needs network I/O, which a synctest bubble
// cannot host. Jobs against real devices over MQTT are tested in package
// localhub.

// calls records when each device was called and can hold calls open.
type calls struct {
	mu    sync.Mutex
	at    map[string]time.Time
	order []string
	hold  chan struct{} // nil: answer at once
}

func (c *calls) InvokeMethod(ctx context.Context, id, _ string, _ []byte, _, _ time.Duration) (int, []byte, error) {
	c.mu.Lock()
	c.at[id] = time.Now()
	c.order = append(c.order, id)
	hold := c.hold
	c.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	}
	return 200, []byte(`{}`), nil
}

func (c *calls) snapshot() (map[string]time.Time, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	at := make(map[string]time.Time, len(c.at))
	for k, v := range c.at {
		at[k] = v
	}
	return at, append([]string(nil), c.order...)
}

// allDevices selects every registered device: the engine's query runs are
// package rest's business, tested there.
func allDevices(reg *registry.Store) func(*query.Query) ([]string, error) {
	return func(*query.Query) ([]string, error) {
		twins, err := reg.Twins()
		ids := make([]string, len(twins))
		for i, tw := range twins {
			ids[i] = tw.DeviceID
		}
		return ids, err
	}
}

func newEngine(t *testing.T, path string, dev *calls, opts Options) (*Engine, *registry.Store) {
	t.Helper()
	reg, err := registry.Open(registry.Options{Path: path})
	require.NoError(t, err)
	opts.Store, opts.Devices, opts.SelectDevices = reg, dev, allDevices(reg)
	e, err := Start(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		require.NoError(t, reg.Close())
	})
	return e, reg
}

func addDevices(t *testing.T, reg *registry.Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		_, err := reg.CreateDevice(registry.Device{DeviceID: id})
		require.NoError(t, err)
	}
}

func methodSpec(id string) Spec {
	return Spec{ID: id, Type: TypeDeviceMethod, QueryCondition: "*", Method: &Method{Name: "reboot", ResponseTimeout: 30 * time.Second}}
}

// Device operations are paced at DeviceOperationsPerSecond with a burst of
// one second's worth, as the jobs device operations throttle (10/s on S1).
func TestDeviceOperationsArePaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := &calls{at: map[string]time.Time{}}
		e, reg := newEngine(t, filepath.Join(t.TempDir(), "r.db"), dev, Options{DeviceOperationsPerSecond: 2})
		addDevices(t, reg, "a", "b", "c", "d", "e", "f")
		t0 := time.Now()
		_, err := e.Create(methodSpec("paced"))
		require.NoError(t, err)
		time.Sleep(10 * time.Second)
		synctest.Wait()

		j, err := e.Get("paced")
		require.NoError(t, err)
		require.Equal(t, StatusCompleted, j.Status)
		at, order := dev.snapshot()
		require.Len(t, order, 6)
		var offsets []time.Duration
		for _, id := range order {
			offsets = append(offsets, at[id].Sub(t0))
		}
		// Two at once (the burst), then one every half second.
		require.Equal(t, []time.Duration{0, 0, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second}, offsets)
	})
}

// A job starts at its start time, not before, and is "scheduled" until then.
func TestJobStartsAtItsStartTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := &calls{at: map[string]time.Time{}}
		e, reg := newEngine(t, filepath.Join(t.TempDir(), "r.db"), dev, Options{})
		addDevices(t, reg, "a")
		start := time.Now().Add(time.Hour)
		spec := methodSpec("later")
		spec.StartTime = start
		j, err := e.Create(spec)
		require.NoError(t, err)
		require.Equal(t, StatusQueued, j.Status)
		synctest.Wait()
		j, err = e.Get("later")
		require.NoError(t, err)
		require.Equal(t, StatusScheduled, j.Status)

		time.Sleep(time.Hour - time.Second)
		synctest.Wait()
		_, order := dev.snapshot()
		require.Empty(t, order)

		time.Sleep(2 * time.Second)
		synctest.Wait()
		at, _ := dev.snapshot()
		require.Equal(t, start, at["a"])
		j, err = e.Get("later")
		require.NoError(t, err)
		require.Equal(t, StatusCompleted, j.Status)
		require.Equal(t, start.UTC().Truncate(100*time.Nanosecond), j.RunStartTime)
	})
}

// Due jobs beyond MaxRunningJobs wait, queued, for a running one to end.
func TestRunningJobsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hold := make(chan struct{})
		dev := &calls{at: map[string]time.Time{}, hold: hold}
		e, reg := newEngine(t, filepath.Join(t.TempDir(), "r.db"), dev, Options{MaxRunningJobs: 1})
		addDevices(t, reg, "a")
		_, err := e.Create(methodSpec("first"))
		require.NoError(t, err)
		_, err = e.Create(methodSpec("second"))
		require.NoError(t, err)
		synctest.Wait()
		first, _ := e.Get("first")
		second, _ := e.Get("second")
		require.Equal(t, StatusRunning, first.Status)
		require.Equal(t, StatusQueued, second.Status)

		close(hold)
		synctest.Wait()
		first, _ = e.Get("first")
		second, _ = e.Get("second")
		require.Equal(t, StatusCompleted, first.Status)
		require.Equal(t, StatusCompleted, second.Status)
	})
}

// Active jobs are bounded (a tier's concurrent jobs); finished ones free
// their slot.
func TestActiveJobsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dev := &calls{at: map[string]time.Time{}}
		e, _ := newEngine(t, filepath.Join(t.TempDir(), "r.db"), dev, Options{MaxActiveJobs: 1})
		spec := methodSpec("one")
		spec.StartTime = time.Now().Add(time.Hour)
		_, err := e.Create(spec)
		require.NoError(t, err)
		_, err = e.Create(methodSpec("two"))
		require.ErrorIs(t, err, ErrTooManyActive)
		_, err = e.Create(spec)
		require.ErrorIs(t, err, ErrExists, "an existing id is answered before the limit")
		_, err = e.Cancel("one")
		require.NoError(t, err)
		_, err = e.Create(methodSpec("two"))
		require.NoError(t, err)
	})
}

// Finished jobs are kept for the retention, then deleted with their
// devices' records.
func TestFinishedJobsExpire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	synctest.Test(t, func(t *testing.T) {
		dev := &calls{at: map[string]time.Time{}}
		e, reg := newEngine(t, path, dev, Options{})
		addDevices(t, reg, "a")
		_, err := e.Create(methodSpec("old"))
		require.NoError(t, err)
		synctest.Wait()
		j, err := e.Get("old")
		require.NoError(t, err)
		require.Equal(t, StatusCompleted, j.Status)

		time.Sleep(DefaultRetention - time.Minute)
		synctest.Wait()
		_, err = e.Get("old")
		require.NoError(t, err, "within the retention")

		time.Sleep(time.Hour + time.Minute) // the next hourly purge
		synctest.Wait()
		_, err = e.Get("old")
		require.ErrorIs(t, err, ErrNotFound)
		n := 0
		require.NoError(t, e.DeviceJobs(func(DeviceJob) error { n++; return nil }))
		require.Zero(t, n)
	})
}
