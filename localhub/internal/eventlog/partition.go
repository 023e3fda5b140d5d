package eventlog

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxPendingBytes bounds the records queued for the next write of a
// partition. A single append may exceed it (MaxEventSize is larger); it
// then waits until the queue is empty.
const maxPendingBytes = 8 << 20

// partition is one ordered stream: a directory of segments, a goroutine
// that writes them (commitLoop) and the committed state readers see.
//
// Appends encode their records and queue them in pend (under wmu); the
// commit loop takes everything queued, writes it with one write and one
// fsync, then publishes it (under mu) and wakes readers. While it writes,
// the next appends queue up, so concurrent appenders share fsyncs.
type partition struct {
	id           int
	dir          string
	log          *Log
	logger       *slog.Logger
	segmentBytes int64
	rollAgeMs    int64

	// Append side.
	wmu     sync.Mutex
	nextSeq int64
	nextOff int64
	wLastMs int64 // enqueued time of the last queued event
	pend    *batch
	werr    error // set once a write or fsync fails; never cleared
	closing bool
	kick    chan struct{} // capacity 1: "pend is not empty"
	taken   *sync.Cond    // on wmu: commitLoop took pend
	done    chan struct{} // closed when commitLoop returns

	// Owned by commitLoop.
	w         *os.File // appends to active
	active    *segment
	spareBuf  []byte
	spareEvs  []Event
	spareRecs []recMeta
	fsyncs    atomic.Int64 // for benchmarks: events per fsync

	// Committed state.
	mu        sync.RWMutex
	segs      []*segment // in stream order; the last is active
	committed int64      // sequence number of the next record to commit
	lastOff   int64      // offset of the last committed record, -1: none ever
	lastMs    int64      // its enqueued time
	// The first record retention keeps: sequence number, offset, enqueued
	// time. begin == committed when there is none.
	begin, beginOff, beginMs int64
	cache                    cache
	wake                     chan struct{} // closed and replaced by each commit
	closed                   bool

	hints hints
	// decoders keep what repeats from read to read (eventDecoder).
	decoders sync.Pool
}

// batch is what one fsync covers.
type batch struct {
	buf  []byte // the records, in order
	evs  []Event
	recs []recMeta
	done chan struct{} // closed once written (or failed)
	err  error
}

type recMeta struct {
	off  int64
	size int
}

func openPartition(l *Log, id int, dir string, opts Options) (*partition, error) {
	logger := l.logger.With("partition", id)
	r, err := openSegments(dir, logger)
	if err != nil {
		return nil, fmt.Errorf("eventlog: partition %d: %w", id, err)
	}
	p := &partition{
		id:           id,
		dir:          dir,
		log:          l,
		logger:       logger,
		segmentBytes: opts.SegmentBytes,
		// A quiet partition still starts a new segment now and then, so
		// retention can delete old events' files while new ones arrive.
		rollAgeMs: max(opts.Retention.Milliseconds()/8, 1),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		w:         r.writer,
		segs:      r.segs,
		active:    r.segs[len(r.segs)-1],
		wake:      make(chan struct{}),
	}
	p.cache.maxBytes = opts.CacheBytes
	p.taken = sync.NewCond(&p.wmu)
	p.decoders.New = func() any { return new(eventDecoder) }
	a := p.active
	p.committed, p.nextSeq, p.nextOff = a.endSeq, a.endSeq, a.endOff
	p.lastOff, p.lastMs = a.prevOff, a.prevTime
	if !a.empty() {
		p.lastOff, p.lastMs = a.lastOff, a.lastMs
	}
	p.wLastMs = p.lastMs
	p.begin, p.beginOff = p.committed, a.endOff
	for _, s := range p.segs {
		if !s.empty() {
			p.begin, p.beginOff, p.beginMs = s.baseSeq, s.baseOff, s.firstMs
			break
		}
	}
	p.pend = p.newBatch()
	go p.commitLoop()
	return p, nil
}

func (p *partition) newBatch() *batch {
	return &batch{buf: p.spareBuf[:0], evs: p.spareEvs[:0], recs: p.spareRecs[:0], done: make(chan struct{})}
}

