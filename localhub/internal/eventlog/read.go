package eventlog

import (
	"context"
	"fmt"
)

// Read returns up to max events with sequence number >= from. When none
// exist yet it blocks until one is appended or ctx ends (ctx.Err()). Events
// trimmed by retention are skipped. After Close it returns ErrClosed.
//
// The events share Body, UserID, Properties and Annotations with the log
// and with other readers: treat them as read-only.
func (l *Log) Read(ctx context.Context, partition int, from int64, max int) ([]Event, error) {
	if max < 1 {
		return nil, fmt.Errorf("eventlog: read at most %d events: must be at least 1", max)
	}
	for {
		p, err := l.partition(partition) // expires by retention on every pass
		if err != nil {
			return nil, err
		}
		evs, wake, err := p.read(from, max)
		if evs != nil || err != nil {
			return evs, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
