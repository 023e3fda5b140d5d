package amqp

import (
	"context"
	"sync"
)

// budget bounds the bytes a connection holds in one direction. Takers
// wait while the budget is spent, except that one taker may always
// proceed when nothing is held, so a single item larger than the limit
// cannot wedge the connection.
type budget struct {
	mu    sync.Mutex
	used  int
	limit int
	freed chan struct{} // closed and replaced when bytes are returned and someone waits
	waits int
}

func newBudget(limit int) *budget {
	return &budget{limit: limit, freed: make(chan struct{})}
}

// take waits until n bytes fit, ctx ends or stop is closed.
func (b *budget) take(ctx context.Context, stop <-chan struct{}, n int) error {
	for {
		b.mu.Lock()
		if b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.waits++
		b.mu.Unlock()
		var err error
		select {
		case <-freed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-stop:
			err = errConnClosed
		}
		b.mu.Lock()
		b.waits--
		b.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// tryTake takes n bytes if they fit now.
func (b *budget) tryTake(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used == 0 || b.used+n <= b.limit {
		b.used += n
		return true
	}
	return false
}

// force takes n bytes without waiting (for the connection's own
// goroutine, which must never block on its peer's consumer).
func (b *budget) force(n int) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// give returns n bytes.
func (b *budget) give(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		b.used = 0
	}
	if b.waits > 0 {
		close(b.freed)
		b.freed = make(chan struct{})
	}
	b.mu.Unlock()
}

// inUse reports the bytes held.
func (b *budget) inUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
