package fleet_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
	"github.com/iothub-reboot/devmgmt/simulator/internal/fleet"
	"github.com/iothub-reboot/devmgmt/simulator/internal/hubtest"
)

// BenchmarkConnect1000Devices connects 1,000 simulated devices, each over
// its own MQTT/TLS connection, to a local hub child process. It reports the
// time until every device has connected and reported its state
// (connect-s), that rate (devices/s), and this process's memory per
// connected device: resident set (KB/device, the VmRSS delta) and,
// steadier, Go heap and goroutine stacks in use (heap-KB/device,
// stack-KB/device). make perf measures 10,000 devices, whole processes.
func BenchmarkConnect1000Devices(b *testing.B) {
	const n = 1000
	hub := hubtest.Start(b, localhubBin)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%04d", i+1)
	}
	registered := time.Now()
	ms := members(b, hub, ids)
	b.Logf("registered %d devices in %v", n, time.Since(registered).Round(time.Millisecond))

	var connect time.Duration
	var grew memory
	runs := 0
	for b.Loop() {
		before := measure(b)
		f := fleet.New(fleet.Options{Devices: ms, Seed: 1})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		start := time.Now()
		go func() { f.Run(ctx); close(done) }()
		waitCtx, waitCancel := context.WithTimeout(context.Background(), 3*time.Minute)
		err := f.Stats().Wait(waitCtx, func(s device.Snapshot) bool { return s.Connected == n })
		waitCancel()
		connect += time.Since(start)
		if err != nil {
			cancel()
			<-done
			b.Fatalf("connect %d devices: %v (counts %+v)", n, err, f.Stats().Snapshot())
		}
		grew = grew.plus(measure(b).minus(before))
		runs++
		cancel()
		<-done
	}
	per := float64(n * runs)
	b.ReportMetric(connect.Seconds()/float64(runs), "connect-s")
	b.ReportMetric(per/connect.Seconds(), "devices/s")
	b.ReportMetric(float64(grew.rss)/per/1024, "KB/device")
	b.ReportMetric(float64(grew.heap)/per/1024, "heap-KB/device")
	b.ReportMetric(float64(grew.stack)/per/1024, "stack-KB/device")
}

// memory is this process's footprint in bytes.
type memory struct{ rss, heap, stack int64 }

func (m memory) minus(o memory) memory {
	return memory{m.rss - o.rss, m.heap - o.heap, m.stack - o.stack}
}
func (m memory) plus(o memory) memory {
	return memory{m.rss + o.rss, m.heap + o.heap, m.stack + o.stack}
}

// measure takes the footprint after a full collection, with freed memory
// given back to the OS so that it does not count.
func measure(b *testing.B) memory {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{rss: residentKB(b) * 1024, heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse)}
}

// residentKB is VmRSS from /proc/self/status.
func residentKB(b *testing.B) int64 {
	b.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatalf("resident memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
