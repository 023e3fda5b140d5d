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
	l, _, evs := newFixture(t, time.Hour)
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
			require.Equal(t, tt.want, got)
		})
	}

	_, err := l.Read(t.Context(), 0, 0, 0)
	require.Error(t, err, "max 0")
	_, err = l.Read(t.Context(), 7, 0, 1)
	require.ErrorIs(t, err, ErrNoPartition)

}

func TestReadBlocksUntilAppend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Options{Partitions: 1})
		// Several readers wait on the same partition; one append wakes all.
		var reads []<-chan readResult
		for range 3 {
			reads = append(reads, startRead(t.Context(), l, 0, 0, 10))
		}
		synctest.Wait()
		for _, r := range reads {
			requireBlocked(t, r)
		}

		want := l.Append(Event{DeviceID: "dev", Body: []byte("hello")})
		for _, ch := range reads {
			r := <-ch
			require.NoError(t, r.err)
			require.Equal(t, []Event{want}, r.evs)
		}
	})
}

func TestReadAheadWaitsForItsSequenceNumber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := New(Options{Partitions: 1})
		read := startRead(t.Context(), l, 0, 2, 10)
		for range 2 {
			l.Append(Event{DeviceID: "dev"})
			synctest.Wait()
			requireBlocked(t, read)
		}
		want := l.Append(Event{DeviceID: "dev"})
		r := <-read
		require.NoError(t, r.err)
		require.Equal(t, []Event{want}, r.evs)
	})
}

func TestReadFromLatestSeesOnlyNewEvents(t *testing.T) {
	l, _, _ := newFixture(t, 0)
	from, err := l.Seek(0, Position{Latest: true})
	require.NoError(t, err)
	want := l.Append(Event{DeviceID: "dev", Body: []byte("new")})

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
				l := New(Options{Partitions: 1})
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
		l := New(Options{Partitions: 3})
		var reads []<-chan readResult
		for p := range l.PartitionCount() {
			reads = append(reads, startRead(t.Context(), l, p, 0, 1))
		}
		synctest.Wait()

		l.Close()
		for _, ch := range reads {
			require.ErrorIs(t, (<-ch).err, ErrClosed)
		}

		l.Close() // idempotent
		l.Append(Event{DeviceID: "dev"})
		_, err := l.Read(t.Context(), 0, 0, 1)
		require.ErrorIs(t, err, ErrClosed, "Read after Close")
		_, err = l.Seek(0, Position{Earliest: true})
		require.NoError(t, err, "Seek after Close")
	})
}

// TestConcurrentReaders has writers on every partition race many
// independent readers; each reader must see its partition's events exactly
// once, in sequence order, and each device's events in the order appended.
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
	l := New(Options{Partitions: partitions})
	wantPerPartition := make([]int, partitions)
	for d := range devices {
		wantPerPartition[l.PartitionFor(devicePrefix+strconv.Itoa(d))] += perDevice
	}

	ctx, cancel := context.WithTimeout(t.Context(), safetyNetWindow)
	defer cancel()
	errs := make(chan error, partitions*readersPerPart)
	for p := range partitions {
		for range readersPerPart {
			go func() { errs <- readAll(ctx, l, p, wantPerPartition[p], readBatch) }()
		}
	}
	for d := range devices {
		go func() {
			for i := range perDevice {
				l.Append(Event{DeviceID: devicePrefix + strconv.Itoa(d), Body: []byte(strconv.Itoa(i))})
			}
		}()
	}
	for range partitions * readersPerPart {
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
