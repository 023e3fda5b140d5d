package eventlog

import (
	"hash/fnv"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOpenPartitionCount(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want int
	}{
		{"zero", Options{}, DefaultPartitions},
		{"negative", Options{Partitions: -3}, DefaultPartitions},
		{"explicit", Options{Partitions: 32}, 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, openLog(t, tt.opts).PartitionCount())
		})
	}
}

func TestOpenKeepsPartitionCountAndCreationTime(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	l := openLog(t, Options{Dir: dir, Partitions: 3, Now: clock.Now})
	created := l.CreatedAt()
	require.Equal(t, clock.Now().Truncate(time.Millisecond), created)
	require.NoError(t, l.Close())

	clock.Advance(time.Hour)
	l = openLog(t, Options{Dir: dir, Now: clock.Now})
	require.Equal(t, 3, l.PartitionCount(), "zero means the count the log has")
	require.Equal(t, created, l.CreatedAt())
	require.NoError(t, l.Close())

	_, err := Open(Options{Dir: dir, Partitions: 4})
	require.ErrorContains(t, err, "has 3 partitions, not 4")
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(Options{})
	require.ErrorContains(t, err, "Dir is required")

	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	_, err = Open(Options{Dir: dir})
	require.ErrorContains(t, err, "in use by another process", "a second writer on the same directory")
	require.NoError(t, l.Close())
	openLog(t, Options{Dir: dir}) // the lock went with Close
}

func TestAppendAssignsSequenceOffsetAndTime(t *testing.T) {
	clock := newFakeClock()
	l := openLog(t, Options{Partitions: 1, Now: clock.Now})
	wantTime := clock.Now().Truncate(time.Millisecond)

	var prev int64 = -1
	for i, n := range []int{0, 0, 5, 1000, 1} {
		in := Event{DeviceID: "dev", Body: make([]byte, n), MessageID: "m" + strconv.Itoa(i)}
		got := mustAppend(t, l, in)

		require.Equal(t, 0, got.Partition)
		require.Equal(t, int64(i), got.SequenceNumber)
		require.Greater(t, offsetOf(t, got), prev, "offsets grow, even past an empty body")
		require.Equal(t, wantTime, got.EnqueuedTime)
		require.Equal(t, time.UTC, got.EnqueuedTime.Location())
		require.Equal(t, in.MessageID, got.MessageID, "producer fields kept")
		if i == 0 {
			require.Equal(t, "0", got.Offset)
		}
		prev = offsetOf(t, got)
	}
}

func TestAppendSequencesPerPartition(t *testing.T) {
	l := openLog(t, Options{})
	devices := devicesInDistinctPartitions(t, l)
	for round := range 3 {
		for p, id := range devices {
			got := mustAppend(t, l, Event{DeviceID: id})
			require.Equal(t, p, got.Partition)
			require.Equal(t, int64(round), got.SequenceNumber, "partition %d", p)
		}
	}
}

func TestAppendEnqueuedTimeNeverGoesBack(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, Partitions: 1, Now: clock.Now})
	first := mustAppend(t, l, Event{DeviceID: "dev"})
	clock.Advance(-time.Hour)
	second := mustAppend(t, l, Event{DeviceID: "dev"})
	require.Equal(t, first.EnqueuedTime, second.EnqueuedTime)

	l = reopen(t, l, Options{Dir: dir, Now: clock.Now})
	third := mustAppend(t, l, Event{DeviceID: "dev"})
	require.Equal(t, first.EnqueuedTime, third.EnqueuedTime, "nor across a restart")
}

func TestAppendTo(t *testing.T) {
	l := openLog(t, Options{Partitions: 2})
	in := []Event{{Body: []byte("a"), PartitionKey: "k"}, {Body: []byte("b"), PartitionKey: "k"}, {Body: []byte("c"), PartitionKey: "k"}}
	got, err := l.AppendTo(1, in...)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, e := range got {
		require.Equal(t, 1, e.Partition)
		require.Equal(t, int64(i), e.SequenceNumber)
		require.Equal(t, got[0].EnqueuedTime, e.EnqueuedTime, "one append, one enqueued time")
		require.Equal(t, in[i].Body, e.Body)
	}
	require.Equal(t, got, readN(t, l, 1, 0, 3))

	_, err = l.AppendTo(2, Event{})
	require.ErrorIs(t, err, ErrNoPartition)
	_, err = l.AppendTo(0)
	require.ErrorIs(t, err, ErrInvalidEvent)
}

func TestAppendInvalid(t *testing.T) {
	l := openLog(t, Options{Partitions: 1})
	tests := []struct {
		name string
		e    Event
		msg  string
	}{
		{"annotation type", Event{Annotations: map[string]any{"x": struct{}{}}}, `annotation "x"`},
		{"typed property type", Event{TypedProperties: map[string]any{"x": []int{1}}}, `typed property "x"`},
		{"key twice", Event{Properties: map[string]string{"k": "1"}, TypedProperties: map[string]any{"k": int32(1)}}, `"k" is in both`},
		{"too large", Event{Body: make([]byte, MaxEventSize+1)}, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Append(tt.e)
			require.ErrorIs(t, err, ErrInvalidEvent)
			require.ErrorContains(t, err, tt.msg)
		})
	}
	got := mustAppend(t, l, Event{Body: []byte("ok")})
	require.Equal(t, int64(0), got.SequenceNumber, "refused events take no sequence number")
}

