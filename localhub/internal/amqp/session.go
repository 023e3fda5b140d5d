package amqp

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"runtime/debug"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// outgoingWindow is the outgoing-window we announce: we never hold
// transfers back for our own sake, only for the peer's incoming-window.
const outgoingWindow = math.MaxInt32

// maxTransferOverhead bounds the encoded transfer performative we send
// (handle, delivery-id, an 8-byte tag, format, settled, more: 35 bytes at
// most), so payload pieces can be sized without encoding twice.
const maxTransferOverhead = 48

// SessionError is why a session ended, as a LinkError's Cause reports it.
type SessionError struct {
	Remote, Local *Error
}

func (e *SessionError) Error() string {
	switch {
	case e.Remote != nil:
		return "amqp: session ended by peer: " + e.Remote.Error()
	case e.Local != nil:
		return "amqp: session ended: " + e.Local.Error()
	}
	return "amqp: session ended"
}

// session is one session's state; only the connection goroutine uses it.
type session struct {
	c             *Conn
	remote, local uint16

	nextIncomingID       uint32
	incomingWindow       uint32 // what is left of the window we granted
	nextOutgoingID       uint32
	remoteIncomingWindow uint32 // transfer frames we may still send
	remoteOutgoingWindow uint32
	nextDeliveryID       uint32
	handleMax            uint32 // the peer's: bounds our handles

	byRemote     map[uint32]*Link
	byLocal      map[uint32]*Link
	unsettledOut map[uint32]*Link // deliveries we sent unsettled
	endSent      bool
}

func newSession(c *Conn, remote, local uint16, b *frame.Begin) *session {
	return &session{
		c:                    c,
		remote:               remote,
		local:                local,
		nextIncomingID:       b.NextOutgoingID,
		incomingWindow:       c.opts.SessionWindow,
		remoteIncomingWindow: b.IncomingWindow,
		remoteOutgoingWindow: b.OutgoingWindow,
		handleMax:            b.HandleMax,
		byRemote:             map[uint32]*Link{},
		byLocal:              map[uint32]*Link{},
		unsettledOut:         map[uint32]*Link{},
	}
}

// handle processes one frame for the session. It reports whether the
// frame's receive budget now belongs to a delivery.
func (s *session) handle(b frame.Body, held int) (keep bool) {
	if s.endSent {
		if _, ok := b.(*frame.End); ok {
			s.remove() // the peer's answer to our end
		}
		return false
	}
	switch b := b.(type) {
	case *frame.Attach:
		s.handleAttach(b)
	case *frame.Flow:
		s.handleFlow(b)
	case *frame.Transfer:
		return s.handleTransfer(b, held)
	case *frame.Disposition:
		s.handleDisposition(b)
	case *frame.Detach:
		s.handleDetach(b)
	case *frame.End:
		s.c.writeFrame(s.local, &frame.End{})
		s.finishLinks(&LinkError{Cause: &SessionError{Remote: b.Error}})
		s.remove()
	}
	return false
}

// end ends the session with an error; the channel stays taken until the
// peer answers.
func (s *session) end(err *Error) {
	s.c.log.Info("amqp: ending session", "channel", s.remote, "err", err)
	s.c.writeFrame(s.local, &frame.End{Error: err})
	s.endSent = true
	s.finishLinks(&LinkError{Cause: &SessionError{Local: err}})
}

func (s *session) remove() {
	delete(s.c.sessions, s.remote)
	delete(s.c.localChans, s.local)
}

// finishLinks ends every link of the session for the application and
// forgets them.
func (s *session) finishLinks(err *LinkError) {
	for _, l := range s.byRemote {
		l.state = linkGone
		l.finish(err)
		s.c.nLinks--
	}
	clear(s.byRemote)
	clear(s.byLocal)
	clear(s.unsettledOut)
}

