package eventlog

import (
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewDefaults(t *testing.T) {
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
			require.Equal(t, tt.want, New(tt.opts).PartitionCount())
		})
	}
}

func TestAppendAssignsSequenceOffsetAndTime(t *testing.T) {
	clock := newFakeClock()
	l := New(Options{Partitions: 1, Now: clock.Now})
	wantTime := clock.Now().Truncate(time.Millisecond)

	var wantOffset int64
	for i, n := range []int{0, 0, 5, 1000, 1} {
		in := Event{DeviceID: "dev", Body: make([]byte, n), MessageID: "m" + strconv.Itoa(i)}
		got := l.Append(in)

		require.Equal(t, 0, got.Partition)
		require.Equal(t, int64(i), got.SequenceNumber)
		require.Equal(t, strconv.FormatInt(wantOffset, 10), got.Offset)
		require.Equal(t, wantTime, got.EnqueuedTime)
		require.Equal(t, time.UTC, got.EnqueuedTime.Location())
		require.Equal(t, in.MessageID, got.MessageID, "producer fields kept")
		wantOffset += int64(n) + recordOverhead
	}
}

func TestAppendSequencesPerPartition(t *testing.T) {
	l := New(Options{})
	devices := devicesInDistinctPartitions(t, l)
	for round := range 3 {
		for p, id := range devices {
			got := l.Append(Event{DeviceID: id})
			require.Equal(t, p, got.Partition)
			require.Equal(t, int64(round), got.SequenceNumber, "partition %d", p)
		}
	}
}

func TestAppendEnqueuedTimeNeverGoesBack(t *testing.T) {
	clock := newFakeClock()
	l := New(Options{Partitions: 1, Now: clock.Now})
	first := l.Append(Event{DeviceID: "dev"})
	clock.Advance(-time.Hour)
	second := l.Append(Event{DeviceID: "dev"})
	require.Equal(t, first.EnqueuedTime, second.EnqueuedTime)
}

func TestPartitionForIsFNV1a(t *testing.T) {
	// Pinning the hash pins the device-to-partition mapping across restarts
	// and versions.
	ids := []string{"", "a", "device1", "thermostat-042", "ünïcödé", "x/y%2Fz"}
	for _, partitions := range []int{1, 2, 4, 32} {
		l := New(Options{Partitions: partitions})
		for _, id := range ids {
			h := fnv.New32a()
			_, _ = h.Write([]byte(id))
			want := int(h.Sum32() % uint32(partitions))
			require.Equal(t, want, l.PartitionFor(id), "PartitionFor(%q) with %d partitions", id, partitions)
			require.Equal(t, want, New(Options{Partitions: partitions}).PartitionFor(id), "another log, same mapping")
		}
	}
}

func TestPartitionForSpreadsDevices(t *testing.T) {
	l := New(Options{Partitions: 4})
	counts := make([]int, l.PartitionCount())
	for i := range 1000 {
		counts[l.PartitionFor("device-"+strconv.Itoa(i))]++
	}
	for p, n := range counts {
		require.Greater(t, n, 150, "partition %d got %d of 1000 devices", p, n)
	}
}
