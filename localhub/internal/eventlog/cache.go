package eventlog

import "sync"

// eventOverhead is what the cache counts for an event on top of its record:
// the Event struct and map headers, roughly.
const eventOverhead = 256

// cache keeps the newest committed events of a partition, so readers at the
// head (the usual case: every consumer tailing the log) get them without
// touching the disk or decoding, and share them. It is bounded in bytes.
// Guarded by the partition's mu.
type cache struct {
	ring     []Event // circular; len is a power of two
	sizes    []int
	head, n  int   // index of the oldest event, number cached
	first    int64 // sequence number of the oldest
	bytes    int
	maxBytes int
}

// push adds the next committed event.
func (c *cache) push(e Event, recordSize int) {
	size := recordSize + eventOverhead
	if size > c.maxBytes {
		c.reset()
		return
	}
	if c.n > 0 && e.SequenceNumber != c.first+int64(c.n) {
		c.reset() // not contiguous: never happens, but never serve a gap
	}
	for c.n > 0 && c.bytes+size > c.maxBytes {
		c.pop()
	}
	if c.n == len(c.ring) {
		c.grow()
	}
	if c.n == 0 {
		c.first = e.SequenceNumber
	}
	i := (c.head + c.n) & (len(c.ring) - 1)
	c.ring[i], c.sizes[i] = e, size
	c.n++
	c.bytes += size
}

func (c *cache) pop() {
	c.bytes -= c.sizes[c.head]
	c.ring[c.head] = Event{}
	c.head = (c.head + 1) & (len(c.ring) - 1)
	c.n--
	c.first++
}

func (c *cache) grow() {
	n := max(2*len(c.ring), 64)
	ring, sizes := make([]Event, n), make([]int, n)
	for i := range c.n {
		j := (c.head + i) & (len(c.ring) - 1)
		ring[i], sizes[i] = c.ring[j], c.sizes[j]
	}
	c.ring, c.sizes, c.head = ring, sizes, 0
}

func (c *cache) reset() {
	c.ring, c.sizes = nil, nil
	c.head, c.n, c.bytes = 0, 0, 0
}

// get copies up to limit events from sequence number from, or returns nil if
// the cache does not hold from.
func (c *cache) get(from int64, limit int) []Event {
	if c.n == 0 || from < c.first || from >= c.first+int64(c.n) {
		return nil
	}
	k := min(int64(limit), c.first+int64(c.n)-from)
	out := make([]Event, k)
	for j := range out {
		out[j] = c.ring[(c.head+int(from-c.first)+j)&(len(c.ring)-1)]
	}
	return out
}

// hints remember where recent disk reads stopped, so a reader that comes
// back for the next events starts there instead of at an index entry.
type hints struct {
	mu   sync.Mutex
	h    [16]hint
	next int
}

type hint struct {
	seq, off int64 // the record with sequence number seq starts at offset off
}

func (h *hints) put(seq, off int64) {
	h.mu.Lock()
	h.h[h.next] = hint{seq + 1, off} // +1: the zero value matches nothing
	h.next = (h.next + 1) % len(h.h)
	h.mu.Unlock()
}

func (h *hints) get(seq int64) (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range h.h {
		if x.seq == seq+1 {
			return x.off, true
		}
	}
	return 0, false
}