func (s *session) handleAttach(a *frame.Attach) {
	if a.Handle >= uint32(s.c.opts.MaxLinks) {
		s.end(Errorf(frame.CondNotAllowed, "handle %d exceeds handle-max %d", a.Handle, s.c.opts.MaxLinks-1))
		return
	}
	if s.byRemote[a.Handle] != nil {
		s.end(Errorf(frame.CondHandleInUse, "handle %d is in use", a.Handle))
		return
	}
	local := uint32(0)
	for s.byLocal[local] != nil {
		local++
	}
	if local > s.handleMax {
		s.end(Errorf(frame.CondResourceLimitExceeded, "the peer's handle-max %d leaves no handle for link %q", s.handleMax, a.Name))
		return
	}
	l := newLink(s, a, local)
	s.byRemote[a.Handle] = l
	s.byLocal[local] = l
	s.c.nLinks++
	if s.c.nLinks > s.c.opts.MaxLinks {
		s.refuse(l, Errorf(frame.CondResourceLimitExceeded, "more than %d links on one connection", s.c.opts.MaxLinks))
		return
	}
	opts, err := s.c.callAttach(l)
	if err != nil {
		s.refuse(l, asAMQPError(err))
		return
	}
	s.accept(l, opts)
}

func newLink(s *session, a *frame.Attach, local uint32) *Link {
	ctx, cancel := context.WithCancel(s.c.ctx)
	return &Link{
		c:            s.c,
		peer:         a,
		role:         !a.Role,
		ctx:          ctx,
		cancel:       cancel,
		done:         make(chan struct{}),
		attached:     make(chan struct{}),
		sess:         s,
		localHandle:  local,
		remoteHandle: a.Handle,
	}
}

func (c *Conn) callAttach(l *Link) (opts LinkOptions, err error) {
	if c.opts.Attach == nil {
		return opts, Errorf(frame.CondNotFound, "no node %q", l.Address())
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("amqp: attach handler panicked", "panic", r, "stack", string(debug.Stack()))
			err = Errorf(frame.CondInternalError, "attach of link %q failed", l.Name())
		}
	}()
	return c.opts.Attach(c.ctx, l)
}

// refuse answers an attach with null termini and detaches at once, as
// go-amqp and Microsoft.Azure.Amqp expect of a refused link.
func (s *session) refuse(l *Link, err *Error) {
	s.c.log.Debug("amqp: refusing link", "link", l.Name(), "address", l.Address(), "err", err)
	s.c.writeFrame(s.local, &frame.Attach{Name: l.peer.Name, Handle: l.localHandle, Role: l.role})
	s.c.writeFrame(s.local, &frame.Detach{Handle: l.localHandle, Closed: true, Error: err})
	l.state = linkDetaching
	l.finish(&LinkError{Local: err})
}

func (s *session) accept(l *Link, opts LinkOptions) {
	if opts.Credit == 0 {
		opts.Credit = DefaultCredit
	}
	if opts.MaxMessageSize == 0 {
		opts.MaxMessageSize = s.c.opts.MaxMessageSize
	}
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = DefaultLinkSendBuffer
	}
	l.opts = opts
	a := l.peer
	switch {
	case a.SndSettleMode != nil:
		l.sndSettle = *a.SndSettleMode
	case opts.SenderSettleMode != nil:
		l.sndSettle = *opts.SenderSettleMode
	case l.role == frame.RoleSender:
		l.sndSettle = frame.SenderSettleSettled
	default:
		l.sndSettle = frame.SenderSettleMixed
	}
	if a.RcvSettleMode != nil {
		l.rcvSettle = *a.RcvSettleMode
	}
	snd, rcv := l.sndSettle, l.rcvSettle
	reply := &frame.Attach{
		Name:                a.Name,
		Handle:              l.localHandle,
		Role:                l.role,
		SndSettleMode:       &snd,
		RcvSettleMode:       &rcv,
		Source:              a.Source,
		Target:              a.Target,
		MaxMessageSize:      opts.MaxMessageSize,
		OfferedCapabilities: opts.OfferedCapabilities,
		DesiredCapabilities: opts.DesiredCapabilities,
		Properties:          opts.Properties,
	}
	if opts.Source != nil {
		reply.Source = opts.Source
	}
	if opts.Target != nil {
		reply.Target = opts.Target
	}
	if reply.Source == nil {
		reply.Source = &frame.Source{} // a null terminus would read as a refusal
	}
	if reply.Target == nil {
		reply.Target = &frame.Target{}
	}
	if l.role == frame.RoleSender {
		l.sq = newSendQueue(opts.SendBuffer, func() { s.c.notify(l) })
	} else {
		l.deliveryCount = a.InitialDeliveryCount
		l.recvQ = make(chan *Delivery, opts.Credit)
	}
	s.c.writeFrame(s.local, reply)
	l.state = linkAttached
	s.c.mu.Lock()
	s.c.links[l] = struct{}{}
	s.c.mu.Unlock()
	close(l.attached)
	if l.role == frame.RoleReceiver {
		s.refill(l)
	}
}

