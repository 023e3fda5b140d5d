package eventlog

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetention(t *testing.T) {
	// Three events 20 minutes apart, one hour retention; each case moves
	// the clock on from the last event.
	tests := []struct {
		name      string
		advance   time.Duration
		wantBegin int64
	}{
		{"nothing expired", 0, 0},
		{"exactly retention old is kept", 20 * time.Minute, 0},
		{"first expired", 20*time.Minute + time.Millisecond, 1},
		{"two expired", 40*time.Minute + time.Millisecond, 2},
		{"all expired", 60*time.Minute + time.Millisecond, 3},
		{"long idle", 1000 * time.Hour, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Millisecond-aligned, so the boundary case is exact.
			clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
			l := New(Options{Partitions: 1, Retention: time.Hour, Now: clock.Now})
			var last Event
			for i := range 3 {
				if i > 0 {
					clock.Advance(20 * time.Minute)
				}
				last = l.Append(Event{DeviceID: "dev", Body: []byte("x")})
			}
			clock.Advance(tt.advance)

			info, err := l.Info(0)
			require.NoError(t, err)
			require.Equal(t, PartitionInfo{
				ID:                      0,
				BeginningSequenceNumber: tt.wantBegin,
				LastSequenceNumber:      2,
				LastOffset:              last.Offset,
				LastEnqueuedTime:        last.EnqueuedTime,
				Empty:                   tt.wantBegin == 3,
			}, info)

			ctx, cancel := context.WithCancel(t.Context())
			cancel() // Read must not block: either events are there or it fails
			evs, err := l.Read(ctx, 0, 0, 10)
			if tt.wantBegin == 3 {
				require.ErrorIs(t, err, context.Canceled)
				return
			}
			require.NoError(t, err)
			require.Len(t, evs, int(3-tt.wantBegin))
			require.Equal(t, tt.wantBegin, evs[0].SequenceNumber, "expired events skipped")
		})
	}
}

func TestRetentionTrimsOnAppend(t *testing.T) {
	clock := newFakeClock()
	l := New(Options{Partitions: 1, Retention: time.Hour, Now: clock.Now})
	for range 3 {
		l.Append(Event{DeviceID: "dev"})
	}
	clock.Advance(2 * time.Hour)

	got := l.Append(Event{DeviceID: "dev"})
	require.Equal(t, int64(3), got.SequenceNumber, "sequence numbers go on after trimming")
	require.Len(t, l.parts[0].recs, 1, "append trimmed the expired events")

	info, err := l.Info(0)
	require.NoError(t, err)
	require.Equal(t, int64(3), info.BeginningSequenceNumber)
	require.Equal(t, int64(3), info.LastSequenceNumber)
	require.False(t, info.Empty)
}

func TestInfoOfNewPartition(t *testing.T) {
	l := New(Options{})
	for p := range l.PartitionCount() {
		info, err := l.Info(p)
		require.NoError(t, err)
		require.Equal(t, PartitionInfo{
			ID:                      p,
			BeginningSequenceNumber: 0,
			LastSequenceNumber:      -1,
			LastOffset:              "-1",
			LastEnqueuedTime:        time.Unix(0, 0).UTC(),
			Empty:                   true,
		}, info)
	}
	_, err := l.Info(l.PartitionCount())
	require.ErrorIs(t, err, ErrNoPartition)
}

// TestRetentionWindowSlides runs many retention windows through one
// partition: readers still see every retained event in order, and the
// partition reuses its buffer instead of growing.
func TestRetentionWindowSlides(t *testing.T) {
	const window = 50 // events per retention period
	clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	l := New(Options{Partitions: 1, Retention: window * time.Millisecond, Now: clock.Now})
	var peakBuf int
	for i := range 20 * window {
		clock.Advance(time.Millisecond)
		l.Append(Event{DeviceID: "dev", Body: []byte(strconv.Itoa(i))})
		peakBuf = max(peakBuf, cap(l.parts[0].buf))
		if i%7 != 0 {
			continue
		}
		from, err := l.Seek(0, Position{Earliest: true})
		require.NoError(t, err)
		evs, err := l.Read(t.Context(), 0, from, 1000)
		require.NoError(t, err)
		require.Len(t, evs, min(i+1, window+1), "an event exactly Retention old is kept")
		for j, e := range evs {
			require.Equal(t, from+int64(j), e.SequenceNumber)
			require.Equal(t, strconv.Itoa(int(e.SequenceNumber)), string(e.Body))
		}
	}
	require.LessOrEqual(t, peakBuf, 4*window, "buffer grew with the number of appends, not the window")
}
