package eventlog

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Read returns up to limit events with sequence number >= from, in order.
// When none exist yet it blocks until one is committed or ctx ends
// (ctx.Err()). Events retention dropped are skipped. After Close it returns
// ErrClosed.
//
// Read returns only events that are on disk. A read that stops at the end
// of a segment file may return fewer than limit events although more exist:
// read again from the last sequence number plus one.
//
// Events at the head of the log come from memory and share Body, UserID
// and the maps with the log and with other readers: treat every event as
// read-only.
func (l *Log) Read(ctx context.Context, partition int, from int64, limit int) ([]Event, error) {
	if limit < 1 {
		return nil, fmt.Errorf("eventlog: read at most %d events: must be at least 1", limit)
	}
	p, err := l.partition(partition)
	if err != nil {
		return nil, err
	}
	for {
		evs, wake, err := p.read(from, limit)
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

// read returns events, or with none to return the channel the next commit
// closes.
func (p *partition) read(from int64, limit int) ([]Event, <-chan struct{}, error) {
	p.expire()
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, nil, ErrClosed
	}
	from = min(max(from, p.begin), p.committed)
	if from == p.committed {
		wake := p.wake
		p.mu.RUnlock()
		return nil, wake, nil
	}
	if evs := p.cache.get(from, limit); evs != nil {
		p.mu.RUnlock()
		return evs, nil, nil
	}
	s, start, startSeq := p.locateLocked(from)
	if off, ok := p.hints.get(from); ok && off > start && off < s.endOff {
		start, startSeq = off, from
	}
	from = max(from, s.baseSeq) // from fell in a gap a damaged segment left
	end := s.endOff
	// Read about as much as the events asked for need, not a whole buffer
	// for a reader that takes one event at a time.
	avg := (s.endOff - s.baseOff) / (s.endSeq - s.baseSeq)
	want := (from - startSeq + int64(limit)) * avg
	s.acquire()
	p.mu.RUnlock()
	defer s.release()
	evs, err := p.readSegment(s, start, end, want, from, limit)
	if len(evs) == 0 && err == nil {
		return nil, nil, fmt.Errorf("%w: sequence number %d not found in its segment", ErrCorrupt, from)
	}
	return evs, nil, err
}

// locateLocked returns the segment holding sequence number seq (or, if seq
// fell in a gap, the next one) and an indexed record at or before it to
// scan from, with that record's sequence number.
func (p *partition) locateLocked(seq int64) (*segment, int64, int64) {
	i := max(sort.Search(len(p.segs), func(i int) bool { return p.segs[i].baseSeq > seq })-1, 0)
	for i < len(p.segs)-1 && seq >= p.segs[i].endSeq {
		i++
	}
	s := p.segs[i]
	j := max(sort.Search(len(s.index), func(j int) bool { return s.index[j].seq > seq })-1, 0)
	if len(s.index) == 0 {
		return s, s.baseOff, s.baseSeq
	}
	return s, s.index[j].off, s.index[j].seq
}

// readBufs are scan buffers: events never alias them (the decoder copies).
var readBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// readSegment decodes up to limit events from sequence number from, scanning
// s from the record at stream offset start up to end, about want bytes at
// a time. It runs without the partition's lock: it may use only s's
// immutable fields.
func (p *partition) readSegment(s *segment, start, end, want, from int64, limit int) ([]Event, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	want = min(max(4<<10, want+frameHeaderSize), int64(cap(*bp)))
	out := make([]Event, 0, min(limit, 1024))
	var ed *eventDecoder
	if limit > 1 {
		ed = p.decoders.Get().(*eventDecoder)
		defer p.decoders.Put(ed)
	}
	var derr error
	var next int64
	err := s.scan((*bp)[:0:want], start, end, func(off int64, fr frame) bool {
		next = off + int64(fr.size)
		if fr.seq < from {
			return true
		}
		e := Event{Partition: p.id, SequenceNumber: fr.seq, EnqueuedTime: time.UnixMilli(fr.timeMs).UTC()}
		if derr = ed.decode(fr.fields, &e); derr != nil {
			derr = fmt.Errorf("sequence number %d: %w", fr.seq, derr)
			return false
		}
		e.Offset = strconv.FormatInt(off, 10)
		out = append(out, e)
		return len(out) < limit
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return out, fmt.Errorf("eventlog: partition %d: %w", p.id, err)
	}
	if len(out) > 0 && next < end {
		p.hints.put(out[len(out)-1].SequenceNumber+1, next)
	}
	return out, nil
}
