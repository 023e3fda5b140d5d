package eventlog

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkAppend measures the telemetry hot path. The clock moves 1 ms per
// event with 1 s retention, so the log stays small and trimming is part of
// what is measured.
func BenchmarkAppend(b *testing.B) {
	var ticks int64
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(Options{Retention: time.Second, Now: func() time.Time {
		ticks++ // b.Loop runs on one goroutine
		return start.Add(time.Duration(ticks) * time.Millisecond)
	}})
	e := Event{
		DeviceID:    "thermostat-042",
		Body:        make([]byte, 256),
		ContentType: "application/json",
		Properties:  map[string]string{"alert": "false"},
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Append(e)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFanOut appends batches to one partition and waits until every
// reader has read each batch, so it measures delivery to N independent
// readers, wake-ups included.
func BenchmarkFanOut(b *testing.B) {
	const batch = 100
	for _, readers := range []int{1, 8, 64} {
		b.Run("readers="+strconv.Itoa(readers), func(b *testing.B) {
			l := New(Options{Partitions: 1})
			ctx, cancel := context.WithCancel(b.Context())
			defer cancel()
			progress := make([]chan int64, readers)
			for i := range progress {
				progress[i] = make(chan int64)
				go fanOutReader(ctx, l, progress[i])
			}
			e := Event{DeviceID: "dev", Body: make([]byte, 256)}
			batches := 0
			for b.Loop() {
				for range batch {
					l.Append(e)
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