// TestAppendNormalizesValues: what Append returns and a reader gets from
// memory equals what a reader gets from disk after a restart.
func TestAppendNormalizesValues(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, Partitions: 1})
	local := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	in := map[string]any{"i": 7, "u": uint(8), "t": local, "now": time.Now(), "s": "x"}
	got := mustAppend(t, l, Event{Annotations: in, TypedProperties: map[string]any{"n": -1}})

	require.Equal(t, int64(7), got.Annotations["i"])
	require.Equal(t, uint64(8), got.Annotations["u"])
	require.Equal(t, local.UTC(), got.Annotations["t"])
	require.Equal(t, int64(-1), got.TypedProperties["n"])
	require.IsType(t, 0, in["i"], "the caller's map is not changed")

	fromCache := readN(t, l, 0, 0, 1)[0]
	l = reopen(t, l, Options{Dir: dir})
	fromDisk := readN(t, l, 0, 0, 1)[0]
	require.Equal(t, got, fromCache)
	require.Equal(t, got, fromDisk)
}

func TestAppendAfterClose(t *testing.T) {
	l := openLog(t, Options{})
	require.NoError(t, l.Close())
	_, err := l.Append(Event{DeviceID: "dev"})
	require.ErrorIs(t, err, ErrClosed)
	_, err = l.Enqueue(Event{DeviceID: "dev"})
	require.ErrorIs(t, err, ErrClosed)
}

func TestEnqueue(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, Partitions: 1})
	var want []Event
	for i := range 5 {
		e, err := l.Enqueue(Event{DeviceID: "dev", Body: []byte{byte(i)}})
		require.NoError(t, err)
		require.Equal(t, int64(i), e.SequenceNumber)
		want = append(want, e)
	}
	require.Equal(t, want, readN(t, l, 0, 0, 5), "readers see enqueued events once written")
	l = reopen(t, l, Options{Dir: dir})
	require.Equal(t, want, readN(t, l, 0, 0, 5), "Close writes what was enqueued")
}

// TestWriteFailure: once a write fails, the partition refuses appends
// (the disk's state is unknown), says so once, and readers still read what
// was committed.
func TestWriteFailure(t *testing.T) {
	logs := &logRecorder{}
	l := openLog(t, Options{Partitions: 1, Logger: logs.logger()})
	ok := mustAppend(t, l, Event{Body: []byte("kept")})

	p := l.parts[0]
	p.wmu.Lock()
	require.NoError(t, p.w.Close()) // the next write fails as a dead disk would
	p.wmu.Unlock()
	_, err := l.Append(Event{Body: []byte("lost")})
	require.ErrorContains(t, err, "write")
	_, err = l.Append(Event{Body: []byte("refused")})
	require.ErrorContains(t, err, "refuses appends")
	require.Equal(t, 1, strings.Count(logs.String(), "write failed"), logs.String())

	require.Equal(t, []Event{ok}, readN(t, l, 0, 0, 1))
	info, err := l.Info(0)
	require.NoError(t, err)
	require.Equal(t, int64(0), info.LastSequenceNumber, "the failed append is not visible")
	_ = l.Close()
}

func TestPartitionForIsFNV1a(t *testing.T) {
	// Pinning the hash pins the device-to-partition mapping across restarts
	// and versions.
	ids := []string{"", "a", "device1", "thermostat-042", "ünïcödé", "x/y%2Fz"}
	for _, partitions := range []int{1, 2, 4, 32} {
		l := &Log{parts: make([]*partition, partitions)}
		for _, id := range ids {
			h := fnv.New32a()
			_, _ = h.Write([]byte(id))
			want := int(h.Sum32() % uint32(partitions))
			require.Equal(t, want, l.PartitionFor(id), "PartitionFor(%q) with %d partitions", id, partitions)
		}
	}
}

func TestPartitionForSpreadsDevices(t *testing.T) {
	l := &Log{parts: make([]*partition, 4)}
	counts := make([]int, l.PartitionCount())
	for i := range 1000 {
		counts[l.PartitionFor("device-"+strconv.Itoa(i))]++
	}
	for p, n := range counts {
		require.Greater(t, n, 150, "partition %d got %d of 1000 devices", p, n)
	}
}

// TestQueueIsBounded: when the disk falls behind, appends wait rather than
// queue without limit, Enqueue included.
func TestQueueIsBounded(t *testing.T) {
	l := openLog(t, Options{Partitions: 1})
	p := l.parts[0]
	p.mu.Lock() // the commit loop stalls on its first publish
	var enqueued atomic.Int32
	done := make(chan error, 1)
	go func() {
		for range 4 {
			if _, err := l.Enqueue(Event{Body: make([]byte, 3<<20)}); err != nil {
				done <- err
				return
			}
			enqueued.Add(1)
		}
		done <- nil
	}()
	// One batch taken by the stalled commit loop, then two of 3 MiB fit
	// under the 8 MiB bound; the fourth waits.
	require.Eventually(t, func() bool { return enqueued.Load() == 3 }, 10*time.Second, time.Millisecond)
	p.wmu.Lock()
	queued := len(p.pend.buf)
	p.wmu.Unlock()
	require.LessOrEqual(t, queued, maxPendingBytes)
	require.Equal(t, int32(3), enqueued.Load())

	p.mu.Unlock()
	require.NoError(t, <-done)
	require.Len(t, readN(t, l, 0, 0, 4), 4)
}
