package eventlog

import (
	"strconv"
	"sync"
	"time"
)

// recordOverhead is what each event adds to the partition's byte offset on
// top of its body. Event Hubs offsets are byte positions in the stored
// stream, so they grow by more than the body and an empty body still moves
// them on: every event needs an offset of its own.
const recordOverhead = 64

// record is a stored event with its offset as a number, so offset
// positions resolve by binary search instead of parsing strings.
type record struct {
	off int64
	ev  Event
}

// partition is one ordered stream. recs[0] has sequence number begin, and
// offsets and enqueued times increase along recs.
type partition struct {
	id int

	mu sync.RWMutex
	// recs is the retained events: a window into buf, which trimming moves
	// forward and push moves back to the start of buf.
	recs       []record
	buf        []record
	begin      int64 // sequence number of recs[0]; the next one when recs is empty
	nextOffset int64
	lastOffset string    // offset of the last event ever appended
	lastTime   time.Time // its enqueued time
	// wake is closed and cleared by the next append. It is made only when a
	// reader has to wait, so appends without waiting readers allocate no
	// channel.
	wake   chan struct{}
	closed bool
}

func newPartition(id int) *partition {
	// Event Hubs' convention for a partition that never had an event.
	return &partition{id: id, lastOffset: "-1", lastTime: time.Unix(0, 0).UTC()}
}

// next is the sequence number the next append gets. Callers hold mu.
func (p *partition) next() int64 { return p.begin + int64(len(p.recs)) }

func (p *partition) append(e Event, now time.Time, retention time.Duration) Event {
	p.mu.Lock()
	if now.Before(p.lastTime) {
		now = p.lastTime // keeps EnqueuedTime sorted for seekTime
	}
	p.trimLocked(now.Add(-retention))
	e.Partition = p.id
	e.SequenceNumber = p.next()
	e.Offset = strconv.FormatInt(p.nextOffset, 10)
	e.EnqueuedTime = now
	p.push(record{off: p.nextOffset, ev: e})
	p.nextOffset += int64(len(e.Body)) + recordOverhead
	p.lastOffset, p.lastTime = e.Offset, now
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
	p.mu.Unlock()
	return e
}

// expire drops events enqueued before cutoff. The check under the read
// lock keeps readers from serialising on the write lock when nothing has
// expired, which is nearly always.
func (p *partition) expire(cutoff time.Time) {
	p.mu.RLock()
	stale := len(p.recs) > 0 && p.recs[0].ev.EnqueuedTime.Before(cutoff)
	p.mu.RUnlock()
	if !stale {
		return
	}
	p.mu.Lock()
	p.trimLocked(cutoff)
	p.mu.Unlock()
}

func (p *partition) trimLocked(cutoff time.Time) {
	if len(p.recs) == 0 || !p.recs[0].ev.EnqueuedTime.Before(cutoff) {
		return
	}
	// A linear scan, not a binary search: appends usually trim one event or
	// none, and each event is passed over once, so this is O(1) amortised.
	n := 1
	for n < len(p.recs) && p.recs[n].ev.EnqueuedTime.Before(cutoff) {
		n++
	}
	clear(p.recs[:n]) // buf outlives them: let their bodies be collected
	p.begin += int64(n)
	if n == len(p.recs) {
		p.recs, p.buf = nil, nil // an idle partition holds no memory
		return
	}
	p.recs = p.recs[n:]
}

// push adds r after the last retained event. When recs reaches the end of
// buf, the retained events move to the start of buf if they fill less than
// half of it, so a steady retention window appends without allocating, and
// to a new buffer twice their size otherwise.
func (p *partition) push(r record) {
	if len(p.recs) == cap(p.recs) {
		n := len(p.recs)
		if 2*n >= len(p.buf) {
			buf := make([]record, 2*n+16)
			copy(buf, p.recs)
			p.buf = buf
		} else {
			copy(p.buf, p.recs)
			clear(p.buf[n:]) // the moved events' old slots
		}
		p.recs = p.buf[:n]
	}
	p.recs = append(p.recs, r)
}

// read copies up to limit events from sequence number from on. With none
// to return it gives the channel the next append closes instead.
func (p *partition) read(from int64, limit int) ([]Event, <-chan struct{}, error) {
	p.mu.RLock()
	evs, err := p.copyLocked(from, limit)
	p.mu.RUnlock()
	if evs != nil || err != nil {
		return evs, nil, err
	}
	// Nothing yet: register to be woken. Check again under the write lock,
	// as an append may have come in between.
	p.mu.Lock()
	defer p.mu.Unlock()
	if evs, err := p.copyLocked(from, limit); evs != nil || err != nil {
		return evs, nil, err
	}
	if p.wake == nil {
		p.wake = make(chan struct{})
	}
	return nil, p.wake, nil
}

func (p *partition) copyLocked(from int64, limit int) ([]Event, error) {
	if p.closed {
		return nil, ErrClosed
	}
	from = min(max(from, p.begin), p.next()) // skip what retention dropped
	n := min(p.next()-from, int64(limit))
	if n <= 0 {
		return nil, nil
	}
	i := from - p.begin
	out := make([]Event, n)
	for j := range out {
		out[j] = p.recs[i+int64(j)].ev
	}
	return out, nil
}

func (p *partition) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}
