// Package device simulates one IoT device that handles the reboot direct
// method and reports iothubDM.reboot in its twin, behind a small Transport
// so that its state machine runs without sockets in tests.
package device

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Faults injects misbehaviour. The zero value is a well-behaved device.
type Faults struct {
	// MethodLatency delays every direct-method reply. Past the caller's
	// responseTimeoutInSeconds the hub answers 504 GatewayTimeout.
	MethodLatency time.Duration
	// FailShare is the probability, from 0 to 1, that a reboot fails: the
	// device replies 500 and reports status "failed" with a reason.
	FailShare float64
	// NeverBackShare is the probability that a device goes down for a
	// reboot and never reconnects.
	NeverBackShare float64
}

// Backoff bounds the delay between connection attempts. Each failed attempt
// doubles the delay, from Min to Max, and the device waits a random time
// between half of it and all of it so that a fleet does not reconnect in
// lockstep after the hub comes back.
type Backoff struct {
	Min, Max time.Duration
}

// Defaults for the zero Config fields.
const (
	DefaultBackoffMin = time.Second
	DefaultBackoffMax = 30 * time.Second
	// reportTimeout bounds one reported-properties round trip; a hub that
	// does not answer in this time is treated as a broken connection.
	reportTimeout = 30 * time.Second
)

// Config describes one device.
type Config struct {
	ID        string
	Transport Transport
	// RebootDuration is how long the device stays disconnected while it
	// reboots, give or take a random RebootJitter.
	RebootDuration time.Duration
	RebootJitter   time.Duration
	Backoff        Backoff
	Faults         Faults
	// Seed makes the device's random choices (jitter, back-off, faults)
	// repeatable; the device id is mixed in, so one seed serves a fleet.
	Seed uint64
	// Gate, when not nil, is shared by a fleet: a device holds a turn
	// while it dials, which bounds connection storms and their rate.
	Gate   *Gate
	Stats  *Stats
	Logger *slog.Logger
}

// Device is one simulated device. Create it with New and call Run.
type Device struct {
	cfg    Config
	logger *slog.Logger
	orders chan order // reboots accepted by the method handler, for Run

	mu        sync.Mutex // guards the fields below: the handler and Run share them
	rng       *rand.Rand
	busy      bool   // a reboot was accepted and is not over yet
	pendingID string // its requestId

	// Owned by Run.
	state  RebootState
	back   bool // coming back from a reboot: count it once reported
	online bool // the session is up and has reported: counted as connected
}

// order is an accepted reboot call, handed from the method handler to Run.
type order struct {
	req       RebootRequest
	fail      string // reason the reboot fails; "" for a good reboot
	neverBack bool
}

// log is the device's logger. The deviceId attribute is added per call,
// not kept: a handler's WithAttrs renders it ahead of time, a few hundred
// bytes for every device of a fleet that logs now and then.
func (d *Device) log() *slog.Logger { return d.logger.With("deviceId", d.cfg.ID) }

