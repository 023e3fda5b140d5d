package device

import (
	"context"
	"sync"
)

// Stats counts what a fleet of devices is doing. Devices update it; anyone
// may read a Snapshot or Wait for a condition. The zero value is ready.
type Stats struct {
	mu      sync.Mutex
	s       Snapshot
	changed chan struct{} // closed and replaced on every change
}

// Snapshot is Stats at one moment.
type Snapshot struct {
	Connected int // devices connected that have reported their state
	Rebooting int // devices between accepting a reboot and being back
	Reboots   int // reboots completed: the device came back and reported running
	Failed    int // reboots refused by an injected fault
	Gone      int // devices that went down for a reboot and never came back
	Connects  int // sessions that got as far as reporting, in total
	Lost      int // sessions that dropped on their own
}

// Snapshot returns the current counts.
func (st *Stats) Snapshot() Snapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s
}

// Wait blocks until cond holds for the counts, or ctx ends. It wakes on
// every change rather than polling.
func (st *Stats) Wait(ctx context.Context, cond func(Snapshot) bool) error {
	for {
		st.mu.Lock()
		ok := cond(st.s)
		if st.changed == nil {
			st.changed = make(chan struct{})
		}
		changed := st.changed
		st.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// update applies f and wakes waiters. A nil *Stats counts nothing.
func (st *Stats) update(f func(*Snapshot)) {
	if st == nil {
		return
	}
	st.mu.Lock()
	f(&st.s)
	if st.changed != nil {
		close(st.changed)
		st.changed = nil
	}
	st.mu.Unlock()
}
