package eventlog

import (
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

// fixtureBodySizes are irregular so offsets have uneven gaps.
var fixtureBodySizes = []int{0, 10, 3, 100, 7}

// newFixture returns a one-partition log holding len(fixtureBodySizes)
// events enqueued one second apart, and those events.
func newFixture(t testing.TB, retention time.Duration) (*Log, *fakeClock, []Event) {
	t.Helper()
	clock := newFakeClock()
	l := New(Options{Partitions: 1, Retention: retention, Now: clock.Now})
	evs := make([]Event, len(fixtureBodySizes))
	for i, n := range fixtureBodySizes {
		evs[i] = l.Append(Event{DeviceID: "dev", Body: make([]byte, n)})
		clock.Advance(time.Second)
	}
	return l, clock, evs
}

func offsetOf(t testing.TB, e Event) int64 {
	t.Helper()
	off, err := strconv.ParseInt(e.Offset, 10, 64)
	require.NoError(t, err)
	return off
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
