package eventlog

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Benchmarks report events/s next to a floor measured in the same run on
// the same disk: what the raw file operations the log cannot avoid (write
// and fsync the same bytes; read the same bytes) allow. %floor is the log's
// rate as a share of the floor's.

// benchEvent is a device-to-cloud message as the MQTT gateway stores it,
// with a 1 KB body.
func benchEvent(device string) Event {
	return Event{
		DeviceID:    device,
		Body:        make([]byte, 1024),
		ContentType: "application/json",
		Properties:  map[string]string{"alert": "false"},
		Annotations: map[string]any{
			"iothub-connection-device-id":          device,
			"iothub-connection-auth-generation-id": "638000000000000000",
			"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub"}`,
			"iothub-message-source":                SourceTelemetry,
		},
	}
}

func benchRecordSize(b *testing.B) int {
	e := benchEvent("device-0000")
	rec, err := appendEventFields(appendRecordHeader(nil), &e)
	require.NoError(b, err)
	return len(rec)
}

// rawWriteFsync is the floor for appends: rounds of one write of
// bytesPerRound followed by one fsync, as an ideal group commit would do.
// It returns rounds per second.
func rawWriteFsync(b *testing.B, bytesPerRound, rounds int) float64 {
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	require.NoError(b, err)
	defer f.Close()
	buf := make([]byte, bytesPerRound)
	start := time.Now()
	for range rounds {
		_, err := f.Write(buf)
		require.NoError(b, err)
		require.NoError(b, f.Sync())
	}
	return float64(rounds) / time.Since(start).Seconds()
}

// BenchmarkAppend has N devices each publish telemetry and wait for it to
// be stored (an MQTT QoS 1 PUBACK) before publishing again, into one
// partition: each iteration is one stored event. The floor writes and
// fsyncs N records' bytes per round, the best any group commit can do,
// measured before and after the run (the disk is shared and noisy).
func BenchmarkAppend(b *testing.B) {
	size := benchRecordSize(b)
	for _, appenders := range []int{1, 16, 128} {
		b.Run("appenders="+strconv.Itoa(appenders), func(b *testing.B) {
			before := rawWriteFsync(b, appenders*size, 300)

			l := openLog(b, Options{Partitions: 1})
			acks := make(chan struct{}, appenders)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := range appenders {
				e := benchEvent("device-" + strconv.Itoa(i))
				wg.Go(func() {
					for {
						if _, err := l.Append(e); err != nil {
							b.Error(err)
							return
						}
						select {
						case acks <- struct{}{}:
						case <-stop:
							return
						}
					}
				})
			}
			for b.Loop() {
				<-acks
			}
			b.StopTimer()
			close(stop)
			wg.Wait()

			floor := (before + rawWriteFsync(b, appenders*size, 300)) / 2 * float64(appenders)
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)/float64(l.parts[0].fsyncs.Load()), "events/fsync")
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(floor, "floor-events/s")
			b.ReportMetric(100*rate/floor, "%floor")
		})
	}
}

// BenchmarkAppendBatch stores Event Hubs producer batches of 100 events
// with AppendTo: one write and one fsync per batch. Each iteration also
// writes and fsyncs the same bytes to a plain file, timed apart: the floor,
// under the same disk conditions.
func BenchmarkAppendBatch(b *testing.B) {
	const batch = 100
	l := openLog(b, Options{Partitions: 1})
	evs := make([]Event, batch)
	for i := range evs {
		evs[i] = benchEvent("device-0000")
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
	require.NoError(b, err)
	defer f.Close()
	raw := make([]byte, batch*benchRecordSize(b))
	var inLog, inFloor time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := l.AppendTo(0, evs...); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if _, err := f.Write(raw); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		inLog, inFloor = inLog+mid.Sub(start), inFloor+time.Since(mid)
	}
	rate := float64(b.N*batch) / inLog.Seconds()
	floor := float64(b.N*batch) / inFloor.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(floor, "floor-events/s")
	b.ReportMetric(100*rate/floor, "%floor")
}

// fillPartition appends n benchmark events to partition 0 in batches.
func fillPartition(b *testing.B, l *Log, n int) {
	evs := make([]Event, 500)
	for i := range evs {
		evs[i] = benchEvent("device-" + strconv.Itoa(i%50))
	}
	for n > 0 {
		k := min(n, len(evs))
		_, err := l.AppendTo(0, evs[:k]...)
		require.NoError(b, err)
		n -= k
	}
}

// rawRead is the floor for reads: the partition's segment files read in
// 256 KiB chunks, in bytes per second.
func rawRead(b *testing.B, dir string) float64 {
	files, err := filepath.Glob(filepath.Join(dir, "0", "*"+segSuffix))
	require.NoError(b, err)
	buf := make([]byte, 256<<10)
	var total int64
	start := time.Now()
	for range 3 {
		for _, name := range files {
			f, err := os.Open(name)
			require.NoError(b, err)
			for off := int64(0); ; {
				n, err := f.ReadAt(buf, off)
				off += int64(n)
				total += int64(n)
				if err != nil {
					break
				}
			}
			f.Close()
		}
	}
	return float64(total) / time.Since(start).Seconds()
}

// BenchmarkReadSequential is a consumer catching up: it reads a partition
// of 1 KB events from the start, 300 at a time (an Event Hubs consumer's
// default prefetch), decoding each from disk (the files are in the page
// cache, as recently written ones are). The floor reads the same files.
func BenchmarkReadSequential(b *testing.B) {
	const events = 50_000
	dir := b.TempDir()
	opts := Options{Dir: dir, Partitions: 1, CacheBytes: 1}
	l := openLog(b, opts)
	fillPartition(b, l, events)
	l = reopen(b, l, opts) // nothing cached
	floor := rawRead(b, dir) / float64(benchRecordSize(b))

	ctx := context.Background()
	var next int64
	read := 0
	for b.Loop() {
		evs, err := l.Read(ctx, 0, next, 300)
		if err != nil {
			b.Fatal(err)
		}
		read += len(evs)
		next = evs[len(evs)-1].SequenceNumber + 1
		if next == events {
			next = 0
		}
	}
	rate := float64(read) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(floor, "floor-events/s")
	b.ReportMetric(100*rate/floor, "%floor")
}

// BenchmarkOpen measures start-up: Open checks every record of the retained
// log. The floor reads the same files.
func BenchmarkOpen(b *testing.B) {
	const events = 50_000
	dir := b.TempDir()
	opts := Options{Dir: dir, Partitions: 1}
	l := openLog(b, opts)
	fillPartition(b, l, events)
	require.NoError(b, l.Close())
	floor := rawRead(b, dir)
	var bytes int64
	for b.Loop() {
		l, err := Open(opts)
		if err != nil {
			b.Fatal(err)
		}
		bytes = l.parts[0].active.endOff
		require.NoError(b, l.Close())
	}
	rate := float64(bytes) * float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate/1e6, "MB/s")
	b.ReportMetric(floor/1e6, "floor-MB/s")
	b.ReportMetric(100*rate/floor, "%floor")
}

// BenchmarkFanOut has N consumers tail one partition while batches of 1,000
// events are appended; each iteration ends when every reader has read the
// batch, so it measures delivery from the cache to N readers, wake-ups
// included.
func BenchmarkFanOut(b *testing.B) {
	const batch = 1000
	for _, readers := range []int{1, 10, 64} {
		b.Run("readers="+strconv.Itoa(readers), func(b *testing.B) {
			l := openLog(b, Options{Partitions: 1, CacheBytes: 16 << 20})
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			progress := make([]chan int64, readers)
			for i := range progress {
				progress[i] = make(chan int64)
				go fanOutReader(ctx, l, progress[i])
			}
			evs := make([]Event, batch)
			for i := range evs {
				evs[i] = benchEvent("device-0000")
			}
			batches := 0
			for b.Loop() {
				if _, err := l.AppendTo(0, evs...); err != nil {
					b.Fatal(err)
				}
				batches++
				for _, p := range progress {
					for next := <-p; next < int64(batches*batch); next = <-p {
					}
				}
			}
			b.ReportMetric(float64(batches*batch*readers)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// fanOutReader reads from the start, reporting the next sequence number it
// wants after every Read.
func fanOutReader(ctx context.Context, l *Log, progress chan<- int64) {
	var next int64
	for {
		evs, err := l.Read(ctx, 0, next, 300)
		if err != nil {
			return
		}
		next = evs[len(evs)-1].SequenceNumber + 1
		select {
		case progress <- next:
		case <-ctx.Done():
			return
		}
	}
}
