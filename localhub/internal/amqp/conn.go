package amqp

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// Connection tuning that needs no option.
const (
	readBufferSize  = 16 << 10
	writeBufferSize = 64 << 10
	// closeWait is how long we wait for the peer's close after sending
	// ours before dropping the socket.
	closeWait = time.Second
	// maxHeartbeatGap caps the silence we allow ourselves whatever the
	// peer asks: Event Hubs clients expect traffic at least this often.
	maxHeartbeatGap = 15 * time.Second
	// inQueue is how many decoded frames the reader may hand ahead to the
	// connection goroutine (their bytes count against ReceiveBuffer).
	inQueue = 32
	// pumpBatch is how many deliveries one link sends before the next
	// link gets a turn.
	pumpBatch = 32
)

// Conn is one AMQP connection. Its methods are safe for concurrent use.
type Conn struct {
	srv  *Server
	opts *Options
	nc   net.Conn
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	reader sync.WaitGroup

	// Set (under mu) when the handshake ends, before Options.Connect runs;
	// read-only afterwards.
	sasl SASLInfo
	peer *frame.Open

	inBudget, outBudget *budget

	// Application to connection goroutine.
	wake     chan struct{}
	mu       sync.Mutex
	dirty    []*Link
	closeReq bool
	closeErr *Error
	opened   bool               // the handshake is over: Close must go through the loop
	links    map[*Link]struct{} // attached links, for ReplyLink
	value    any
	err      error // why the connection ended

	// Owned by the connection goroutine.
	bw           *bufio.Writer
	scratch      []byte
	wrote        bool
	werr         error
	peerMaxFrame uint32
	sessions     map[uint16]*session // by the peer's channel
	localChans   map[uint16]bool
	nLinks       int
	ready        []*Link
	closeSent    bool
	closeTimer   *time.Timer
	finished     bool
	readerDone   bool
}

func newConn(s *Server, nc net.Conn) *Conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &Conn{
		srv:        s,
		opts:       &s.opts,
		nc:         nc,
		log:        s.log.With("remote", nc.RemoteAddr().String()),
		ctx:        ctx,
		cancel:     cancel,
		done:       make(chan struct{}),
		inBudget:   newBudget(s.opts.ReceiveBuffer),
		outBudget:  newBudget(s.opts.SendBuffer),
		wake:       make(chan struct{}, 1),
		links:      map[*Link]struct{}{},
		sessions:   map[uint16]*session{},
		localChans: map[uint16]bool{},
	}
}

// SASL returns what the connection's SASL exchange established (zero
// until the handshake is over, which it is in Options.Connect and
// Options.Attach).
func (c *Conn) SASL() SASLInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sasl
}

// PeerOpen returns the open the peer sent (container-id, hostname,
// properties, ...), nil during the handshake. Do not modify it.
func (c *Conn) PeerOpen() *frame.Open {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peer
}

// RemoteAddr is the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Context is cancelled when the connection ends.
func (c *Conn) Context() context.Context { return c.ctx }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Value returns what SetValue stored.
func (c *Conn) Value() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.value
}

// SetValue stores application state for the connection (for example the
// CBS tokens it has put, so that later attaches can be authorised).
func (c *Conn) SetValue(v any) {
	c.mu.Lock()
	c.value = v
	c.mu.Unlock()
}

// Close closes the connection, sending err (nil for a clean close) in our
// close frame. It does not wait; Done is closed once it has ended.
func (c *Conn) Close(err *Error) {
	c.mu.Lock()
	if !c.closeReq {
		c.closeReq, c.closeErr = true, err
	}
	opened := c.opened
	c.mu.Unlock()
	if !opened {
		_ = c.nc.Close() // nobody to say close to yet: end the handshake now
		return
	}
	c.signal()
}

// Links returns the attached links.
func (c *Conn) Links() []*Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Link, 0, len(c.links))
	for l := range c.links {
		out = append(out, l)
	}
	return out
}

