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
//
// Positions hold across restarts: a reader that saved the offset or
// sequence number of the last event it processed gets exactly the events
// after it from a reopened log.
func (l *Log) Seek(partition int, pos Position) (int64, error) {
	p, err := l.partition(partition)
	if err != nil {
		return 0, err
	}
	p.expire()
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return 0, ErrClosed
	}
	switch {
	case pos.Earliest:
		return p.begin, nil
	case pos.Latest:
		return p.committed, nil
	case pos.Offset != nil:
		return p.seekOffsetLocked(*pos.Offset, pos.Inclusive)
	case pos.SequenceNumber != nil:
		return p.seekSequenceLocked(*pos.SequenceNumber, pos.Inclusive), nil
	case pos.EnqueuedTime != nil:
		thr := ceilMs(*pos.EnqueuedTime)
		if !pos.Inclusive && time.UnixMilli(thr).Equal(*pos.EnqueuedTime) {
			thr++ // strictly after an instant that is a whole millisecond
		}
		r, err := p.seekTimeLocked(thr)
		if err != nil {
			return 0, err
		}
		return max(r.seq, p.begin), nil
	}
	return 0, fmt.Errorf("%w: no field set", ErrInvalidPosition)
}

// recPos is a record's sequence number, offset and enqueued time (Unix ms),
// or with the next sequence number, the end of the partition.
type recPos struct{ seq, off, ms int64 }

// The seek helpers run under p.mu.

func (p *partition) seekSequenceLocked(seq int64, inclusive bool) int64 {
	if !inclusive {
		if seq == math.MaxInt64 {
			return p.committed
		}
		seq++
	}
	return min(max(seq, p.begin), p.committed)
}

func (p *partition) seekOffsetLocked(s string, inclusive bool) (int64, error) {
	if s == OffsetLatest {
		return p.committed, nil
	}
	off, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: offset %q is not a decimal number", ErrInvalidPosition, s)
	}
	if p.begin == p.committed || off < p.beginOff || (off == p.beginOff && inclusive) {
		return p.begin, nil
	}
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].baseOff > off }) - 1
	seg := p.segs[max(i, 0)]
	if off >= seg.endOff {
		return p.afterLocked(seg).seq, nil
	}
	j := max(sort.Search(len(seg.index), func(j int) bool { return seg.index[j].off > off })-1, 0)
	r, err := p.findLocked(seg, seg.index[j].off, func(o int64, _ frame) bool {
		return o > off || (o == off && inclusive)
	})
	if err != nil {
		return 0, err
	}
	return max(r.seq, p.begin), nil
}

// seekTimeLocked finds the first record enqueued at or after thr (Unix ms).
func (p *partition) seekTimeLocked(thr int64) (recPos, error) {
	segs := p.segs
	i := sort.Search(len(segs), func(i int) bool { return segs[i].empty() || segs[i].lastMs >= thr })
	if i == len(segs) || segs[i].empty() {
		return p.endLocked(), nil
	}
	s := segs[i]
	j := sort.Search(len(s.index), func(j int) bool { return s.index[j].ms >= thr })
	if j == 0 {
		return recPos{s.baseSeq, s.baseOff, s.firstMs}, nil
	}
	return p.findLocked(s, s.index[j-1].off, func(_ int64, fr frame) bool { return fr.timeMs >= thr })
}

// findLocked scans s from the record at offset start for the first record
// that matches; with none, it is the first record after s.
func (p *partition) findLocked(s *segment, start int64, match func(off int64, fr frame) bool) (recPos, error) {
	var r recPos
	found := false
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	err := s.scan((*bp)[:0:indexInterval+64<<10], start, s.endOff, func(off int64, fr frame) bool {
		if match(off, fr) {
			r, found = recPos{fr.seq, off, fr.timeMs}, true
		}
		return !found
	})
	if err != nil {
		return recPos{}, fmt.Errorf("eventlog: partition %d: %w", p.id, err)
	}
	if found {
		return r, nil
	}
	return p.afterLocked(s), nil
}

// afterLocked is the first record after segment s.
func (p *partition) afterLocked(s *segment) recPos {
	for i, x := range p.segs {
		if x == s && i+1 < len(p.segs) && !p.segs[i+1].empty() {
			n := p.segs[i+1]
			return recPos{n.baseSeq, n.baseOff, n.firstMs}
		}
	}
	return p.endLocked()
}

// endLocked is the position the next append takes.
func (p *partition) endLocked() recPos {
	return recPos{seq: p.committed, off: p.segs[len(p.segs)-1].endOff, ms: math.MaxInt64}
}