// New returns a device for cfg, filling in default back-off bounds.
func New(cfg Config) *Device {
	if cfg.Backoff.Min <= 0 {
		cfg.Backoff.Min = DefaultBackoffMin
	}
	if cfg.Backoff.Max < cfg.Backoff.Min {
		cfg.Backoff.Max = max(DefaultBackoffMax, cfg.Backoff.Min)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := fnv.New64a()
	h.Write([]byte(cfg.ID))
	return &Device{
		cfg:    cfg,
		logger: logger,
		orders: make(chan order, 1),
		rng:    rand.New(rand.NewPCG(cfg.Seed, h.Sum64())),
	}
}

// Run boots the device and keeps it connected until ctx ends: it reports
// its reboot state on every connection, reboots when asked, and reconnects
// with back-off when the connection drops. It returns when ctx ends, and
// not before, even for a device that never comes back from a reboot. Call
// it once.
func (d *Device) Run(ctx context.Context) {
	d.state = RebootState{LastReboot: time.Now(), Status: StatusRunning}
	var b backoffState // a fresh boot dials at once
	for {
		sess, err := d.connect(ctx, &b)
		if err != nil {
			return // ctx ended
		}
		up := time.Now()
		end, o := d.serve(ctx, sess)
		d.hangUp(sess, end)
		if !d.next(ctx, end, o, up, &b) {
			return
		}
	}
}

// hangUp closes a session and counts it.
func (d *Device) hangUp(sess Session, end sessionEnd) {
	if err := sess.Close(); err != nil {
		d.log().Debug("close", "err", err)
	}
	online := d.online
	d.online = false
	d.cfg.Stats.update(func(s *Snapshot) {
		if online {
			s.Connected--
		}
		if end == sessionLost {
			s.Lost++
		}
	})
}

// next gets ready for the next session after one ended, and reports false
// when there is none: ctx ended, or the device is gone for good.
func (d *Device) next(ctx context.Context, end sessionEnd, o order, up time.Time, b *backoffState) bool {
	switch end {
	case sessionLost:
		// A session that did not last keeps the back-off growing, so
		// that a hub which drops every connection at once (or another
		// process using the same device id) is not hammered.
		if time.Since(up) >= stableSession {
			b.failures = 0
		}
		b.wait = true
		d.log().Info("connection lost; reconnecting")
		return true
	case sessionReboot:
		*b = backoffState{}
		return d.reboot(ctx, o)
	default:
		return false
	}
}

// stableSession is how long a session must last for its loss to start the
// back-off afresh.
const stableSession = time.Minute

// backoffState carries the back-off across sessions.
type backoffState struct {
	failures int  // consecutive failed dials and short-lived sessions
	wait     bool // back off before the next dial
}

// connect dials until it gets a session, backing off before each attempt
// but a fresh boot's first. It fails only when ctx ends.
func (d *Device) connect(ctx context.Context, b *backoffState) (Session, error) {
	for {
		if b.wait {
			if err := sleep(ctx, d.backoff(b.failures)); err != nil {
				return nil, err
			}
			b.failures++
		}
		b.wait = true
		sess, err := d.dial(ctx)
		if err == nil {
			return sess, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		level := slog.LevelDebug
		if b.failures > 1 {
			level = slog.LevelWarn // a failure or two is routine while a hub restarts
		}
		d.log().Log(ctx, level, "connect failed", "failures", b.failures, "err", err)
	}
}

func (d *Device) dial(ctx context.Context) (Session, error) {
	if d.cfg.Gate != nil {
		leave, err := d.cfg.Gate.Enter(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
	}
	var sess Session
	err := offStack(func() (err error) {
		sess, err = d.cfg.Transport.Connect(ctx, d.handleMethod)
		return err
	})
	return sess, err
}

// offStack runs f on a goroutine of its own and waits for it. Dialing
// (TLS, certificate parsing) and encoding JSON take several KB of stack,
// and a goroutine that once grew keeps most of it for life; done here, that
// growth is dropped when f returns instead of staying with every idle
// device (BenchmarkConnect1000Devices).
func offStack(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return <-done
}

// sessionEnd says why serve returned.
type sessionEnd int

const (
	sessionOpen    sessionEnd = iota // not over yet
	sessionStopped                   // ctx ended
	sessionLost                      // the connection broke
	sessionReboot                    // the device is going down for a reboot
)

// serve reports the device's state on a new session, then handles reboot
// orders until the session ends.
func (d *Device) serve(ctx context.Context, sess Session) (sessionEnd, order) {
	if !d.greet(ctx, sess) {
		return d.endOf(ctx), order{}
	}
	for {
		o, end := d.await(ctx, sess)
		if end != sessionOpen {
			return end, order{}
		}
		if o.fail != "" {
			d.fail(ctx, sess, o)
			continue
		}
		d.goingDown(ctx, sess, o)
		if err := sleep(ctx, o.req.Delay); err != nil {
			return sessionStopped, order{}
		}
		return sessionReboot, o
	}
}

// await blocks until the session ends or a reboot order arrives.
func (d *Device) await(ctx context.Context, sess Session) (order, sessionEnd) {
	select {
	case <-ctx.Done():
		return order{}, sessionStopped
	case <-sess.Lost():
		return order{}, sessionLost
	case o := <-d.orders:
		return o, sessionOpen
	}
}

// endOf is why a session that could not report ended.
func (d *Device) endOf(ctx context.Context) sessionEnd {
	if ctx.Err() != nil {
		return sessionStopped
	}
	return sessionLost
}

// greet reports the device's state on a new session and counts the device
// as connected once the hub has it.
func (d *Device) greet(ctx context.Context, sess Session) bool {
	if err := d.report(ctx, sess); err != nil {
		if ctx.Err() == nil {
			d.log().Warn("report state on connect", "err", err)
		}
		return false
	}
	d.online = true
	back := d.back
	d.back = false
	d.cfg.Stats.update(func(s *Snapshot) {
		s.Connected++
		s.Connects++
		if back {
			s.Rebooting--
			s.Reboots++
		}
	})
	if back {
		d.log().Info("back from reboot", "lastReboot", d.state.LastReboot.UTC().Format(timeLayout), "requestId", d.state.RequestID)
	}
	return true
}

// fail records a reboot that could not start. The device stays up.
func (d *Device) fail(ctx context.Context, sess Session, o order) {
	d.state = RebootState{LastReboot: d.state.LastReboot, Status: StatusFailed, RequestID: o.req.RequestID, Reason: o.fail}
	d.release()
	d.cfg.Stats.update(func(s *Snapshot) { s.Failed++ })
	d.log().Info("reboot failed", "requestId", o.req.RequestID, "reason", o.fail)
	if err := d.report(ctx, sess); err != nil {
		// The next connection reports it.
		d.log().Warn("report failed reboot", "err", err)
	}
}

// goingDown reports status rebooting. The device reboots whether or not
// the report gets through: the next connection reports the outcome.
func (d *Device) goingDown(ctx context.Context, sess Session, o order) {
	d.state = RebootState{LastReboot: d.state.LastReboot, Status: StatusRebooting, RequestID: o.req.RequestID}
	d.cfg.Stats.update(func(s *Snapshot) { s.Rebooting++ })
	d.log().Info("reboot requested", "requestId", o.req.RequestID, "delay", o.req.Delay)
	if err := d.report(ctx, sess); err != nil {
		d.log().Warn("report rebooting", "err", err)
	}
}

// reboot keeps the device down for the reboot duration and boots it again.
// It reports false when the device will not come back.
func (d *Device) reboot(ctx context.Context, o order) bool {
	if o.neverBack {
		d.cfg.Stats.update(func(s *Snapshot) { s.Rebooting--; s.Gone++ })
		d.log().Info("rebooting and never coming back (injected fault)", "requestId", o.req.RequestID)
		<-ctx.Done()
		return false
	}
	if err := sleep(ctx, d.rebootDuration()); err != nil {
		return false
	}
	d.state = RebootState{LastReboot: time.Now(), Status: StatusRunning, RequestID: o.req.RequestID}
	d.back = true
	d.release()
	return true
}

func (d *Device) report(ctx context.Context, sess Session) error {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	st := d.state
	if err := offStack(func() error { return sess.ReportProperties(ctx, st.Patch()) }); err != nil {
		return fmt.Errorf("report %s: %w", d.state.Status, err)
	}
	return nil
}

// handleMethod answers direct-method calls; see MethodHandler. Only reboot
// is implemented: any other name gets 404, as IoT Hub's device samples do.
func (d *Device) handleMethod(ctx context.Context, name string, payload []byte) (int, []byte) {
	if err := sleep(ctx, d.cfg.Faults.MethodLatency); err != nil {
		return 503, replyError("the device is shutting down")
	}
	if name != "reboot" {
		return 404, replyError(fmt.Sprintf("method %q is not implemented", name))
	}
	req, err := ParseRebootRequest(payload)
	if err != nil {
		return 400, replyError(err.Error())
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy {
		return 409, replyBusy(req.RequestID, d.pendingID)
	}
	o := order{req: req}
	switch {
	case d.rng.Float64() < d.cfg.Faults.FailShare:
		o.fail = "injected fault: the reboot could not start"
	case d.rng.Float64() < d.cfg.Faults.NeverBackShare:
		o.neverBack = true
	}
	d.busy, d.pendingID = true, req.RequestID
	d.orders <- o // never blocks: busy admits one order at a time
	if o.fail != "" {
		return 500, replyFailed(req.RequestID, o.fail)
	}
	return 200, replyStarted(req.RequestID)
}

// release lets the device accept a reboot again.
func (d *Device) release() {
	d.mu.Lock()
	d.busy, d.pendingID = false, ""
	d.mu.Unlock()
}

// rebootDuration is RebootDuration plus or minus up to RebootJitter.
func (d *Device) rebootDuration() time.Duration {
	j := d.cfg.RebootJitter
	if j <= 0 {
		return d.cfg.RebootDuration
	}
	d.mu.Lock()
	off := time.Duration(d.rng.Int64N(int64(2*j)+1)) - j
	d.mu.Unlock()
	return max(0, d.cfg.RebootDuration+off)
}

// backoff is the wait after the n-th consecutive failure (n from 0):
// Min·2ⁿ capped at Max, then a random point in its upper half.
func (d *Device) backoff(n int) time.Duration {
	b := d.cfg.Backoff.Min
	for i := 0; i < n && b < d.cfg.Backoff.Max; i++ {
		b *= 2
	}
	b = min(b, d.cfg.Backoff.Max)
	half := b / 2
	d.mu.Lock()
	defer d.mu.Unlock()
	return half + time.Duration(d.rng.Int64N(int64(b-half)+1))
}

// sleep waits for d or for ctx to end, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
