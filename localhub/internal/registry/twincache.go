package registry

import (
	"errors"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A TwinCache keeps one value derived from each twin, so reading every
// twin costs only the twins that changed since the last read. The REST API
// keeps each twin's query document in one: the registry knows when a twin
// changes, the API how a twin is spelled.
//
// Each device's entry is tagged with the device's revision, which every
// change to anything a Twin is made of moves: the device record and the
// twin record (after their commit), and the live connection state and
// last activity time. Values are built from committed state only, read
// after the revision they are tagged with, so an entry is never older
// than its tag and never holds a write that did not commit.
type TwinCache struct {
	derive func(Twin) (any, error)
	live   func(prev any, l LiveState) (any, error)
	size   func(any) int64
	budget int64
}

// LiveState is the part of a twin that lives in memory and changes with
// every connection and publish: Twin's ConnectionState and
// LastActivityTime.
type LiveState struct {
	ConnectionState  string
	LastActivityTime time.Time
}

// NewTwinCache returns a cache of derive's values. derive must be a pure
// function of its Twin, and callers must not modify the values it
// returns: they are shared by every read until the twin changes.
//
// live, if not nil, rederives a value whose twin changed only in its live
// state: given the value derive made and the new live state, it returns
// what derive would return now. Devices publishing telemetry then cost a
// query that much rather than a read of their twin.
func NewTwinCache(derive func(Twin) (any, error), live func(prev any, l LiveState) (any, error)) *TwinCache {
	return &TwinCache{derive: derive, live: live}
}

// Bounded makes c keep at most budget bytes of values per registry, as
// size estimates a value's bytes; the twins beyond it are derived anew by
// every read, as without a cache. Call it before c is first read.
func (c *TwinCache) Bounded(budget int64, size func(any) int64) *TwinCache {
	c.budget, c.size = budget, size
	return c
}

// cacheEntry is a device's cached value: valid while rev is the device's,
// and for a change of live state only while recRev is. size is what the
// cache's size function gave for val (0 without one).
type cacheEntry struct {
	cache  *TwinCache
	rev    uint64
	recRev uint64
	val    any
	size   int64
}

// dropCachedLocked forgets st's cached value. Callers hold s.mu for
// writing.
func (s *Store) dropCachedLocked(st *deviceState) {
	if e := st.cached; e.cache != nil {
		if s.cacheBytes[e.cache] -= e.size; s.cacheBytes[e.cache] <= 0 {
			delete(s.cacheBytes, e.cache)
		}
	}
	st.cached = cacheEntry{}
}

// CacheBytes is what c keeps in this registry, as its size function
// estimates it (0 for a cache without one).
func (s *Store) CacheBytes(c *TwinCache) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cacheBytes[c]
}

// bumpLocked gives st a new revision for a change of live state.
// Callers hold s.mu for writing.
func (s *Store) bumpLocked(st *deviceState) {
	s.revNext++
	st.rev = s.revNext
}

// bumpRecordLocked gives st a new revision for a committed change of its
// device or twin record. Callers hold s.mu for writing.
func (s *Store) bumpRecordLocked(st *deviceState) {
	s.bumpLocked(st)
	st.recRev = st.rev
}

// liveCopy is the part of st a Twin shows (nil for nil), to build a twin
// from after releasing s.mu. Callers hold s.mu.
func (st *deviceState) liveCopy() *deviceState {
	if st == nil {
		return nil
	}
	return &deviceState{connected: st.connected, lastActivity: st.lastActivity}
}

func (st *deviceState) live() LiveState {
	l := LiveState{ConnectionState: Disconnected, LastActivityTime: st.lastActivity}
	if st.connected {
		l.ConnectionState = Connected
	}
	return l
}

// addOrderLocked records a new device id in the id order. Callers hold
// s.mu for writing.
func (s *Store) addOrderLocked(id string) {
	if n := len(s.order); n > 0 && s.order[n-1] >= id {
		s.orderDirty = true
	}
	s.order = append(s.order, id)
	// Deleted ids leave the order only when it is sorted, which queries
	// do: without queries, devices created and deleted over and over
	// would grow it without end. Sorting once it holds twice the devices
	// bounds it at that, for O(log n) per creation.
	if len(s.order) > 2*len(s.devices)+orderSlack {
		s.sortOrderLocked()
	}
}

// orderSlack keeps a small registry from sorting its order on every
// creation after a deletion.
const orderSlack = 64