// writeFlow sends a flow with the session's state (and f's link fields);
// it renews the incoming window we grant.
func (s *session) writeFlow(f *frame.Flow) {
	s.incomingWindow = s.c.opts.SessionWindow
	nid := s.nextIncomingID
	f.NextIncomingID = &nid
	f.IncomingWindow = s.incomingWindow
	f.NextOutgoingID = s.nextOutgoingID
	f.OutgoingWindow = outgoingWindow
	s.c.writeFrame(s.local, f)
}

// sendLinkFlow sends l's link state. Every link flow carries
// delivery-count and link-credit: go-amqp dereferences both.
func (s *session) sendLinkFlow(l *Link) {
	h, dc, lc := l.localHandle, l.deliveryCount, l.linkCredit
	f := &frame.Flow{Handle: &h, DeliveryCount: &dc, LinkCredit: &lc}
	if l.role == frame.RoleSender {
		avail := uint32(l.sq.len())
		f.Available = &avail
		f.Drain = l.drain
	}
	s.writeFlow(f)
}

func (s *session) handleFlow(f *frame.Flow) {
	before := s.remoteIncomingWindow
	next := uint32(0) // our initial outgoing id
	if f.NextIncomingID != nil {
		next = *f.NextIncomingID
	}
	s.remoteIncomingWindow = next + f.IncomingWindow - s.nextOutgoingID
	if s.remoteIncomingWindow > math.MaxInt32 { // the peer counted past what we sent
		s.remoteIncomingWindow = 0
	}
	s.remoteOutgoingWindow = f.OutgoingWindow
	s.nextIncomingID = f.NextOutgoingID
	if before == 0 && s.remoteIncomingWindow > 0 {
		for _, l := range s.byLocal {
			if l.role == frame.RoleSender {
				s.c.markReady(l)
			}
		}
	}
	if f.Handle == nil {
		if f.Echo {
			s.writeFlow(&frame.Flow{})
		}
		return
	}
	l := s.byRemote[*f.Handle]
	if l == nil {
		s.end(Errorf(frame.CondUnattachedHandle, "flow for handle %d, which is not attached", *f.Handle))
		return
	}
	if l.state != linkAttached {
		return
	}
	if l.role == frame.RoleSender {
		// link-credit(snd) := delivery-count(rcv) + link-credit(rcv) - delivery-count(snd)
		dc := uint32(0) // our initial-delivery-count, for a peer that has not seen it yet
		if f.DeliveryCount != nil {
			dc = *f.DeliveryCount
		}
		if f.LinkCredit != nil {
			l.linkCredit = credit(dc + *f.LinkCredit - l.deliveryCount)
		}
		l.drain = f.Drain
		l.drainPending = f.Drain
		if f.Echo {
			s.sendLinkFlow(l)
		}
		s.c.markReady(l)
		return
	}
	// The peer sends on l: it may have advanced its delivery-count (after
	// a drain) or echo ours.
	if f.DeliveryCount != nil {
		limit := l.deliveryCount + l.linkCredit
		l.deliveryCount = *f.DeliveryCount
		l.linkCredit = credit(limit - l.deliveryCount)
	}
	if f.Echo {
		s.sendLinkFlow(l)
	}
}

