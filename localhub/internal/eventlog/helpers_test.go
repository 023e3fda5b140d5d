package eventlog

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is an Options.Now that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	// Sub-millisecond part on purpose: Append must truncate it.
	return &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 890_123_456, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openLog opens a log in a new temporary directory unless opts names one,
// and closes it when the test ends.
func openLog(t testing.TB, opts Options) *Log {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// reopen closes l and opens its directory again with opts.
func reopen(t testing.TB, l *Log, opts Options) *Log {
	t.Helper()
	require.NoError(t, l.Close())
	return openLog(t, opts)
}

func mustAppend(t testing.TB, l *Log, e Event) Event {
	t.Helper()
	got, err := l.Append(e)
	require.NoError(t, err)
	return got
}

// layouts are the ways a test log can lie on disk: reads and seeks must
// not depend on it.
var layouts = []struct {
	name   string
	opts   Options
	reopen bool // close and reopen before reading: no cache, rebuilt index
}{
	{"one segment", Options{}, false},
	{"segment per append", Options{SegmentBytes: 1, CacheBytes: 1}, false},
	{"reopened", Options{}, true},
	{"reopened segment per append", Options{SegmentBytes: 1}, true},
}

// fixtureBodySizes are irregular so offsets have uneven gaps.
var fixtureBodySizes = []int{0, 10, 3, 100, 7}

// newFixture returns a one-partition log holding len(fixtureBodySizes)
// events enqueued one second apart, and those events.
func newFixture(t testing.TB, retention time.Duration) (*Log, *fakeClock, []Event) {
	return newFixtureWith(t, Options{Retention: retention}, false)
}

func newFixtureWith(t testing.TB, opts Options, reopenAfter bool) (*Log, *fakeClock, []Event) {
	t.Helper()
	clock := newFakeClock()
	opts.Dir, opts.Partitions, opts.Now = t.TempDir(), 1, clock.Now
	l := openLog(t, opts)
	evs := make([]Event, len(fixtureBodySizes))
	for i, n := range fixtureBodySizes {
		evs[i] = mustAppend(t, l, Event{DeviceID: "dev", Body: make([]byte, n)})
		clock.Advance(time.Second)
	}
	if reopenAfter {
		l = reopen(t, l, opts)
	}
	return l, clock, evs
}

func offsetOf(t testing.TB, e Event) int64 {
	t.Helper()
	off, err := strconv.ParseInt(e.Offset, 10, 64)
	require.NoError(t, err)
	return off
}

// readN reads exactly n events of a partition from sequence number from.
func readN(t testing.TB, l *Log, partition int, from int64, n int) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []Event
	for len(out) < n {
		evs, err := l.Read(ctx, partition, from, n-len(out))
		require.NoError(t, err, "after %d of %d events", len(out), n)
		out = append(out, evs...)
		from = evs[len(evs)-1].SequenceNumber + 1
	}
	return out
}

// devicesInDistinctPartitions returns one device id per partition of l.
func devicesInDistinctPartitions(t testing.TB, l *Log) []string {
	t.Helper()
	ids := make([]string, l.PartitionCount())
	found := 0
	for i := 0; found < len(ids) && i < 10_000; i++ {
		id := "device-" + strconv.Itoa(i)
		if p := l.PartitionFor(id); ids[p] == "" {
			ids[p] = id
			found++
		}
	}
	require.Equal(t, len(ids), found, "no device id found for some partition")
	return ids
}

// logRecorder is a slog handler that keeps what it is given.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{r}, nil))
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

type lockedWriter struct{ r *logRecorder }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.buf.Write(p)
}
