package fleet

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
)

// nopTransport connects at once and accepts every report.
type nopTransport struct{}

func (nopTransport) Connect(ctx context.Context, _ device.MethodHandler, _ func()) (device.Session, error) {
	return &nopSession{lost: make(chan struct{})}, nil
}

type nopSession struct{ lost chan struct{} }

func (*nopSession) ReportProperties(context.Context, []byte) error { return nil }
func (s *nopSession) Lost() <-chan struct{}                        { return s.lost }
func (*nopSession) Close() error                                   { return nil }

func membersN(n int) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("d%d", i), Transport: nopTransport{}}
	}
	return ms
}

func TestOfflineShareIsExactAndRepeatable(t *testing.T) {
	tests := []struct {
		n     int
		share float64
		want  int
	}{
		{10, 0, 0}, {10, 0.1, 1}, {10, 0.25, 3}, {10, 1, 10}, {3, 0.5, 2}, {0, 0.5, 0}, {1000, 0.1, 100},
	}
	for _, tt := range tests {
		opts := Options{Devices: membersN(tt.n), Faults: Faults{OfflineShare: tt.share}, Seed: 9}
		got := New(opts).Offline()
		require.Len(t, got, tt.want, "n=%d share=%v", tt.n, tt.share)
		require.Equal(t, got, New(opts).Offline(), "same seed, same devices")
	}
	a := New(Options{Devices: membersN(100), Faults: Faults{OfflineShare: 0.1}, Seed: 1}).Offline()
	b := New(Options{Devices: membersN(100), Faults: Faults{OfflineShare: 0.1}, Seed: 2}).Offline()
	require.NotEqual(t, a, b, "another seed picks other devices")
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

func TestRunPrintsProgressAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuffer
		f := New(Options{Devices: membersN(4), Faults: Faults{OfflineShare: 0.25}, Progress: 10 * time.Second, Stdout: &out})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.Run(ctx); close(done) }()

		time.Sleep(25 * time.Second)
		synctest.Wait()
		lines := out.lines()
		require.Len(t, lines, 3, "the connected line, then one line every 10 s")
		require.Regexp(t, `^2000-01-01T00:00:00Z connected devices=4 offline=1 took=0s mem=\d+\.\dMB$`, lines[0])
		require.Regexp(t, `^2000-01-01T00:00:10Z progress devices=4 offline=1 connected=3 rebooting=0 reboots=0 failed=0 gone=0 reconnects=0 mem=\d+\.\dMB$`, lines[1])

		cancel()
		<-done
		lines = out.lines()
		require.Len(t, lines, 4)
		require.Regexp(t, `^2000-01-01T00:00:25Z stopped devices=4 offline=1 connected=0 rebooting=0 reboots=0 failed=0 gone=0 reconnects=0 mem=`, lines[3])
	})
}

// slowTransport connects after a delay, so connecting takes a while.
type slowTransport struct{ delay time.Duration }

func (s slowTransport) Connect(ctx context.Context, h device.MethodHandler, onLost func()) (device.Session, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return nopTransport{}.Connect(ctx, h, onLost)
}

// The connected line says how long connecting every device took, once,
// even when devices reconnect later.
func TestConnectedLineReportsConnectTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuffer
		ms := membersN(3)
		for i := range ms {
			ms[i].Transport = slowTransport{delay: time.Duration(i+1) * time.Second}
		}
		f := New(Options{Devices: ms, Stdout: &out})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.Run(ctx); close(done) }()

		time.Sleep(time.Minute)
		synctest.Wait()
		lines := out.lines()
		require.Len(t, lines, 1)
		require.Regexp(t, `^2000-01-01T00:00:03Z connected devices=3 offline=0 took=3s mem=`, lines[0])
		cancel()
		<-done
	})
}

func TestAllOfflineFleetRunsUntilStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := New(Options{Devices: membersN(2), Faults: Faults{OfflineShare: 1}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { f.Run(ctx); close(done) }()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Run returned before ctx ended")
		default:
		}
		cancel()
		<-done
	})
}

func TestConnectConcurrencyDefaults(t *testing.T) {
	f := New(Options{Devices: membersN(2)})
	require.Equal(t, DefaultConnectConcurrency, f.opts.ConnectConcurrency)
}