// maybeRenewWindow grants the peer a fresh incoming-window once half of
// it is used, unless the connection's receive buffer is more than half
// full: then the peer must wait until the application catches up, and a
// peer that sends anyway gets amqp:session:window-violation.
func (s *session) maybeRenewWindow() {
	if s.endSent || s.incomingWindow > s.c.opts.SessionWindow/2 {
		return
	}
	if s.c.inBudget.inUse() > s.c.opts.ReceiveBuffer/2 {
		return
	}
	s.writeFlow(&frame.Flow{})
}

// credit reads a serial-number difference as a credit, treating a
// negative one (a peer ahead of what it was granted) as none.
func credit(diff uint32) uint32 {
	if diff > math.MaxInt32 {
		return 0
	}
	return diff
}

func (s *session) handleTransfer(t *frame.Transfer, held int) bool {
	if s.incomingWindow == 0 {
		s.end(Errorf(frame.CondWindowViolation, "transfer beyond the incoming-window of %d frames", s.c.opts.SessionWindow))
		return false
	}
	s.incomingWindow--
	s.nextIncomingID++
	if s.remoteOutgoingWindow > 0 {
		s.remoteOutgoingWindow--
	}
	defer s.maybeRenewWindow()
	l := s.byRemote[t.Handle]
	if l == nil {
		s.end(Errorf(frame.CondUnattachedHandle, "transfer for handle %d, which is not attached", t.Handle))
		return false
	}
	if l.state != linkAttached {
		return false // in flight when we detached
	}
	if l.role == frame.RoleSender {
		s.detachLink(l, Errorf(frame.CondNotAllowed, "transfer on a link where the peer receives"))
		return false
	}
	return s.receive(l, t, held)
}

// receive adds one transfer frame to the delivery l is receiving.
func (s *session) receive(l *Link, t *frame.Transfer, held int) bool {
	d := l.in
	if d == nil {
		if t.DeliveryID == nil || t.DeliveryTag == nil {
			s.detachLink(l, Errorf(frame.CondNotAllowed, "first transfer of a delivery without delivery-id or delivery-tag"))
			return false
		}
		if l.linkCredit == 0 {
			s.detachLink(l, Errorf(frame.CondTransferLimitExceeded, "transfer without link credit (delivery-count %d)", l.deliveryCount))
			return false
		}
		l.linkCredit--
		l.deliveryCount++
		d = &inDelivery{id: *t.DeliveryID, tag: t.DeliveryTag, settled: t.Settled}
		if t.MessageFormat != nil {
			d.format = *t.MessageFormat
		}
		l.in = d
	} else if t.DeliveryID != nil && *t.DeliveryID != d.id {
		s.detachLink(l, Errorf(frame.CondNotAllowed, "transfer for delivery %d while delivery %d is incomplete", *t.DeliveryID, d.id))
		return false
	}
	d.settled = d.settled || t.Settled
	if t.Aborted {
		s.c.inBudget.give(d.held)
		l.in = nil
		s.refill(l)
		return false
	}
	if d.discard {
		if !t.More {
			l.in = nil
			s.refill(l)
		}
		return false
	}
	d.size += len(t.Payload)
	if uint64(d.size) > l.opts.MaxMessageSize {
		s.c.inBudget.give(d.held)
		d.held, d.chunks = 0, nil
		if d.settled {
			s.detachLink(l, Errorf(frame.CondMessageSizeExceeded, "message larger than max-message-size %d", l.opts.MaxMessageSize))
			return false
		}
		s.c.writeFrame(s.local, &frame.Disposition{Role: frame.RoleReceiver, First: d.id, Settled: true,
			State: &frame.Rejected{Error: Errorf(frame.CondMessageSizeExceeded, "message larger than max-message-size %d", l.opts.MaxMessageSize)}})
		d.discard = true
		if !t.More {
			l.in = nil
			s.refill(l)
		}
		return false
	}
	d.chunks = append(d.chunks, t.Payload)
	d.held += held
	if t.More {
		return true
	}
	l.in = nil
	payload := d.chunks[0]
	if len(d.chunks) > 1 {
		payload = make([]byte, 0, d.size)
		for _, c := range d.chunks {
			payload = append(payload, c...)
		}
		s.c.inBudget.force(d.size)
		s.c.inBudget.give(d.held)
		d.held = d.size
	}
	dl := &Delivery{link: l, Payload: payload, Format: d.format, Tag: d.tag, Settled: d.settled, id: d.id}
	dl.held.Store(int64(d.held))
	select {
	case l.recvQ <- dl:
	default:
		// Credit never exceeds the queue's free room; reaching this is a bug.
		s.c.inBudget.give(d.held)
		s.detachLink(l, Errorf(frame.CondInternalError, "receive queue full"))
	}
	return true
}

