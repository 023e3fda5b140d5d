// Package fleet runs many simulated devices in one process, each with its
// own connection, and prints a progress summary.
package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
)

// Member is one device of the fleet: its id and how it connects.
type Member struct {
	ID        string
	Transport device.Transport
}

// Faults injects misbehaviour across the fleet. The zero value is none.
type Faults struct {
	// OfflineShare of the devices, from 0 to 1, never connect: calls to
	// them get 404 DeviceNotOnline. The count is rounded to the nearest
	// device and the devices are picked with Options.Seed.
	OfflineShare float64
	// Device faults apply to every device that does connect.
	device.Faults
}

// DefaultConnectConcurrency bounds dials in flight when Options leaves it
// zero: enough to connect thousands of devices in seconds without a
// handshake storm when a hub restarts.
const DefaultConnectConcurrency = 64

// Options configure a fleet.
type Options struct {
	Devices        []Member
	RebootDuration time.Duration
	RebootJitter   time.Duration
	Backoff        device.Backoff
	Faults         Faults
	// Seed makes offline picks, faults and jitter repeatable.
	Seed uint64
	// ConnectConcurrency bounds dials in flight; ConnectRate, when
	// positive, the dials started per second (IoT Hub throttles new
	// connections by rate).
	ConnectConcurrency int
	ConnectRate        float64
	// Progress is the interval of the one-line summary on Stdout; zero
	// prints only the final summary.
	Progress time.Duration
	Stdout   io.Writer
	Logger   *slog.Logger
}

// Fleet is a set of devices run together.
type Fleet struct {
	opts    Options
	devices []*device.Device // the ones that connect
	offline []string         // ids of the ones that never do
	stats   device.Stats
}

// New builds the fleet's devices; Run starts them.
func New(opts Options) *Fleet {
	if opts.ConnectConcurrency <= 0 {
		opts.ConnectConcurrency = DefaultConnectConcurrency
	}
	if opts.Stdout == nil {
		opts.Stdout = io.Discard
	}
	f := &Fleet{opts: opts}
	isOffline := pickOffline(len(opts.Devices), opts.Faults.OfflineShare, opts.Seed)
	gate := device.NewGate(opts.ConnectConcurrency, opts.ConnectRate)
	for i, m := range opts.Devices {
		if isOffline[i] {
			f.offline = append(f.offline, m.ID)
			continue
		}
		f.devices = append(f.devices, device.New(device.Config{
			ID:             m.ID,
			Transport:      m.Transport,
			RebootDuration: opts.RebootDuration,
			RebootJitter:   opts.RebootJitter,
			Backoff:        opts.Backoff,
			Faults:         opts.Faults.Faults,
			Seed:           opts.Seed,
			Gate:           gate,
			Stats:          &f.stats,
			Logger:         opts.Logger,
		}))
	}
	return f
}

// pickOffline marks round(share·n) of n devices, chosen by seed.
func pickOffline(n int, share float64, seed uint64) []bool {
	marks := make([]bool, n)
	k := int(math.Round(min(max(share, 0), 1) * float64(n)))
	rng := rand.New(rand.NewPCG(seed, 0x0ff11e))
	for _, i := range rng.Perm(n)[:k] {
		marks[i] = true
	}
	return marks
}

// Stats are the fleet's live counts.
func (f *Fleet) Stats() *device.Stats { return &f.stats }

// Offline are the ids of the devices that never connect.
func (f *Fleet) Offline() []string { return f.offline }

// Run runs every device until ctx ends, printing a summary line every
// Options.Progress, a line when every device that should connect first
// has, and a last one when all devices have stopped.
func (f *Fleet) Run(ctx context.Context) {
	start := time.Now()
	var wg sync.WaitGroup
	for _, d := range f.devices {
		wg.Add(1)
		d.Start(ctx, wg.Done) // no goroutine per device: see device.Device
	}
	if len(f.devices) > 0 {
		wg.Go(func() { f.announceConnected(ctx, start) })
	}
	if f.opts.Progress > 0 {
		wg.Go(func() { f.progress(ctx) })
	}
	<-ctx.Done() // even a fleet whose every device is offline runs until stopped
	wg.Wait()
	fmt.Fprintln(f.opts.Stdout, f.summary("stopped"))
}

func (f *Fleet) progress(ctx context.Context) {
	t := time.NewTicker(f.opts.Progress)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			fmt.Fprintln(f.opts.Stdout, f.summary("progress"))
		case <-ctx.Done():
			return
		}
	}
}

// announceConnected prints one line, once, when every device that should
// connect has connected and reported its state: how long that took from
// the start of Run, and the process's memory.
//
// Connecting is the one moment the simulator allocates a lot (TLS
// handshakes, certificate checks, a goroutine stack per dial), and the Go
// runtime keeps what a burst freed for a while in case it is needed again.
// An idle fleet will not need it, so it is handed back to the OS before the
// memory is printed: what a fleet of this size holds, not what connecting
// it took.
func (f *Fleet) announceConnected(ctx context.Context, start time.Time) {
	online := len(f.devices)
	if err := f.stats.Wait(ctx, func(s device.Snapshot) bool { return s.Connected >= online }); err != nil {
		return
	}
	took := time.Since(start)
	debug.FreeOSMemory()
	fmt.Fprintf(f.opts.Stdout, "%s connected devices=%d offline=%d took=%s mem=%s\n",
		time.Now().UTC().Format(time.RFC3339), len(f.opts.Devices), len(f.offline), took.Round(time.Millisecond), memoryHeld())
}

// summary is one line for people and for grep: what every device is doing.
func (f *Fleet) summary(label string) string {
	s := f.stats.Snapshot()
	return fmt.Sprintf("%s %s devices=%d offline=%d connected=%d rebooting=%d reboots=%d failed=%d gone=%d reconnects=%d mem=%s",
		time.Now().UTC().Format(time.RFC3339), label, len(f.opts.Devices), len(f.offline),
		s.Connected, s.Rebooting, s.Reboots, s.Failed, s.Gone, s.Lost, memoryHeld())
}

// memoryHeld is the memory the process holds from the OS, as the Go
// runtime counts it (everything it mapped, less what it gave back), in MB.
func memoryHeld() string {
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(samples)
	held := samples[0].Value.Uint64() - samples[1].Value.Uint64()
	return fmt.Sprintf("%.1fMB", float64(held)/(1<<20))
}
