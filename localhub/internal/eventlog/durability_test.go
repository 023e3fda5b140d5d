package eventlog

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// lastSegment is the path of partition 0's newest segment file.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	files := segFiles(t, dir)
	require.NotEmpty(t, files)
	return files[len(files)-1]
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

func appendToFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(b)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// TestRecoverDamagedTail damages the newest segment the ways a crash or a
// power cut can, then reopens: the log opens, says what it cut, keeps
// every complete append before the damage, and numbers on from there.
func TestRecoverDamagedTail(t *testing.T) {
	tests := []struct {
		name string
		// damage is given the segment path and the offsets (file
		// positions) where the last append's records start and end.
		damage   func(t *testing.T, path string, lastStart, end int64)
		keepLast bool   // whether the last append survives
		warning  string // "" if the damage is invisible (nothing to cut)
	}{
		{"record cut short", func(t *testing.T, path string, lastStart, end int64) {
			require.NoError(t, os.Truncate(path, end-3))
		}, false, "cut short"},
		{"frame header cut short", func(t *testing.T, path string, lastStart, end int64) {
			require.NoError(t, os.Truncate(path, lastStart+5))
		}, false, "cut short"},
		{"batch cut short", func(t *testing.T, path string, lastStart, end int64) {
			// The last append is a batch of three: cut inside its third
			// record; its first two records are complete but go too.
			require.NoError(t, os.Truncate(path, end-10))
		}, false, "cut short"},
		{"bit flipped in the last record", func(t *testing.T, path string, lastStart, end int64) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			require.NoError(t, err)
			b := make([]byte, 1)
			_, err = f.ReadAt(b, end-2)
			require.NoError(t, err)
			b[0] ^= 0x04
			_, err = f.WriteAt(b, end-2)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}, false, "checksum mismatch"},
		{"garbage after the last record", func(t *testing.T, path string, lastStart, end int64) {
			appendToFile(t, path, []byte("\x20\x00\x00\x00garbage that is no record, long enough to parse as one"))
		}, true, "checksum mismatch"},
		{"zeros after the last record", func(t *testing.T, path string, lastStart, end int64) {
			appendToFile(t, path, make([]byte, 4096)) // blocks allocated, never written
		}, true, "length 0"},
		{"a new segment whose header was cut short", func(t *testing.T, path string, lastStart, end int64) {
			next := filepath.Join(filepath.Dir(path), segName(end-headerSize))
			require.NoError(t, os.WriteFile(next, segHeader{baseSeq: 6, baseOff: end - headerSize}.encode()[:20], 0o600))
		}, true, "cut short while it was being created"},
		{"nothing damaged", func(*testing.T, string, int64, int64) {}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			logs := &logRecorder{}
			opts := Options{Dir: dir, Partitions: 1}
			l := openLog(t, opts)
			var kept []Event
			for i := range 3 {
				kept = append(kept, mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("event " + strconv.Itoa(i))}))
			}
			last, err := l.AppendTo(0, Event{Body: []byte("batch 0")}, Event{Body: []byte("batch 1")}, Event{Body: []byte("batch 2 is a little longer")})
			require.NoError(t, err)
			require.NoError(t, l.Close())

			path := lastSegment(t, dir)
			lastStart := headerSize + offsetOf(t, last[0])
			end := fileSize(t, path)
			tt.damage(t, path, lastStart, end)

			opts.Logger = logs.logger()
			l = openLog(t, opts)
			want := kept
			if tt.keepLast {
				want = append(want, last...)
			}
			if tt.warning == "" {
				require.Empty(t, logs.String())
			} else {
				require.Contains(t, logs.String(), "level=WARN")
				require.Contains(t, logs.String(), tt.warning)
			}
			require.Equal(t, want, readN(t, l, 0, 0, len(want)))
			info, err := l.Info(0)
			require.NoError(t, err)
			require.Equal(t, int64(len(want)-1), info.LastSequenceNumber)
			require.Equal(t, want[len(want)-1].Offset, info.LastOffset)

			// Numbering goes on from the last kept event: the dropped
			// append was never acknowledged, so its numbers are free.
			next := mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("after")})
			require.Equal(t, int64(len(want)), next.SequenceNumber)
			wantOff := end - headerSize
			if !tt.keepLast {
				wantOff = offsetOf(t, last[0])
			}
			require.Equal(t, strconv.FormatInt(wantOff, 10), next.Offset)
			require.Equal(t, next, readN(t, l, 0, next.SequenceNumber, 1)[0])

			// The repair is on disk: a second restart finds nothing to cut.
			before := logs.String()
			l = reopen(t, l, opts)
			require.Equal(t, before, logs.String(), "no new warning")
			require.Equal(t, append(want, next), readN(t, l, 0, 0, len(want)+1))
		})
	}
}

// TestRecoverDamagedSealedSegment: damage inside an older segment loses the
// records after it in that segment only; readers skip the gap.
func TestRecoverDamagedSealedSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Partitions: 1, SegmentBytes: 100}
	l := openLog(t, opts)
	var evs []Event
	for i := range 12 {
		evs = append(evs, mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("event " + strconv.Itoa(i))}))
	}
	require.NoError(t, l.Close())
	files := segFiles(t, dir)
	require.Greater(t, len(files), 3)
	// The second segment: cut its last record in half.
	second := files[1]
	require.NoError(t, os.Truncate(second, fileSize(t, second)-4))

	logs := &logRecorder{}
	opts.Logger = logs.logger()
	l = openLog(t, opts)
	require.Contains(t, logs.String(), "cut short")
	var got []Event
	for from := int64(0); len(got) == 0 || got[len(got)-1].SequenceNumber < 11; {
		evs, err := l.Read(t.Context(), 0, from, 100)
		require.NoError(t, err)
		got = append(got, evs...)
		from = evs[len(evs)-1].SequenceNumber + 1
	}
	require.Len(t, got, len(evs)-1, "exactly one event lost")
	lostAt := -1
	for i, e := range got {
		if lostAt < 0 && e.SequenceNumber != int64(i) {
			lostAt = i
		}
		require.Equal(t, evs[e.SequenceNumber], e)
	}
	require.Positive(t, lostAt)
	next := mustAppend(t, l, Event{DeviceID: "dev"})
	require.Equal(t, int64(12), next.SequenceNumber)
}

