package device

import (
	"context"
	"sync"
	"time"
)

// Gate paces the dials of a fleet's devices: at most a number in flight at
// once, and optionally at most a number started per second. IoT Hub
// throttles new device connections by rate (an S1 unit admits the higher
// of 100 a second or 12 a second per unit), which a bound on dials in
// flight alone cannot respect: how many dials a second a concurrency
// allows depends on the round trip. Safe for concurrent use.
type Gate struct {
	slots    chan struct{}
	interval time.Duration // between dial starts; 0: no rate limit

	mu   sync.Mutex
	next time.Time // when the next dial may start
}

// NewGate admits inFlight dials at once (at least 1) and, when perSecond
// is positive, starts at most perSecond of them a second.
func NewGate(inFlight int, perSecond float64) *Gate {
	g := &Gate{slots: make(chan struct{}, max(inFlight, 1))}
	if perSecond > 0 {
		g.interval = time.Duration(float64(time.Second) / perSecond)
	}
	return g
}

// Enter waits for the caller's turn to dial and returns the func that
// ends it, or ctx's error.
func (g *Gate) Enter(ctx context.Context) (leave func(), err error) {
	if g.interval > 0 {
		g.mu.Lock()
		start := time.Now()
		if g.next.After(start) {
			start = g.next
		}
		g.next = start.Add(g.interval)
		g.mu.Unlock()
		if err := sleep(ctx, time.Until(start)); err != nil {
			return nil, err
		}
	}
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
