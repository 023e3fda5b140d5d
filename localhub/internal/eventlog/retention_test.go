package eventlog

import (
	"context"
	"os"
	"path/filepath"
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
	for _, layout := range layouts {
		for _, tt := range tests {
			t.Run(layout.name+"/"+tt.name, func(t *testing.T) {
				// Millisecond-aligned, so the boundary case is exact.
				clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
				opts := layout.opts
				opts.Dir, opts.Partitions, opts.Retention, opts.Now = t.TempDir(), 1, time.Hour, clock.Now
				l := openLog(t, opts)
				var last Event
				for i := range 3 {
					if i > 0 {
						clock.Advance(20 * time.Minute)
					}
					last = mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("x")})
				}
				if layout.reopen {
					l = reopen(t, l, opts)
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
				require.Equal(t, tt.wantBegin, evs[0].SequenceNumber, "expired events skipped")
			})
		}
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "0", "*"+segSuffix))
	require.NoError(t, err)
	return m
}

// TestRetentionDeletesSegments runs many retention windows through one
// partition: readers see every retained event in order, files of expired
// events go, and what stays on disk is bounded by the window, not by the
// number of appends.
func TestRetentionDeletesSegments(t *testing.T) {
	const window = 20 // events per retention period
	dir := t.TempDir()
	clock := &fakeClock{now: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	l := openLog(t, Options{Dir: dir, Partitions: 1, Retention: window * time.Millisecond, Now: clock.Now, SegmentBytes: 512, CacheBytes: 2 << 10})
	peakFiles := 0
	for i := range 12 * window {
		clock.Advance(time.Millisecond)
		mustAppend(t, l, Event{DeviceID: "dev", Body: []byte(strconv.Itoa(i))})
		peakFiles = max(peakFiles, len(segFiles(t, dir)))
		if i%7 != 0 {
			continue
		}
		from, err := l.Seek(0, Position{Earliest: true})
		require.NoError(t, err)
		evs := readN(t, l, 0, from, int(int64(i+1)-from))
		require.Len(t, evs, min(i+1, window+1), "an event exactly Retention old is kept")
		for j, e := range evs {
			require.Equal(t, from+int64(j), e.SequenceNumber)
			require.Equal(t, strconv.Itoa(int(e.SequenceNumber)), string(e.Body))
		}
	}
	require.Less(t, peakFiles, 20, "segments of expired events were deleted")
}

// TestRetentionAllExpiredSurvivesRestart: with every event expired and its
// files deleted, a restarted log still numbers on from where it was.
func TestRetentionAllExpiredSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	opts := Options{Dir: dir, Partitions: 1, Retention: time.Hour, Now: clock.Now, SegmentBytes: 1}
	l := openLog(t, opts)
	var last Event
	for range 5 {
		last = mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("old")})
	}
	clock.Advance(2 * time.Hour)
	info, err := l.Info(0)
	require.NoError(t, err)
	require.True(t, info.Empty)
	require.Len(t, segFiles(t, dir), 1, "only the newest segment stays: it carries the position")

	l = reopen(t, l, opts)
	info, err = l.Info(0)
	require.NoError(t, err)
	require.Equal(t, PartitionInfo{BeginningSequenceNumber: 5, LastSequenceNumber: 4, LastOffset: last.Offset, LastEnqueuedTime: last.EnqueuedTime, Empty: true}, info)

	next := mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("new")})
	require.Equal(t, int64(5), next.SequenceNumber)
	require.Greater(t, offsetOf(t, next), offsetOf(t, last))
	require.Equal(t, []Event{next}, readN(t, l, 0, 0, 1))

	// And once more after the newest segment itself was rolled over and
	// deleted.
	clock.Advance(2 * time.Hour)
	next2 := mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("newer")})
	_, err = l.Info(0)
	require.NoError(t, err)
	l = reopen(t, l, opts)
	info, err = l.Info(0)
	require.NoError(t, err)
	require.Equal(t, int64(6), info.LastSequenceNumber)
	require.Equal(t, next2.Offset, info.LastOffset)
	require.Equal(t, int64(6), info.BeginningSequenceNumber)
}

func TestInfoOfNewPartition(t *testing.T) {
	l := openLog(t, Options{})
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

func TestSegmentFilesAreNamedByOffset(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, Partitions: 1, SegmentBytes: 1})
	var evs []Event
	for range 3 {
		evs = append(evs, mustAppend(t, l, Event{Body: []byte("x")}))
	}
	var want []string
	for _, e := range evs {
		want = append(want, filepath.Join(dir, "0", segName(offsetOf(t, e))))
	}
	require.Equal(t, want, segFiles(t, dir))
	_, err := os.Stat(filepath.Join(dir, metaFile))
	require.NoError(t, err)
}