// scratch holds encoding buffers, so appends encode outside the lock
// without allocating.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// enqueue queues evs (a copy the caller owns) as one atomic append and
// fills in their sequence numbers, offsets and enqueued time.
func (p *partition) enqueue(evs []Event, now time.Time) (*batch, error) {
	bp := scratch.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 {
			scratch.Put(bp)
		}
	}()
	buf := (*bp)[:0]
	ends := make([]int, len(evs))
	for i := range evs {
		if err := normalize(&evs[i]); err != nil {
			return nil, err
		}
		start := len(buf)
		var err error
		if buf, err = appendEventFields(appendRecordHeader(buf), &evs[i]); err != nil {
			return nil, fmt.Errorf("eventlog: %w", err)
		}
		if n := len(buf) - start - frameHeaderSize - fixedSize; n > MaxEventSize {
			return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidEvent, n, MaxEventSize)
		}
		ends[i] = len(buf)
	}
	*bp = buf

	p.wmu.Lock()
	defer p.wmu.Unlock()
	// The queue is bounded: when the disk falls behind, appends wait
	// (Enqueue included) rather than grow memory.
	for len(p.pend.buf) > 0 && len(p.pend.buf)+len(buf) > maxPendingBytes && !p.closing && p.werr == nil {
		p.taken.Wait()
	}
	switch {
	case p.closing:
		return nil, ErrClosed
	case p.werr != nil:
		return nil, fmt.Errorf("eventlog: partition %d refuses appends after a write failure: %w", p.id, p.werr)
	}
	ms := max(now.UnixMilli(), p.wLastMs) // enqueued times never go back
	enqueued := time.UnixMilli(ms).UTC()
	b := p.pend
	start := 0
	for i := range evs {
		rec := buf[start:ends[i]]
		var flags byte
		if i < len(evs)-1 {
			flags = flagMore
		}
		sealRecord(rec, flags, p.nextSeq, ms)
		e := &evs[i]
		e.Partition, e.SequenceNumber, e.EnqueuedTime = p.id, p.nextSeq, enqueued
		e.Offset = strconv.FormatInt(p.nextOff, 10)
		b.recs = append(b.recs, recMeta{p.nextOff, len(rec)})
		p.nextSeq++
		p.nextOff += int64(len(rec))
		start = ends[i]
	}
	b.buf = append(b.buf, buf...)
	b.evs = append(b.evs, evs...)
	p.wLastMs = ms
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return b, nil
}

// normalize stores values as a reader will get them back from disk, so
// events read from the cache and from files are the same: int and uint as
// int64 and uint64, times in UTC without a monotonic reading. Maps that
// need it are copied, never changed. It also rejects a key that is in
// both Properties and TypedProperties.
func normalize(e *Event) error {
	for k := range e.TypedProperties {
		if _, dup := e.Properties[k]; dup {
			return fmt.Errorf("%w: application property %q is in both Properties and TypedProperties", ErrInvalidEvent, k)
		}
	}
	e.TypedProperties = normalizeValues(e.TypedProperties)
	e.Annotations = normalizeValues(e.Annotations)
	return nil
}

func normalizeValues(m map[string]any) map[string]any {
	var out map[string]any
	for k, v := range m {
		n, changed := normalValue(v)
		if !changed {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(m))
			for k, v := range m {
				out[k] = v
			}
		}
		out[k] = n
	}
	if out == nil {
		return m
	}
	return out
}

func normalValue(v any) (any, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case uint:
		return uint64(v), true
	case time.Time:
		if u := v.UTC(); u != v {
			return u, true
		}
	}
	return v, false
}

// commitLoop writes queued appends until the log closes, then returns once
// everything queued is written.
func (p *partition) commitLoop() {
	defer close(p.done)
	for {
		p.wmu.Lock()
		for len(p.pend.evs) == 0 && !p.closing {
			p.wmu.Unlock()
			<-p.kick
			p.wmu.Lock()
		}
		b := p.pend
		if len(b.evs) == 0 {
			p.wmu.Unlock()
			return
		}
		p.pend = p.newBatch()
		p.spareBuf, p.spareEvs, p.spareRecs = nil, nil, nil
		err := p.werr
		p.taken.Broadcast()
		p.wmu.Unlock()

		if err == nil {
			if err = p.commit(b); err != nil {
				p.fail(err)
			}
		}
		b.err = err
		close(b.done)
		// Let the appenders just acknowledged queue their next events, so
		// they join the next fsync rather than wait for the one after it.
		runtime.Gosched()
		if cap(b.buf) <= 4<<20 {
			clear(b.evs)
			p.spareBuf, p.spareEvs, p.spareRecs = b.buf[:0], b.evs[:0], b.recs[:0]
		}
		p.expire()
	}
}

