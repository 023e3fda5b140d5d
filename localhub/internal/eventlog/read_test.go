package eventlog

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

type readResult struct {
	evs []Event
	err error
}

// startRead runs Read in a goroutine and delivers its result.
func startRead(ctx context.Context, l *Log, partition int, from int64, max int) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		evs, err := l.Read(ctx, partition, from, max)
		ch <- readResult{evs, err}
	}()
	return ch
}

// requireBlocked fails if the read has returned; inside a synctest bubble,
// after synctest.Wait, that means Read is waiting for an append.
func requireBlocked(t *testing.T, ch <-chan readResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("Read returned early: %d events, err %v", len(r.evs), r.err)
	default:
	}
}

func TestRead(t *testing.T) {
	for _, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			l, _, evs := newFixtureWith(t, layout.opts, layout.reopen)
			tests := []struct {
				name string
				from int64
				max  int
				want []Event
			}{
				{"all", 0, 100, evs},
				{"max", 0, 2, evs[:2]},
				{"from middle", 3, 100, evs[3:]},
				{"from before beginning", -5, 1, evs[:1]},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := l.Read(t.Context(), 0, tt.from, tt.max)
					require.NoError(t, err)
					// A read may stop at a segment's end: read on.
					if len(got) < len(tt.want) {
						got = append(got, readN(t, l, 0, tt.from+int64(len(got)), len(tt.want)-len(got))...)
					}
					require.Equal(t, tt.want, got)
				})
			}

			_, err := l.Read(t.Context(), 0, 0, 0)
			require.Error(t, err, "max 0")
			_, err = l.Read(t.Context(), 7, 0, 1)
			require.ErrorIs(t, err, ErrNoPartition)
		})
	}
}

// TestReadEveryField: an event with every field set reads back the same
// from memory and from disk.
func TestReadEveryField(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, Partitions: 1})
	in := Event{
		DeviceID: "dev", ModuleID: "mod", Body: []byte(`{"t":21.5}`),
		MessageID: "m-1", CorrelationID: "c-1", ContentType: "application/json", ContentEncoding: "utf-8",
		UserID:          []byte("alice"),
		Properties:      map[string]string{"alert": "true", "": "empty key"},
		TypedProperties: map[string]any{"count": int32(3), "ratio": 0.5},
		Annotations: map[string]any{
			"iothub-connection-device-id": "dev",
			"iothub-enqueuedtime":         time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC),
			"x-custom":                    Symbol("sym"),
		},
		PartitionKey: "pk",
	}
	want := mustAppend(t, l, in)
	require.Equal(t, []Event{want}, readN(t, l, 0, 0, 1), "from memory")
	l = reopen(t, l, Options{Dir: dir})
	require.Equal(t, []Event{want}, readN(t, l, 0, 0, 1), "from disk")
}

// TestReadAcrossSegments reads a log of many small segments from disk,
// in batches of every size, with and without the cache.
func TestReadAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Partitions: 1, SegmentBytes: 4 << 10, CacheBytes: 1}
	l := openLog(t, opts)
	var want []Event
	for i := 0; i < 300; i += 3 {
		// Uneven sizes, some above the index interval, so index entries
		// and segment ends fall anywhere.
		var batch []Event
		for j := i; j < i+3; j++ {
			n := (j * 7919) % 3000
			if j%50 == 0 {
				n = indexInterval + 100
			}
			batch = append(batch, Event{DeviceID: "dev", Body: []byte(strconv.Itoa(j) + string(make([]byte, n)))})
		}
		evs, err := l.AppendTo(0, batch...)
		require.NoError(t, err)
		want = append(want, evs...)
	}
	require.Greater(t, len(l.parts[0].segs), 10, "the test needs many segments")
	check := func(t *testing.T, l *Log) {
		for _, batch := range []int{1, 7, 64, 1000} {
			var got []Event
			for len(got) < len(want) {
				evs, err := l.Read(t.Context(), 0, int64(len(got)), batch)
				require.NoError(t, err)
				require.LessOrEqual(t, len(evs), batch)
				got = append(got, evs...)
			}
			require.Equal(t, want, got, "batch %d", batch)
		}
		for _, from := range []int64{1, 49, 50, 51, 150, 299} {
			got := readN(t, l, 0, from, len(want)-int(from))
			require.Equal(t, want[from:], got, "from %d", from)
		}
	}
	t.Run("running", func(t *testing.T) { check(t, l) })
	l = reopen(t, l, opts)
	t.Run("reopened", func(t *testing.T) { check(t, l) })
}

func TestReadBlocksUntilAppend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := openLog(t, Options{Partitions: 1})
		// Several readers wait on the same partition; one append wakes all.
		var reads []<-chan readResult
		for range 3 {
			reads = append(reads, startRead(t.Context(), l, 0, 0, 10))
		}
		synctest.Wait()
		for _, r := range reads {
			requireBlocked(t, r)
		}

		want := mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("hello")})
		for _, ch := range reads {
			r := <-ch
			require.NoError(t, r.err)
			require.Equal(t, []Event{want}, r.evs)
		}
	})
}