// ReplyLink returns the attached link on which we send whose target
// address is addr: where a request/response peer ($cbs, $management)
// wants the response to a request whose reply-to is addr.
func (c *Conn) ReplyLink(addr string) *Link {
	c.mu.Lock()
	defer c.mu.Unlock()
	for l := range c.links {
		if l.role == frame.RoleSender && l.peer.Target != nil && l.peer.Target.Address == addr {
			return l
		}
	}
	return nil
}

func (c *Conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// notify tells the connection goroutine that l has work (queued
// messages, settlements, freed credit, a detach request).
func (c *Conn) notify(l *Link) {
	if !l.dirty.CompareAndSwap(false, true) {
		return
	}
	c.mu.Lock()
	c.dirty = append(c.dirty, l)
	c.mu.Unlock()
	c.signal()
}

// deadlineWriter gives every write to the network its own deadline.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if err := w.nc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.nc.Write(p)
}

type inFrame struct {
	channel uint16
	body    frame.Body
	held    int // budget held
	err     error
}

// run is the connection's goroutine: handshake, then the frame loop.
func (c *Conn) run() {
	defer c.teardown()
	br := bufio.NewReaderSize(c.nc, readBufferSize)
	c.bw = bufio.NewWriterSize(&deadlineWriter{nc: c.nc, timeout: c.opts.WriteTimeout}, writeBufferSize)

	_ = c.nc.SetReadDeadline(time.Now().Add(c.opts.HandshakeTimeout))
	info, open, err := c.srv.handshake(c.ctx, br, c.bw)
	if err != nil {
		var he *handshakeError
		if errors.As(err, &he) {
			c.writeOpen()
			c.sendClose(he.amqp)
			c.flush()
		}
		c.log.Debug("amqp: handshake failed", "err", err)
		c.setErr(err)
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	c.mu.Lock()
	c.sasl, c.peer = info, open
	c.opened = true
	closing := c.closeReq
	c.mu.Unlock()
	if closing {
		c.setErr(errConnClosed)
		return
	}
	c.peerMaxFrame = min(open.MaxFrameSize, c.opts.MaxFrameSize)
	c.writeOpen()
	c.flush()
	if c.werr != nil {
		c.setErr(c.werr)
		return
	}
	c.log.Debug("amqp: connection open", "container", open.ContainerID, "mechanism", string(info.Mechanism))
	if c.opts.Connect != nil {
		if err := c.opts.Connect(c.ctx, c); err != nil {
			c.sendClose(asAMQPError(err))
			c.flush()
			c.setErr(err)
			return
		}
	}

	in := make(chan inFrame, inQueue)
	c.reader.Add(1)
	go c.readLoop(br, in)
	c.loop(in)
}

func (c *Conn) writeOpen() {
	o := &frame.Open{
		ContainerID:  c.opts.ContainerID,
		MaxFrameSize: c.opts.MaxFrameSize,
		ChannelMax:   uint16(c.opts.MaxSessions - 1),
	}
	if c.opts.IdleTimeout > 0 {
		o.IdleTimeout = uint32(min(c.opts.IdleTimeout/2/time.Millisecond, math.MaxUint32))
	}
	c.writeFrame(0, o)
}

// heartbeatPeriod is how often we check whether to send an empty frame:
// a quarter of the peer's idle timeout (capped), so the gap between two
// frames we send never exceeds half of it.
func (c *Conn) heartbeatPeriod() time.Duration {
	gap := 2 * maxHeartbeatGap
	if c.peer.IdleTimeout > 0 {
		gap = min(gap, time.Duration(c.peer.IdleTimeout)*time.Millisecond)
	}
	return max(gap/4, time.Millisecond)
}

func (c *Conn) loop(in <-chan inFrame) {
	hb := time.NewTicker(c.heartbeatPeriod())
	defer hb.Stop()
	var closeTimeout <-chan time.Time
	for !c.finished {
		if c.closeTimer != nil && closeTimeout == nil {
			closeTimeout = c.closeTimer.C
		}
		select {
		case f := <-in:
			c.handle(f)
		case <-c.wake:
			c.handleWake()
		case <-hb.C:
			if !c.wrote && !c.closeSent {
				c.write(frame.Heartbeat)
			}
			c.wrote = false
		case <-closeTimeout:
			c.finished = true
		}
		c.pump()
		if len(in) == 0 || c.finished {
			c.flush()
		}
		if c.werr != nil {
			if !c.finished {
				c.log.Debug("amqp: write failed; dropping the connection", "err", c.werr)
				c.setErr(fmt.Errorf("amqp: write: %w", c.werr))
			}
			return
		}
	}
}

// readLoop reads and decodes frames for the connection goroutine. It
// waits for room in the receive budget before reading a frame's body, so
// a peer can never make us hold more than ReceiveBuffer bytes.
func (c *Conn) readLoop(br *bufio.Reader, in chan<- inFrame) {
	defer c.reader.Done()
	send := func(f inFrame) bool {
		select {
		case in <- f:
			return true
		case <-c.done:
			c.inBudget.give(f.held)
			return false
		}
	}
	idle := c.opts.IdleTimeout
	for {
		if idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		var hb [frame.HeaderSize]byte
		if _, err := io.ReadFull(br, hb[:]); err != nil {
			send(inFrame{err: err})
			return
		}
		h, err := frame.ParseHeader(hb)
		if err == nil && h.Size > c.opts.MaxFrameSize {
			err = &frame.SizeError{Size: h.Size, Max: c.opts.MaxFrameSize}
		}
		if err != nil {
			send(inFrame{err: err})
			return
		}
		if h.Size == frame.HeaderSize {
			continue // heartbeat: reading it was the point
		}
		n := int(h.Size)
		if err := c.takeIn(n); err != nil {
			send(inFrame{err: err})
			return
		}
		if idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		buf := make([]byte, n-frame.HeaderSize)
		if _, err := io.ReadFull(br, buf); err != nil {
			c.inBudget.give(n)
			send(inFrame{err: err})
			return
		}
		body := buf[int(h.DataOffset)*4-frame.HeaderSize:]
		var b frame.Body
		if len(body) > 0 {
			if b, err = frame.ParseBody(h.Type, body); err != nil {
				c.inBudget.give(n)
				send(inFrame{err: err})
				return
			}
		}
		if b == nil {
			c.inBudget.give(n)
			continue
		}
		if h.Type != frame.TypeAMQP {
			c.inBudget.give(n)
			send(inFrame{err: fmt.Errorf("%w: SASL frame after SASL", frame.ErrFraming)})
			return
		}
		if !send(inFrame{channel: h.Channel, body: b, held: n}) {
			return
		}
	}
}

// errStalled: the application has not taken received messages for a whole
// idle timeout, with the receive buffer full.
var errStalled = errors.New("amqp: receive buffer full and not drained")

func (c *Conn) takeIn(n int) error {
	if c.inBudget.tryTake(n) {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.stallTimeout())
	defer cancel()
	err := c.inBudget.take(ctx, c.done, n)
	if errors.Is(err, context.DeadlineExceeded) {
		return errStalled
	}
	return err
}

// stallTimeout is how long the reader waits for the application to make
// room in the receive buffer before giving up on the connection.
func (c *Conn) stallTimeout() time.Duration {
	if c.opts.IdleTimeout > 0 {
		return c.opts.IdleTimeout
	}
	return DefaultIdleTimeout
}

// readFailed turns a reader error into the connection's end.
func (c *Conn) readFailed(err error) {
	var ne net.Error
	var se *frame.SizeError
	switch {
	case c.closeSent:
		c.finished = true
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, io.ErrUnexpectedEOF):
		c.log.Debug("amqp: peer went away", "err", err)
		c.setErr(fmt.Errorf("amqp: connection lost: %w", err))
		c.finished = true
	case errors.As(err, &ne) && ne.Timeout():
		c.closeWith(Errorf(frame.CondResourceLimitExceeded, "no frame received for %v (local idle timeout)", c.opts.IdleTimeout))
	case errors.As(err, &se):
		c.closeWith(Errorf(frame.CondFramingError, "frame of %d bytes exceeds max-frame-size %d", se.Size, se.Max))
	case errors.Is(err, frame.ErrFraming):
		c.closeWith(Errorf(frame.CondFramingError, "%v", err))
	case errors.Is(err, frame.ErrUnknownPerformative), errors.Is(err, codec.ErrMalformed):
		c.closeWith(Errorf(frame.CondDecodeError, "%v", err))
	case errors.Is(err, errStalled):
		c.closeWith(Errorf(frame.CondResourceLimitExceeded, "%v for %v", err, c.stallTimeout()))
	default:
		c.log.Debug("amqp: read failed", "err", err)
		c.setErr(fmt.Errorf("amqp: read: %w", err))
		c.finished = true
	}
}

