//go:build unix

package handlers_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
)

// BenchmarkTwinChangeProcessor measures the processor end to end (read the
// host's envelope, decode it, classify, remember, log through slog, encode
// the response) on a realistic batch of 10,000 events, with each decoder,
// against a floor measured in the same run: the same batch decoded with
// plain encoding/json (decoding only).
//
// Times are the process's CPU time (getrusage) around each step, garbage
// collection included, each step starting from a collected heap: on a
// machine shared with other work, wall time measures the neighbours.
// With -cpu 1 (GOMAXPROCS=1) that is the time one core spends.
//
//   - events/s: events per CPU second through the whole processor;
//   - x-floor: floor time / processor time; above 1, the whole processor
//     costs less than encoding/json's decoding alone;
//   - alloc-per-body-byte: bytes the processor allocates per byte of
//     invocation body (reading the body is one).
//
// Run: go test ./handlers -run '^$' -bench BenchmarkTwinChangeProcessor -cpu 1
// (figures in docs/performance.md).
func BenchmarkTwinChangeProcessor(b *testing.B) {
	client, err := handlers.NewHubClient(handlers.Config{ConnectionString: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0", Endpoint: "https://127.0.0.1:1"}, nil)
	require.NoError(b, err)
	const size = 10_000
	body := hostBatch(b, 0, realisticEvents(size))
	for _, dec := range handlers.DecoderNames {
		b.Run("decoder="+dec, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			var proc, floor time.Duration
			var procAlloc uint64
			var m0, m1 runtime.MemStats
			for b.Loop() {
				// A fresh server per batch: the processor's memory of
				// devices would otherwise make every batch after the
				// first log nothing.
				srv := handlers.NewServerWithDecoder(handlers.Deps{Hub: client, Logger: handlers.NewLogger(io.Discard, io.Discard, nil)}, dec)
				req := httptest.NewRequest(http.MethodPost, "/TwinChangeProcessor", bytes.NewReader(body))
				rec := httptest.NewRecorder()
				runtime.GC()
				runtime.ReadMemStats(&m0)
				start := cpuTime(b)
				srv.ServeHTTP(rec, req)
				proc += cpuTime(b) - start
				runtime.ReadMemStats(&m1)
				procAlloc += m1.TotalAlloc - m0.TotalAlloc
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}

				runtime.GC()
				start = cpuTime(b)
				if err := handlers.DecodeStd(body); err != nil {
					b.Fatal(err)
				}
				floor += cpuTime(b) - start
			}
			n := float64(b.N)
			b.ReportMetric(n*size/proc.Seconds(), "events/s")
			b.ReportMetric(floor.Seconds()/proc.Seconds(), "x-floor")
			b.ReportMetric(float64(procAlloc)/n/float64(len(body)), "alloc-per-body-byte")
		})
	}
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