// TestRecoverUnreadableSegment: a segment whose header is damaged is set
// aside under another name, not deleted, and the rest opens.
func TestRecoverUnreadableSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Partitions: 1, SegmentBytes: 1}
	l := openLog(t, opts)
	var evs []Event
	for i := range 4 {
		evs = append(evs, mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("event " + strconv.Itoa(i))}))
	}
	require.NoError(t, l.Close())
	files := segFiles(t, dir)
	require.Len(t, files, 4)
	f, err := os.OpenFile(files[1], os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("XX"), 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	logs := &logRecorder{}
	opts.Logger = logs.logger()
	l = openLog(t, opts)
	require.Contains(t, logs.String(), "set aside an unreadable segment")
	_, err = os.Stat(files[1] + ".corrupt")
	require.NoError(t, err)
	got, err := l.Read(t.Context(), 0, 0, 10)
	require.NoError(t, err)
	require.Equal(t, evs[:1], got)
	require.Equal(t, []Event{evs[2], evs[3]}, readN(t, l, 0, 1, 2), "a read in the gap starts after it")
}

// TestResumeAfterRestart is what a consumer does: it checkpoints the offset
// or sequence number of the last event it processed, the hub restarts, and
// it asks for the events after its checkpoint.
func TestResumeAfterRestart(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			dir := t.TempDir()
			clock := newFakeClock()
			opts := layout.opts
			opts.Dir, opts.Partitions, opts.Now = dir, 1, clock.Now
			l := openLog(t, opts)
			var evs []Event
			for i := range 20 {
				evs = append(evs, mustAppend(t, l, Event{DeviceID: "dev", Body: []byte(strconv.Itoa(i))}))
				clock.Advance(time.Second)
			}
			checkpoint := evs[12]
			l = reopen(t, l, opts)
			for i := range 5 {
				evs = append(evs, mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("after restart " + strconv.Itoa(i))}))
				clock.Advance(time.Second)
			}
			for i := 1; i < len(evs); i++ {
				require.Equal(t, evs[i-1].SequenceNumber+1, evs[i].SequenceNumber)
				require.Greater(t, offsetOf(t, evs[i]), offsetOf(t, evs[i-1]), "offsets grow across the restart")
			}
			l = reopen(t, l, opts)
			tests := []struct {
				name string
				pos  Position
				want []Event
			}{
				{"offset exclusive", Position{Offset: &checkpoint.Offset}, evs[13:]},
				{"offset inclusive", Position{Offset: &checkpoint.Offset, Inclusive: true}, evs[12:]},
				{"sequence number exclusive", Position{SequenceNumber: &checkpoint.SequenceNumber}, evs[13:]},
				{"sequence number inclusive", Position{SequenceNumber: &checkpoint.SequenceNumber, Inclusive: true}, evs[12:]},
				{"enqueued time exclusive", Position{EnqueuedTime: &checkpoint.EnqueuedTime}, evs[13:]},
				{"enqueued time inclusive", Position{EnqueuedTime: &checkpoint.EnqueuedTime, Inclusive: true}, evs[12:]},
				{"earliest", Position{Earliest: true}, evs},
				{"latest", Position{Latest: true}, nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					from, err := l.Seek(0, tt.pos)
					require.NoError(t, err)
					require.Equal(t, int64(len(evs)-len(tt.want)), from)
					if len(tt.want) > 0 {
						require.Equal(t, tt.want, readN(t, l, 0, from, len(tt.want)))
					}
				})
			}
		})
	}
}

// FuzzRecover opens a log whose only segment holds arbitrary bytes after
// its header: Open must succeed, every event it keeps must read back in
// order, and appending must go on from there.
func FuzzRecover(f *testing.F) {
	f.Fuzz(func(t *testing.T, tail []byte) {
		dir := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(dir, "0"), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, metaFile), []byte(`{"format":1,"partitions":1,"created":"2026-01-02T03:04:05Z"}`), 0o600))
		seg := append(segHeader{prevOff: -1}.encode(), tail...)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "0", segName(0)), seg, 0o600))

		l, err := Open(Options{Dir: dir})
		require.NoError(t, err)
		defer l.Close()
		info, err := l.Info(0)
		require.NoError(t, err)
		require.LessOrEqual(t, info.BeginningSequenceNumber, info.LastSequenceNumber+1)
		var prevOff int64 = -1
		for next := info.BeginningSequenceNumber; next <= info.LastSequenceNumber; {
			evs, err := l.Read(t.Context(), 0, next, 50)
			if errors.Is(err, ErrCorrupt) {
				break // a record with a valid checksum whose fields do not decode
			}
			require.NoError(t, err)
			for _, e := range evs {
				require.Equal(t, next, e.SequenceNumber)
				require.Greater(t, offsetOf(t, e), prevOff)
				prevOff = offsetOf(t, e)
				next++
			}
		}
		e, err := l.Append(Event{DeviceID: "dev", Body: []byte("after")})
		require.NoError(t, err)
		require.Equal(t, info.LastSequenceNumber+1, e.SequenceNumber)
		require.Greater(t, offsetOf(t, e), prevOff)
		require.LessOrEqual(t, offsetOf(t, e), int64(len(tail)))
	})
}