// refill grants credit up to the room left in l's receive queue, once half
// of it has been used, so a busy link sends one flow per half-window.
func (s *session) refill(l *Link) {
	if l.role != frame.RoleReceiver || l.state != linkAttached {
		return
	}
	queued := len(l.recvQ)
	if l.in != nil {
		queued++
	}
	want := int(l.opts.Credit) - queued
	if want > int(l.linkCredit) && l.linkCredit*2 <= l.opts.Credit {
		l.linkCredit = uint32(want)
		s.sendLinkFlow(l)
	}
}

func (s *session) handleDisposition(d *frame.Disposition) {
	if d.Role == frame.RoleSender {
		return // the peer settling deliveries it sent: we keep no state for them
	}
	last := d.First
	if d.Last != nil {
		last = *d.Last
	}
	settle := func(id uint32, l *Link) {
		if !d.Settled {
			// rcv-settle-mode second: the peer waits for us to settle.
			s.c.writeFrame(s.local, &frame.Disposition{Role: frame.RoleSender, First: id, Settled: true, State: d.State})
		}
		delete(s.unsettledOut, id)
		l.unsettledOut--
		s.c.markReady(l)
	}
	if span := last - d.First; uint64(span) >= uint64(len(s.unsettledOut)) {
		for id, l := range s.unsettledOut {
			if id-d.First <= span {
				settle(id, l)
			}
		}
		return
	}
	for id := d.First; ; id++ {
		if l := s.unsettledOut[id]; l != nil {
			settle(id, l)
		}
		if id == last {
			break
		}
	}
}

func (s *session) handleDetach(d *frame.Detach) {
	l := s.byRemote[d.Handle]
	if l == nil {
		s.end(Errorf(frame.CondUnattachedHandle, "detach for handle %d, which is not attached", d.Handle))
		return
	}
	if l.state == linkAttached {
		s.c.writeFrame(s.local, &frame.Detach{Handle: l.localHandle, Closed: d.Closed})
		l.finish(&LinkError{Remote: d.Error})
	}
	s.removeLink(l)
}

// detachLink detaches l with err; its handle stays taken until the peer
// answers.
func (s *session) detachLink(l *Link, err *Error) {
	if l.state != linkAttached {
		return
	}
	if err != nil {
		s.c.log.Info("amqp: detaching link", "link", l.Name(), "address", l.Address(), "err", err)
	}
	s.c.writeFrame(s.local, &frame.Detach{Handle: l.localHandle, Closed: true, Error: err})
	l.state = linkDetaching
	l.finish(&LinkError{Local: err})
	s.forgetOutgoing(l)
}

func (s *session) removeLink(l *Link) {
	delete(s.byRemote, l.remoteHandle)
	delete(s.byLocal, l.localHandle)
	s.forgetOutgoing(l)
	l.state = linkGone
	s.c.nLinks--
}

func (s *session) forgetOutgoing(l *Link) {
	if l.unsettledOut == 0 {
		return
	}
	for id, o := range s.unsettledOut {
		if o == l {
			delete(s.unsettledOut, id)
		}
	}
	l.unsettledOut = 0
}