func TestReadAheadWaitsForItsSequenceNumber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := openLog(t, Options{Partitions: 1})
		read := startRead(t.Context(), l, 0, 2, 10)
		for range 2 {
			mustAppend(t, l, Event{DeviceID: "dev"})
			synctest.Wait()
			requireBlocked(t, read)
		}
		want := mustAppend(t, l, Event{DeviceID: "dev"})
		r := <-read
		require.NoError(t, r.err)
		require.Equal(t, []Event{want}, r.evs)
	})
}

func TestReadFromLatestSeesOnlyNewEvents(t *testing.T) {
	l, _, _ := newFixture(t, 0)
	from, err := l.Seek(0, Position{Latest: true})
	require.NoError(t, err)
	want := mustAppend(t, l, Event{DeviceID: "dev", Body: []byte("new")})

	got, err := l.Read(t.Context(), 0, from, 10)
	require.NoError(t, err)
	require.Equal(t, []Event{want}, got)
}

func TestReadEndsWithContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		want error
	}{
		{"cancel", context.WithCancel, context.Canceled},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, time.Minute)
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := openLog(t, Options{Partitions: 1})
				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				read := startRead(ctx, l, 0, 0, 1)
				synctest.Wait()
				if tt.want == context.Canceled {
					requireBlocked(t, read)
					cancel()
				} // else the fake clock reaches the deadline once all block

				r := <-read
				require.ErrorIs(t, r.err, tt.want)
				require.Nil(t, r.evs)
			})
		})
	}
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := openLog(t, Options{Partitions: 3})
		var reads []<-chan readResult
		for p := range l.PartitionCount() {
			reads = append(reads, startRead(t.Context(), l, p, 0, 1))
		}
		synctest.Wait()

		require.NoError(t, l.Close())
		for _, ch := range reads {
			require.ErrorIs(t, (<-ch).err, ErrClosed)
		}

		require.NoError(t, l.Close(), "idempotent")
		_, err := l.Read(t.Context(), 0, 0, 1)
		require.ErrorIs(t, err, ErrClosed, "Read after Close")
		_, err = l.Seek(0, Position{Earliest: true})
		require.ErrorIs(t, err, ErrClosed, "Seek after Close")
		_, err = l.Info(0)
		require.ErrorIs(t, err, ErrClosed, "Info after Close")
	})
}

// TestConcurrentReaders has writers on every partition race many
// independent readers; each reader must see its partition's events exactly
// once, in sequence order, and each device's events in the order appended.
// The cache is small, so readers fall behind it and read from disk too.
func TestConcurrentReaders(t *testing.T) {
	const (
		partitions      = 3
		devices         = 6
		perDevice       = 300
		readersPerPart  = 4
		readBatch       = 7
		devicePrefix    = "dev-"
		safetyNetWindow = 30 * time.Second // only if the log deadlocks
	)
	l := openLog(t, Options{Partitions: partitions, SegmentBytes: 16 << 10, CacheBytes: 8 << 10})
	wantPerPartition := make([]int, partitions)
	for d := range devices {
		wantPerPartition[l.PartitionFor(devicePrefix+strconv.Itoa(d))] += perDevice
	}

	ctx, cancel := context.WithTimeout(t.Context(), safetyNetWindow)
	defer cancel()
	errs := make(chan error, partitions*readersPerPart+devices)
	for p := range partitions {
		for range readersPerPart {
			go func() { errs <- readAll(ctx, l, p, wantPerPartition[p], readBatch) }()
		}
	}
	for d := range devices {
		go func() {
			for i := range perDevice {
				if _, err := l.Append(Event{DeviceID: devicePrefix + strconv.Itoa(d), Body: []byte(strconv.Itoa(i))}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range partitions*readersPerPart + devices {
		require.NoError(t, <-errs)
	}
}

func readAll(ctx context.Context, l *Log, partition, want, batch int) error {
	next := int64(0)
	lastBody := map[string]int{}
	for next < int64(want) {
		evs, err := l.Read(ctx, partition, next, batch)
		if err != nil {
			return fmt.Errorf("partition %d at %d: %w", partition, next, err)
		}
		for _, e := range evs {
			if e.SequenceNumber != next || e.Partition != partition {
				return fmt.Errorf("partition %d: got event %d of partition %d, want %d", partition, e.SequenceNumber, e.Partition, next)
			}
			n, _ := strconv.Atoi(string(e.Body))
			if prev, seen := lastBody[e.DeviceID]; (seen && n != prev+1) || (!seen && n != 0) {
				return fmt.Errorf("device %s: event %d after %d", e.DeviceID, n, prev)
			}
			lastBody[e.DeviceID] = n
			next++
		}
	}
	return nil
}