// CachedTwins returns c's value for every twin, ordered by device id as
// Twins orders them, deriving values only for twins that changed since c
// last saw them. Each twin is at least as new as when the call began.
func (s *Store) CachedTwins(c *TwinCache) ([]any, error) {
	type miss struct {
		at     int
		id     string
		rev    uint64
		recRev uint64
		tw     Twin
		ok     bool
		val    any
		size   int64
		// liveOnly: the records are those val was made from; only
		// the live state (live) changed.
		liveOnly bool
		live     LiveState
	}
	var (
		vals   []any
		misses []miss
	)
	unlock := s.mu.RUnlock
	s.mu.RLock()
	if s.orderDirty {
		s.mu.RUnlock()
		s.mu.Lock()
		s.sortOrderLocked()
		unlock = s.mu.Unlock
	}
	vals = make([]any, 0, len(s.order))
	for _, id := range s.order {
		st := s.devices[id]
		if st == nil {
			continue // deleted since the order was sorted
		}
		e := st.cached
		if e.cache == c && e.rev == st.rev {
			vals = append(vals, e.val)
			continue
		}
		m := miss{at: len(vals), id: id, rev: st.rev, recRev: st.recRev}
		if c.live != nil && e.cache == c && e.recRev == st.recRev {
			// The live state is a few bytes of the value: its
			// size stays the one estimated for the whole.
			m.liveOnly, m.live, m.val, m.size, m.ok = true, st.live(), e.val, e.size, true
		}
		misses = append(misses, m)
		vals = append(vals, nil)
	}
	unlock()
	if len(misses) == 0 {
		return vals, nil
	}
	for i := range misses {
		m := &misses[i]
		if !m.liveOnly {
			continue
		}
		val, err := c.live(m.val, m.live)
		if err != nil {
			return nil, fmt.Errorf("twin %q: %w", m.id, err)
		}
		m.val = val
		vals[m.at] = val
	}

	// The changed twins, from bbolt: read after their revisions were
	// taken, so at least as new as those.
	type records struct {
		dev  *deviceRecord
		twin *twinRecord
	}
	recs := make([]records, len(misses))
	err := s.db.View(func(tx *bolt.Tx) error {
		for i, m := range misses {
			if m.liveOnly {
				continue
			}
			dev, twin, err := getDeviceAndTwin(tx, m.id)
			if errors.Is(err, ErrDeviceNotFound) {
				continue // deleted since
			}
			if err != nil {
				return fmt.Errorf("twin %q: %w", m.id, err)
			}
			recs[i] = records{dev, twin}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list twins: %w", err)
	}
	// Only the live state is taken under the lock: building the twins
	// under it would hold every publish (TouchActivity) and
	// authentication behind a cold query.
	lives := make([]*deviceState, len(misses))
	s.mu.RLock()
	for i := range misses {
		if !misses[i].liveOnly && recs[i].dev != nil {
			lives[i] = s.devices[misses[i].id].liveCopy()
			misses[i].ok = true
		}
	}
	s.mu.RUnlock()
	for i := range misses {
		if misses[i].liveOnly || !misses[i].ok {
			continue
		}
		misses[i].tw = recs[i].twin.wire(recs[i].dev, lives[i])
		if misses[i].val, err = c.derive(misses[i].tw); err != nil {
			return nil, fmt.Errorf("twin %q: %w", misses[i].id, err)
		}
		if c.size != nil {
			misses[i].size = c.size(misses[i].val)
		}
		vals[misses[i].at] = misses[i].val
	}

	// Keep a value only if its device has not changed since its revision
	// was taken (a later change may not be in it), and within c's budget.
	s.mu.Lock()
	for _, m := range misses {
		st := s.devices[m.id]
		if !m.ok || st == nil || st.rev != m.rev {
			continue
		}
		s.dropCachedLocked(st)
		if c.budget > 0 && s.cacheBytes[c]+m.size > c.budget {
			continue
		}
		st.cached = cacheEntry{cache: c, rev: m.rev, recRev: m.recRev, val: m.val, size: m.size}
		s.cacheBytes[c] += m.size
	}
	s.mu.Unlock()

	// Drop the devices deleted since the first read.
	out := vals[:0]
	next := 0
	for i, v := range vals {
		if next < len(misses) && misses[next].at == i {
			next++
			if !misses[next-1].ok {
				continue
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// sortOrderLocked sorts the id order after creations out of order and
// drops deleted and duplicate ids (a device deleted and created again).
// Callers hold s.mu for writing.
func (s *Store) sortOrderLocked() {
	if !s.orderDirty {
		return
	}
	slices.Sort(s.order)
	s.order = slices.Compact(s.order)
	s.order = slices.DeleteFunc(s.order, func(id string) bool { return s.devices[id] == nil })
	s.orderDirty = false
}
