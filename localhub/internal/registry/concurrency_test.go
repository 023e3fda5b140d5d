package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

func TestConcurrentUse(t *testing.T) {
	f := newFixture(t)
	f.s.db.NoSync = true // the grouping logic is what is under test, not the disk

	const (
		devices   = 6
		writers   = 4
		patches   = 8
		desiredOp = 5
	)
	for d := range devices {
		f.createDevice(t, fmt.Sprintf("dev%d", d))
	}

	var wg sync.WaitGroup
	errs := make(chan error, devices*(writers+2)+4)
	for d := range devices {
		id := fmt.Sprintf("dev%d", d)
		for w := range writers {
			wg.Go(func() {
				for p := range patches {
					patch := fmt.Sprintf(`{"w%d":{"p":%d},"shared":%d}`, w, p, p)
					if _, err := f.s.PatchReported(id, json.RawMessage(patch)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Go(func() {
			for p := range desiredOp {
				if _, err := f.s.PatchTwin(id, TwinPatch{Desired: map[string]any{"p": p}}, "*"); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				f.s.SetConnected(id, true, time.Now())
				f.s.TouchActivity(id, time.Now())
				if _, _, _, err := f.s.DeviceKeys(id); err != nil {
					errs <- err
					return
				}
				if _, err := f.s.GetTwin(id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Registry churn on other ids alongside.
	wg.Go(func() {
		for i := range 10 {
			id := fmt.Sprintf("churn%d", i)
			if _, err := f.s.CreateDevice(Device{DeviceID: id}); err != nil {
				errs <- err
				return
			}
			if err := f.s.DeleteDevice(id, "*"); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for range 10 {
			if _, err := f.s.Twins(); err != nil {
				errs <- err
				return
			}
			if _, err := f.s.ListDevices(0); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	// Every write landed once, versions are dense, notifications came in
	// commit order per device.
	lastVersion := map[string]int64{}
	lastReported := map[string]int64{}
	for _, n := range f.rec.all() {
		if n.OpType != OpUpdateTwin {
			continue
		}
		var body struct {
			Version    int64 `json:"version"`
			Properties struct {
				Reported *struct {
					Version int64 `json:"$version"`
				} `json:"reported"`
			} `json:"properties"`
		}
		require.NoError(t, json.Unmarshal(n.Body, &body))
		require.Greater(t, body.Version, lastVersion[n.DeviceID], "twin versions leave in order for %s", n.DeviceID)
		lastVersion[n.DeviceID] = body.Version
		if r := body.Properties.Reported; r != nil {
			if prev, ok := lastReported[n.DeviceID]; ok {
				require.Equal(t, prev+1, r.Version)
			}
			lastReported[n.DeviceID] = r.Version
		}
	}
	for d := range devices {
		id := fmt.Sprintf("dev%d", d)
		tw, err := f.s.GetTwin(id)
		require.NoError(t, err)
		require.EqualValues(t, 1+writers*patches, tw.Properties.Reported["$version"])
		require.EqualValues(t, 1+desiredOp, tw.Properties.Desired["$version"])
		require.EqualValues(t, 2+writers*patches+desiredOp, tw.Version)
		require.Equal(t, twinETag(uint64(1+writers*patches+desiredOp)), tw.ETag)
		require.EqualValues(t, 1+writers*patches, lastReported[id])
	}
	stats, err := f.s.Stats()
	require.NoError(t, err)
	require.Equal(t, devices, stats.TotalDeviceCount)
}

func TestGroupCommitIsolatesFailures(t *testing.T) {
	f := newFixture(t)
	g := f.s.writes
	bucket := []byte("test")
	require.NoError(t, f.s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucket)
		return err
	}))
	put := func(k string) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(k), []byte("v")) }
	}
	broken := errors.New("disk on fire")
	group := []*pendingWrite{
		{fn: put("a")},
		{fn: func(*bolt.Tx) error { return ErrDeviceNotFound }}, // clean refusal
		{fn: func(tx *bolt.Tx) error {
			tx.Bucket(bucket).Put([]byte("half"), []byte("v"))
			return broken // after writing: must not commit
		}},
		{fn: put("b")},
	}
	g.run(group)
	require.NoError(t, group[0].err)
	require.ErrorIs(t, group[1].err, ErrDeviceNotFound)
	require.ErrorIs(t, group[2].err, broken)
	require.NoError(t, group[3].err)
	require.NoError(t, f.s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		require.NotNil(t, b.Get([]byte("a")))
		require.NotNil(t, b.Get([]byte("b")))
		require.Nil(t, b.Get([]byte("half")))
		return nil
	}))

	// A panicking write becomes that write's error.
	group = []*pendingWrite{
		{fn: func(*bolt.Tx) error { panic("boom") }},
		{fn: put("d")},
	}
	g.run(group)
	require.ErrorContains(t, group[0].err, "boom")
	require.NoError(t, group[1].err)

	// Clean refusals share the transaction without a rerun.
	runs := 0
	group = []*pendingWrite{
		{fn: func(tx *bolt.Tx) error { runs++; return tx.Bucket(bucket).Put([]byte("c"), []byte("v")) }},
		{fn: func(*bolt.Tx) error { return ErrPreconditionFailed }},
	}
	g.run(group)
	require.Equal(t, 1, runs)
	require.NoError(t, group[0].err)
}

func TestClosedStore(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	require.NoError(t, f.s.Close())
	_, err := f.s.PatchReported("d", json.RawMessage(`{"a":1}`))
	require.ErrorIs(t, err, bolterrors.ErrDatabaseNotOpen)
	_, err = f.s.CreateDevice(Device{DeviceID: "e"})
	require.ErrorIs(t, err, bolterrors.ErrDatabaseNotOpen)
	_, err = f.s.GetTwin("d")
	require.Error(t, err)
}
