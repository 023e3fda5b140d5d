package registry

import (
	"errors"
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds how many writes share one transaction.
const maxGroup = 256

// groupCommitter coalesces concurrent writes into one bbolt transaction and
// so one fsync, the cost that dominates when many devices report at once.
//
// Unlike bolt.DB.Batch it adds no delay: a lone write commits at once, and
// writes that arrive while a commit is in flight go together in the next.
// The goroutine that finds no commit in flight leads: it runs every queued
// write, then hands the lead to the first writer still queued.
type groupCommitter struct {
	db    *bolt.DB
	limit int // writes per transaction

	mu      sync.Mutex
	queue   []*pendingWrite
	leading bool
}

type pendingWrite struct {
	fn   func(*bolt.Tx) error
	err  error
	lead bool          // set instead of a result: run the next group
	done chan struct{} // closed when err is set or lead handed over
}

func newGroupCommitter(db *bolt.DB) *groupCommitter {
	return &groupCommitter{db: db, limit: maxGroup}
}

// update runs fn in a read-write transaction that is committed before update
// returns. fn may run more than once, so it must only set its results, never
// accumulate them. An error fn returns for bad input (see cleanError) must
// be returned before fn writes anything: the transaction is shared.
func (g *groupCommitter) update(fn func(*bolt.Tx) error) error {
	w := &pendingWrite{fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.leading {
		g.mu.Unlock()
		<-w.done
		if !w.lead {
			return w.err
		}
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	g.lead(w)
	return w.err
}

// lead commits the queued writes (self among them) and passes the lead on.
func (g *groupCommitter) lead(self *pendingWrite) {
	g.mu.Lock()
	n := min(len(g.queue), g.limit)
	group := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	g.run(group)
	for _, w := range group {
		if w != self {
			close(w.done)
		}
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.queue) == 0 {
		g.leading = false
		return
	}
	next := g.queue[0]
	next.lead = true
	close(next.done)
}

// run executes a group in one transaction. If a write fails in a way that
// may have left partial changes, the group is rolled back and every write
// runs alone, so one bad write cannot take the others down.
func (g *groupCommitter) run(group []*pendingWrite) {
	tx, err := g.db.Begin(true)
	if err != nil {
		setAll(group, err)
		return
	}
	for _, w := range group {
		w.err = call(w.fn, tx)
		if w.err != nil && !cleanError(w.err) {
			tx.Rollback()
			for _, w := range group {
				w.err = g.db.Update(func(tx *bolt.Tx) error { return call(w.fn, tx) })
			}
			return
		}
	}
	if err := tx.Commit(); err != nil {
		for _, w := range group {
			if w.err == nil {
				w.err = err
			}
		}
	}
}

// call runs fn, turning a panic into an error: the leader runs other
// goroutines' writes, and a panic must neither kill it nor leave the lead
// unreleased.
func call(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry: write panicked: %v", r)
		}
	}()
	return fn(tx)
}

func setAll(group []*pendingWrite, err error) {
	for _, w := range group {
		w.err = err
	}
}

// cleanError reports whether err is a refusal that store operations return
// before they write, so the shared transaction is still good.
func cleanError(err error) bool {
	var invalid *InvalidError
	return errors.Is(err, ErrDeviceNotFound) || errors.Is(err, ErrDeviceExists) ||
		errors.Is(err, ErrPreconditionFailed) || errors.Is(err, ErrJobExists) ||
		errors.Is(err, ErrJobNotFound) || errors.As(err, &invalid)
}