// closeWith starts closing the connection with err: our close is sent, the
// links end, and we wait (briefly) for the peer's close.
func (c *Conn) closeWith(err *Error) {
	if c.closeSent {
		return
	}
	if err != nil {
		c.log.Info("amqp: closing connection", "err", err)
	}
	c.setErr(&ConnError{Local: err})
	c.sendClose(err)
	c.endAll(&LinkError{Cause: c.Err()})
	if c.readerDone {
		c.finished = true // nothing more will be read: no close to wait for
		return
	}
	c.closeTimer = time.NewTimer(closeWait)
}

func (c *Conn) sendClose(err *Error) {
	c.writeFrame(0, &frame.Close{Error: err})
	c.closeSent = true
}

// ConnError is why a connection ended when an AMQP close was involved.
type ConnError struct {
	Remote, Local *Error
}

func (e *ConnError) Error() string {
	switch {
	case e.Remote != nil:
		return "amqp: connection closed by peer: " + e.Remote.Error()
	case e.Local != nil:
		return "amqp: connection closed: " + e.Local.Error()
	}
	return "amqp: connection closed"
}

func (c *Conn) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// endAll ends every session and link for the application.
func (c *Conn) endAll(err *LinkError) {
	for _, s := range c.sessions {
		s.finishLinks(err)
	}
}

