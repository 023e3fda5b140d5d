package eventlog

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"
)

// Offsets with a meaning of their own in Event Hubs filters
// (amqp.annotation.x-opt-offset > '-1' and > '@latest').
const (
	OffsetEarliest = "-1"
	OffsetLatest   = "@latest"
)

// Position is where a reader starts. Exactly one of the fields is used, in
// this order: Earliest, Latest, Offset, SequenceNumber, EnqueuedTime.
type Position struct {
	Earliest       bool
	Latest         bool
	Offset         *string
	SequenceNumber *int64
	EnqueuedTime   *time.Time
	// Inclusive includes the event at Offset/SequenceNumber itself, and
	// for EnqueuedTime an event enqueued exactly then.
	Inclusive bool
}

// Seek resolves a position to the next sequence number to read.
//
// Latest is the sequence number the next append gets. An offset between two
// events resolves to the later one, whether or not Inclusive is set;
// OffsetEarliest (or any negative offset) and OffsetLatest mean what they
// mean in Event Hubs filters. EnqueuedTime resolves to the first event
// enqueued after it (at or after it when Inclusive). A position before the
// first retained event resolves to that event, one past the last to the
// next append. A Position with no field set, or an offset that is not a
// decimal number, fails with ErrInvalidPosition.
func (l *Log) Seek(partition int, pos Position) (int64, error) {
	p, err := l.partition(partition)
	if err != nil {
		return 0, err
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	switch {
	case pos.Earliest:
		return p.begin, nil
	case pos.Latest:
		return p.next(), nil
	case pos.Offset != nil:
		return p.seekOffset(*pos.Offset, pos.Inclusive)
	case pos.SequenceNumber != nil:
		return p.seekSequence(*pos.SequenceNumber, pos.Inclusive), nil
	case pos.EnqueuedTime != nil:
		return p.seekTime(*pos.EnqueuedTime, pos.Inclusive), nil
	}
	return 0, fmt.Errorf("%w: no field set", ErrInvalidPosition)
}

// The seek helpers run under p.mu.

func (p *partition) seekOffset(s string, inclusive bool) (int64, error) {
	if s == OffsetLatest {
		return p.next(), nil
	}
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: offset %q is not a decimal number", ErrInvalidPosition, s)
	}
	i := sort.Search(len(p.recs), func(i int) bool { return p.recs[i].off >= off })
	if i < len(p.recs) && p.recs[i].off == off && !inclusive {
		i++
	}
	return p.begin + int64(i), nil
}

func (p *partition) seekSequence(seq int64, inclusive bool) int64 {
	if !inclusive {
		if seq == math.MaxInt64 {
			return p.next()
		}
		seq++
	}
	return min(max(seq, p.begin), p.next())
}

func (p *partition) seekTime(t time.Time, inclusive bool) int64 {
	i := sort.Search(len(p.recs), func(i int) bool {
		enq := p.recs[i].ev.EnqueuedTime
		if inclusive {
			return !enq.Before(t)
		}
		return enq.After(t)
	})
	return p.begin + int64(i)
}
