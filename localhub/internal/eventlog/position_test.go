package eventlog

import (
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSeek(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			l, _, evs := newFixtureWith(t, layout.opts, layout.reopen)
			testSeek(t, l, evs)
		})
	}
}

func testSeek(t *testing.T, l *Log, evs []Event) {
	end := int64(len(evs))
	between := strconv.FormatInt(offsetOf(t, evs[2])+1, 10)
	t2 := evs[2].EnqueuedTime

	tests := []struct {
		name string
		pos  Position
		want int64
	}{
		{"earliest", Position{Earliest: true}, 0},
		{"earliest before latest", Position{Earliest: true, Latest: true}, 0},
		{"latest", Position{Latest: true}, end},
		{"latest inclusive", Position{Latest: true, Inclusive: true}, end},

		{"offset -1", Position{Offset: new(OffsetEarliest)}, 0},
		{"offset -1 inclusive", Position{Offset: new(OffsetEarliest), Inclusive: true}, 0},
		{"offset @latest", Position{Offset: new(OffsetLatest)}, end},
		{"offset exclusive", Position{Offset: new(evs[2].Offset)}, 3},
		{"offset inclusive", Position{Offset: new(evs[2].Offset), Inclusive: true}, 2},
		{"first offset exclusive", Position{Offset: new(evs[0].Offset)}, 1},
		{"first offset inclusive", Position{Offset: new(evs[0].Offset), Inclusive: true}, 0},
		{"last offset exclusive", Position{Offset: new(evs[4].Offset)}, end},
		{"offset between events", Position{Offset: new(between)}, 3},
		{"offset between events inclusive", Position{Offset: new(between), Inclusive: true}, 3},
		{"offset past end", Position{Offset: new("99999999")}, end},
		{"offset before sequence", Position{Offset: new(evs[1].Offset), SequenceNumber: new(int64(4)), Inclusive: true}, 1},

		{"sequence exclusive", Position{SequenceNumber: new(int64(2))}, 3},
		{"sequence inclusive", Position{SequenceNumber: new(int64(2)), Inclusive: true}, 2},
		{"sequence -1", Position{SequenceNumber: new(int64(-1))}, 0},
		{"sequence before beginning", Position{SequenceNumber: new(int64(-10)), Inclusive: true}, 0},
		{"sequence last exclusive", Position{SequenceNumber: new(int64(4))}, end},
		{"sequence past end", Position{SequenceNumber: new(int64(100)), Inclusive: true}, end},
		{"sequence max", Position{SequenceNumber: new(int64(math.MaxInt64))}, end},
		{"sequence before time", Position{SequenceNumber: new(int64(0)), EnqueuedTime: new(t2), Inclusive: true}, 0},

		{"time exclusive", Position{EnqueuedTime: new(t2)}, 3},
		{"time inclusive", Position{EnqueuedTime: new(t2), Inclusive: true}, 2},
		{"time between events", Position{EnqueuedTime: new(t2.Add(500 * time.Millisecond))}, 3},
		{"time between events inclusive", Position{EnqueuedTime: new(t2.Add(500 * time.Millisecond)), Inclusive: true}, 3},
		{"time before first", Position{EnqueuedTime: new(evs[0].EnqueuedTime.Add(-time.Hour))}, 0},
		{"time after last", Position{EnqueuedTime: new(evs[4].EnqueuedTime.Add(time.Hour))}, end},
		{"time in another zone", Position{EnqueuedTime: new(t2.In(time.FixedZone("X", 3600))), Inclusive: true}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Seek(0, tt.pos)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSeekErrors(t *testing.T) {
	l, _, _ := newFixture(t, 0)
	tests := []struct {
		name      string
		partition int
		pos       Position
		want      error
	}{
		{"no field set", 0, Position{Inclusive: true}, ErrInvalidPosition},
		{"offset not a number", 0, Position{Offset: new("abc")}, ErrInvalidPosition},
		{"empty offset", 0, Position{Offset: new("")}, ErrInvalidPosition},
		{"offset overflows", 0, Position{Offset: new("99999999999999999999")}, ErrInvalidPosition},
		{"partition too high", 1, Position{Earliest: true}, ErrNoPartition},
		{"negative partition", -1, Position{Earliest: true}, ErrNoPartition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Seek(tt.partition, tt.pos)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestSeekBeforeRetainedEvents(t *testing.T) {
	l, clock, evs := newFixtureWith(t, Options{Retention: time.Hour, SegmentBytes: 1}, false)
	// The fixture's clock is one second past the last event (seconds 0..4):
	// move it to just over an hour after event 2, expiring events 0..2.
	clock.Advance(time.Hour - 3*time.Second + time.Millisecond)

	tests := []struct {
		name string
		pos  Position
	}{
		{"earliest", Position{Earliest: true}},
		{"offset -1", Position{Offset: new(OffsetEarliest)}},
		{"offset of expired event", Position{Offset: new(evs[0].Offset)}},
		{"offset of expired event inclusive", Position{Offset: new(evs[1].Offset), Inclusive: true}},
		{"sequence of expired event", Position{SequenceNumber: new(int64(0)), Inclusive: true}},
		{"time of expired event", Position{EnqueuedTime: new(evs[0].EnqueuedTime)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Seek(0, tt.pos)
			require.NoError(t, err)
			require.Equal(t, int64(3), got)
		})
	}
}

// FuzzSeekOffset checks offset parsing and resolution against a linear
// scan: the position is the first event past the offset, or at it when
// Inclusive.
func FuzzSeekOffset(f *testing.F) {
	l, _, evs := newFixtureWith(f, Options{SegmentBytes: 150}, true)
	offs := make([]int64, len(evs))
	for i, e := range evs {
		offs[i] = offsetOf(f, e)
	}
	seeds := []string{"-1", "@latest", "abc", "", " 64", "-9223372036854775808", "99999999999999999999"}
	for _, o := range offs {
		seeds = append(seeds, strconv.FormatInt(o, 10), strconv.FormatInt(o+1, 10), "+"+strconv.FormatInt(o, 10))
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, inclusive bool) {
		got, err := l.Seek(0, Position{Offset: &s, Inclusive: inclusive})
		if s == OffsetLatest {
			require.NoError(t, err)
			require.Equal(t, int64(len(evs)), got)
			return
		}
		off, parseErr := strconv.ParseInt(s, 10, 64)
		if parseErr != nil {
			require.ErrorIs(t, err, ErrInvalidPosition)
			return
		}
		require.NoError(t, err)
		want := int64(len(offs))
		for i, o := range offs {
			if o > off || (inclusive && o == off) {
				want = int64(i)
				break
			}
		}
		require.Equal(t, want, got, "Seek(offset %q, inclusive %v)", s, inclusive)
	})
}