// linkWork does what the application asked of l: settlements, a detach,
// more credit, messages to send.
func (s *session) linkWork(l *Link) {
	if l.state != linkAttached {
		return
	}
	l.mu.Lock()
	detach, derr := l.detachReq, l.detachErr
	settles := l.settles
	l.settles = nil
	l.mu.Unlock()
	if len(settles) > 0 {
		s.settle(l, settles)
	}
	if detach {
		s.detachLink(l, derr)
		return
	}
	if l.role == frame.RoleReceiver {
		s.refill(l)
		s.maybeRenewWindow()
	} else {
		s.c.markReady(l)
	}
}

// settle sends dispositions, one per run of consecutive accepted
// deliveries.
func (s *session) settle(l *Link, list []settlement) {
	settled := l.rcvSettle == frame.ReceiverSettleFirst
	for i := 0; i < len(list); {
		first, last := list[i].id, list[i].id
		_, accepted := list[i].state.(*frame.Accepted)
		j := i + 1
		for accepted && j < len(list) && list[j].id == last+1 {
			if _, ok := list[j].state.(*frame.Accepted); !ok {
				break
			}
			last = list[j].id
			j++
		}
		dispo := &frame.Disposition{Role: frame.RoleReceiver, First: first, Settled: settled, State: list[i].state}
		if last != first {
			dispo.Last = &last
		}
		s.c.writeFrame(s.local, dispo)
		i = j
	}
}

// pumpLink sends up to max deliveries queued on l as credit and the
// session window allow. It reports whether l may be able to send more.
func (s *session) pumpLink(l *Link, max int) bool {
	for sent := 0; sent < max; {
		if l.state != linkAttached || s.endSent || s.c.closeSent || s.c.werr != nil || s.remoteIncomingWindow == 0 {
			return false
		}
		if !l.out.active {
			if l.linkCredit == 0 {
				s.completeDrain(l)
				return false
			}
			if l.sndSettle == frame.SenderSettleUnsettled && l.unsettledOut >= maxUnsettledOut {
				return false
			}
			p, ok := l.sq.pop()
			if !ok {
				s.completeDrain(l)
				return false
			}
			s.c.outBudget.give(len(p))
			l.out = outDelivery{active: true, payload: p, id: s.nextDeliveryID, tag: l.nextTag,
				settled: l.sndSettle != frame.SenderSettleUnsettled}
			s.nextDeliveryID++
			l.nextTag++
			l.deliveryCount++
			l.linkCredit--
			if !l.out.settled {
				s.unsettledOut[l.out.id] = l
				l.unsettledOut++
			}
		}
		if s.sendFrame(l) {
			sent++
		}
	}
	return true
}

// sendFrame writes the next frame of l's current delivery, split at the
// peer's max-frame-size; it reports whether the delivery is complete.
func (s *session) sendFrame(l *Link) bool {
	o := &l.out
	t := frame.Transfer{Handle: l.localHandle, Settled: o.settled}
	var tag [8]byte
	id, format := o.id, uint32(0)
	if o.off == 0 {
		binary.BigEndian.PutUint64(tag[:], o.tag)
		t.DeliveryID, t.DeliveryTag, t.MessageFormat = &id, tag[:], &format
	}
	rest := len(o.payload) - o.off
	n := min(rest, int(s.c.peerMaxFrame)-frame.HeaderSize-maxTransferOverhead)
	t.More = n < rest
	s.c.writeTransfer(s.local, &t, o.payload[o.off:o.off+n])
	o.off += n
	s.nextOutgoingID++
	s.remoteIncomingWindow--
	if t.More {
		return false
	}
	l.out = outDelivery{}
	return true
}

// completeDrain answers a drain once nothing more can be sent: unused
// credit is spent by advancing delivery-count, as the spec's drain
// requires, and a flow with drain set tells the peer. go-amqp drains with
// a link-credit of 0 and waits for that flow.
func (s *session) completeDrain(l *Link) {
	if !l.drainPending {
		return
	}
	l.drainPending = false
	l.deliveryCount += l.linkCredit
	l.linkCredit = 0
	s.sendLinkFlow(l)
}

func (s *session) String() string {
	return fmt.Sprintf("session %d/%d", s.remote, s.local)
}
