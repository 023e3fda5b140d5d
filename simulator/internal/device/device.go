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

// Device is one simulated device. Create it with New, then call Start or
// Run.
//
// A device runs on a goroutine only while it has something to do
// (dialling, reporting, waiting out a delay, a reboot or a back-off). Once
// connected and idle it parks: it holds no goroutine, and a reboot order,
// the loss of its connection or the end of its context starts one again.
// An idle goroutine would cost every device of a fleet its stack (4 KB)
// for as long as it stays connected, which is most of the time.
type Device struct {
	cfg    Config
	logger *slog.Logger
	orders chan order // reboots accepted by the method handler, for run

	ctx      context.Context
	done     func()
	stopWake func() bool // stops the wake-up at the end of ctx
	finished sync.Once

	mu        sync.Mutex // guards the fields below: the handler and run share them
	rng       *rand.Rand
	busy      bool    // a reboot was accepted and is not over yet
	pendingID string  // its requestId
	parked    Session // the idle session the device waits on, without a goroutine
	gone      bool    // stopped for good, or never coming back: waits for ctx only

	// Owned by run, which executes on one goroutine at a time; parking
	// and waking hand them over under mu.
	state  RebootState
	back   bool // coming back from a reboot: count it once reported
	online bool // the session is up and has reported: counted as connected
	retry  backoffState
	up     time.Time // when the current session started
}

// order is an accepted reboot call, handed from the method handler to run.
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

// Run is Start, waiting for the device to stop.
func (d *Device) Run(ctx context.Context) {
	stopped := make(chan struct{})
	d.Start(ctx, func() { close(stopped) })
	<-stopped
}

// Start boots the device and keeps it connected until ctx ends: it reports
// its reboot state on every connection, reboots when asked, and reconnects
// with back-off when the connection drops. It returns at once; done is
// called when the device has stopped, once ctx has ended and not before,
// even for a device that never comes back from a reboot. Call it once.
func (d *Device) Start(ctx context.Context, done func()) {
	d.ctx, d.done = ctx, done
	d.state = RebootState{LastReboot: time.Now(), Status: StatusRunning}
	d.stopWake = context.AfterFunc(ctx, d.wake)
	go d.run(nil) // a fresh boot dials at once
}

// run executes the device from where it stands, a new boot (sess nil) or
// an idle session, until it parks or stops.
func (d *Device) run(sess Session) {
	ctx := d.ctx
	for {
		if sess == nil {
			var err error
			if sess, err = d.connect(ctx, &d.retry); err != nil {
				d.halt() // ctx ended
				return
			}
			d.up = time.Now()
			if !d.greet(ctx, sess) {
				if !d.end(sess, d.endOf(ctx), order{}) {
					return
				}
				sess = nil
				continue
			}
		}
		end, o, parked := d.serve(ctx, sess)
		if parked {
			return
		}
		if !d.end(sess, end, o) {
			return
		}
		sess = nil
	}
}

// end hangs up a session that ended and reports whether there is a next
// one. When there is none (ctx ended, or the device never comes back) it
// halts the device.
func (d *Device) end(sess Session, end sessionEnd, o order) bool {
	d.hangUp(sess, end)
	if d.next(d.ctx, end, o, d.up, &d.retry) {
		return true
	}
	d.halt()
	return false
}

// halt stops running the device for good. It has stopped when ctx has
// ended; a device that never comes back waits for that without a
// goroutine (wake stops it).
func (d *Device) halt() {
	d.mu.Lock()
	d.gone = true
	d.mu.Unlock()
	if d.ctx.Err() != nil {
		d.finish()
	}
}

func (d *Device) finish() {
	d.finished.Do(func() {
		d.stopWake()
		d.done()
	})
}

// wake runs a parked device again, on a goroutine of its own: a reboot
// order came, its connection was lost, or ctx ended. A wake-up with
// nothing to do (the device is running, or woke for an event already
// handled) parks it again at once.
func (d *Device) wake() {
	d.mu.Lock()
	sess, gone := d.parked, d.gone
	d.parked = nil
	d.mu.Unlock()
	switch {
	case sess != nil:
		go d.run(sess)
	case gone && d.ctx.Err() != nil:
		d.finish()
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
	return d.cfg.Transport.Connect(ctx, d.handleMethod, d.wake)
}

// sessionEnd says why serve returned.
type sessionEnd int

const (
	sessionOpen    sessionEnd = iota // not over yet
	sessionStopped                   // ctx ended
	sessionLost                      // the connection broke
	sessionReboot                    // the device is going down for a reboot
)

// serve handles reboot orders on a session that has reported its state,
// until the session ends or the device parks.
func (d *Device) serve(ctx context.Context, sess Session) (end sessionEnd, o order, parked bool) {
	for {
		o, end, parked := d.await(ctx, sess)
		if parked || end != sessionOpen {
			return end, order{}, parked
		}
		if o.fail != "" {
			d.fail(ctx, sess, o)
			continue
		}
		d.goingDown(ctx, sess, o)
		if err := sleep(ctx, o.req.Delay); err != nil {
			return sessionStopped, order{}, false
		}
		return sessionReboot, o, false
	}
}

// await returns the session's end or a reboot order, if either has come;
// otherwise it parks the device on sess and reports parked, and the
// caller's goroutine ends. wake starts a new one when something comes.
func (d *Device) await(ctx context.Context, sess Session) (order, sessionEnd, bool) {
	for {
		if o, end, ok := d.poll(ctx, sess); ok {
			return o, end, false
		}
		d.mu.Lock()
		d.parked = sess
		d.mu.Unlock()
		// An event that came between the poll and parking found nobody to
		// wake: look again, and carry on if the device is still parked
		// (nobody woke it meanwhile).
		if !d.ready(ctx, sess) {
			return order{}, sessionOpen, true
		}
		d.mu.Lock()
		mine := d.parked == sess
		if mine {
			d.parked = nil
		}
		d.mu.Unlock()
		if !mine {
			return order{}, sessionOpen, true // a wake-up runs it already
		}
	}
}

// poll takes what has come for the device, without waiting.
func (d *Device) poll(ctx context.Context, sess Session) (order, sessionEnd, bool) {
	select {
	case <-ctx.Done():
		return order{}, sessionStopped, true
	case <-sess.Lost():
		return order{}, sessionLost, true
	case o := <-d.orders:
		return o, sessionOpen, true
	default:
		return order{}, sessionOpen, false
	}
}

// ready reports whether poll would take something, without taking it.
func (d *Device) ready(ctx context.Context, sess Session) bool {
	if ctx.Err() != nil || len(d.orders) > 0 {
		return true
	}
	select {
	case <-sess.Lost():
		return true
	default:
		return false
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
	if err := sess.ReportProperties(ctx, d.state.Patch()); err != nil {
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

	status, reply, ordered := d.order(req)
	if ordered {
		d.wake() // a parked device has nothing running to take the order
	}
	return status, reply
}

// order accepts a reboot unless one is in progress and hands it to run.
func (d *Device) order(req RebootRequest) (status int, reply []byte, ordered bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy {
		return 409, replyBusy(req.RequestID, d.pendingID), false
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
		return 500, replyFailed(req.RequestID, o.fail), true
	}
	return 200, replyStarted(req.RequestID), true
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