func (c *Conn) teardown() {
	_ = c.nc.Close()
	c.setErr(errConnClosed)
	c.endAll(&LinkError{Cause: c.Err()})
	if c.closeTimer != nil {
		c.closeTimer.Stop()
	}
	c.cancel()
	close(c.done)
	c.reader.Wait()
}

// handleWake processes what the application asked for.
func (c *Conn) handleWake() {
	c.mu.Lock()
	dirty := c.dirty
	c.dirty = nil
	closeReq, closeErr := c.closeReq, c.closeErr
	c.mu.Unlock()
	if closeReq && !c.closeSent {
		c.closeWith(closeErr)
	}
	for _, l := range dirty {
		l.dirty.Store(false)
		if l.sess != nil && !c.closeSent {
			l.sess.linkWork(l)
		}
	}
}

// handle dispatches one frame from the reader.
func (c *Conn) handle(f inFrame) {
	if f.err != nil {
		c.readerDone = true
		c.readFailed(f.err)
		return
	}
	keep := false
	defer func() {
		if !keep {
			c.inBudget.give(f.held)
		}
	}()
	if cl, ok := f.body.(*frame.Close); ok {
		if !c.closeSent {
			c.setErr(&ConnError{Remote: cl.Error})
			c.endAll(&LinkError{Cause: c.Err()})
			c.sendClose(nil)
		}
		c.finished = true
		return
	}
	if c.closeSent {
		return // only the peer's close matters now
	}
	switch b := f.body.(type) {
	case *frame.Open:
		c.closeWith(Errorf(frame.CondIllegalState, "second open"))
	case *frame.Begin:
		c.handleBegin(f.channel, b)
	default:
		s := c.sessions[f.channel]
		if s == nil {
			c.closeWith(Errorf(frame.CondNotAllowed, "%T on channel %d, which has no session", f.body, f.channel))
			return
		}
		keep = s.handle(f.body, f.held)
	}
}