// commit writes and fsyncs b, then shows it to readers.
func (p *partition) commit(b *batch) error {
	a := p.active
	if !a.empty() && (a.endOff-a.baseOff >= p.segmentBytes || p.log.now().UnixMilli()-a.firstMs >= p.rollAgeMs) {
		if err := p.roll(b.evs[0].SequenceNumber, b.recs[0].off); err != nil {
			return fmt.Errorf("start a segment: %w", err)
		}
	}
	if _, err := p.w.Write(b.buf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := p.w.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	p.fsyncs.Add(1)
	p.mu.Lock()
	wasEmpty := p.begin == p.committed
	for i := range b.evs {
		e, r := &b.evs[i], b.recs[i]
		ms := e.EnqueuedTime.UnixMilli()
		p.active.add(e.SequenceNumber, r.off, r.size, ms)
		p.cache.push(*e, r.size)
	}
	last := len(b.evs) - 1
	p.committed = b.evs[last].SequenceNumber + 1
	p.lastOff, p.lastMs = b.recs[last].off, b.evs[last].EnqueuedTime.UnixMilli()
	if wasEmpty {
		p.begin, p.beginOff, p.beginMs = b.evs[0].SequenceNumber, b.recs[0].off, b.evs[0].EnqueuedTime.UnixMilli()
	}
	close(p.wake)
	p.wake = make(chan struct{})
	p.mu.Unlock()
	return nil
}

// roll seals the active segment (already fsynced) and starts a new one at
// the given sequence number and offset.
func (p *partition) roll(seq, off int64) error {
	a := p.active
	s, w, err := createSegment(p.dir, segHeader{baseSeq: seq, baseOff: off, prevOff: a.lastOff, prevTime: a.lastMs})
	if err != nil {
		return err
	}
	if err := p.w.Close(); err != nil {
		p.logger.Warn("events log: closing a sealed segment", "err", err)
	}
	p.w, p.active = w, s
	p.mu.Lock()
	p.segs = append(p.segs, s)
	p.mu.Unlock()
	return nil
}

// fail puts the partition in its failed state: after a failed write or
// fsync, what the file holds is unknown, and retrying an fsync can report
// success for data the kernel already dropped. Reopening the log recovers
// from what is on disk.
func (p *partition) fail(err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.werr == nil {
		p.werr = err
		p.taken.Broadcast()
		p.logger.Error("events log: write failed; the partition refuses appends until the hub restarts", "err", err)
	}
}

// expire moves the beginning past events retention no longer keeps and
// deletes segments holding only such events. The check under the read
// lock keeps readers from serialising on the write lock when nothing has
// expired, which is nearly always.
func (p *partition) expire() {
	cut := p.log.cutoffMs()
	p.mu.RLock()
	stale := !p.closed && p.begin < p.committed && p.beginMs < cut
	p.mu.RUnlock()
	if !stale {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.begin >= p.committed || p.beginMs >= cut {
		return
	}
	r, err := p.seekTimeLocked(cut)
	if err != nil {
		p.logger.Warn("events log: retention could not read the partition", "err", err)
		return
	}
	p.begin, p.beginOff, p.beginMs = r.seq, r.off, r.ms
	for len(p.segs) > 1 && p.segs[0].endSeq <= p.begin {
		p.segs[0].drop()
		p.segs = p.segs[1:]
	}
}

// stopAppends makes later appends fail; commitLoop writes what is queued
// and returns.
func (p *partition) stopAppends() {
	p.wmu.Lock()
	p.closing = true
	p.taken.Broadcast()
	p.wmu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *partition) close() error {
	<-p.done
	err := p.w.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	close(p.wake)
	for _, s := range p.segs {
		s.release()
	}
	p.segs = nil
	return err
}