func (c *Conn) handleBegin(ch uint16, b *frame.Begin) {
	if int(ch) >= c.opts.MaxSessions {
		c.closeWith(Errorf(frame.CondNotAllowed, "channel %d exceeds channel-max %d", ch, c.opts.MaxSessions-1))
		return
	}
	if c.sessions[ch] != nil {
		c.closeWith(Errorf(frame.CondNotAllowed, "begin on channel %d, which has a session", ch))
		return
	}
	if b.RemoteChannel != nil {
		c.closeWith(Errorf(frame.CondNotAllowed, "begin answering a session we never began"))
		return
	}
	limit := min(int(c.peer.ChannelMax)+1, c.opts.MaxSessions)
	local := -1
	for i := range limit {
		if !c.localChans[uint16(i)] {
			local = i
			break
		}
	}
	if local < 0 {
		c.closeWith(Errorf(frame.CondResourceLimitExceeded, "no channel left"))
		return
	}
	s := newSession(c, ch, uint16(local), b)
	c.sessions[ch] = s
	c.localChans[uint16(local)] = true
	rc := ch
	c.writeFrame(s.local, &frame.Begin{
		RemoteChannel:  &rc,
		NextOutgoingID: s.nextOutgoingID,
		IncomingWindow: s.incomingWindow,
		OutgoingWindow: outgoingWindow,
		HandleMax:      uint32(c.opts.MaxLinks - 1),
	})
}

// writeFrame encodes and buffers one frame. After our close, nothing but
// that close is written.
func (c *Conn) writeFrame(ch uint16, b frame.Body) {
	if c.werr != nil || c.closeSent {
		return
	}
	var err error
	if c.scratch, err = frame.AppendFrame(c.scratch[:0], ch, b); err != nil {
		// Only our own values are encoded here: a bug, not bad input.
		c.log.Error("amqp: encoding a frame failed", "err", err, "frame", fmt.Sprintf("%T", b))
		c.werr = err
		return
	}
	if c.peerMaxFrame != 0 && len(c.scratch) > int(c.peerMaxFrame) {
		if _, isClose := b.(*frame.Close); !isClose {
			// Only a transfer can be split; anything else this large
			// (an attach with big properties, say) cannot be sent at all.
			c.closeWith(Errorf(frame.CondFrameSizeTooSmall, "a %d-byte %T does not fit the peer's max-frame-size %d",
				len(c.scratch), b, c.peerMaxFrame))
			return
		}
	}
	c.write(c.scratch)
}

// writeTransfer writes one transfer frame whose payload is not copied
// into the scratch buffer.
func (c *Conn) writeTransfer(ch uint16, t *frame.Transfer, payload []byte) {
	if c.werr != nil || c.closeSent {
		return
	}
	var err error
	c.scratch = append(c.scratch[:0], 0, 0, 0, 0, 2, frame.TypeAMQP, byte(ch>>8), byte(ch))
	if c.scratch, err = t.AppendPerformative(c.scratch); err != nil {
		c.log.Error("amqp: encoding a transfer failed", "err", err)
		c.werr = err
		return
	}
	binary.BigEndian.PutUint32(c.scratch, uint32(len(c.scratch)+len(payload)))
	c.write(c.scratch)
	c.write(payload)
}

func (c *Conn) write(p []byte) {
	if c.werr != nil {
		return
	}
	if _, err := c.bw.Write(p); err != nil {
		c.werr = err
	}
	c.wrote = true
}

func (c *Conn) flush() {
	if c.werr == nil && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			c.werr = err
		}
	}
}

// markReady queues a link we send on for the pump.
func (c *Conn) markReady(l *Link) {
	if !l.inReady && l.state == linkAttached {
		l.inReady = true
		c.ready = append(c.ready, l)
	}
}

// pump writes deliveries for ready links, round robin, until none can make
// progress (no credit, no window, nothing queued).
func (c *Conn) pump() {
	for len(c.ready) > 0 && c.werr == nil && !c.closeSent {
		for i := 0; i < len(c.ready); {
			l := c.ready[i]
			if l.sess.pumpLink(l, pumpBatch) {
				i++
				continue
			}
			l.inReady = false
			last := len(c.ready) - 1
			c.ready[i] = c.ready[last]
			c.ready[last] = nil
			c.ready = c.ready[:last]
		}
	}
}
