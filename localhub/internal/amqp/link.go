package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// LinkOptions is what Options.Attach returns to accept a link: what our
// attach reply carries and how the link is buffered.
type LinkOptions struct {
	// Properties, OfferedCapabilities and DesiredCapabilities go into our
	// attach reply.
	Properties          codec.Map
	OfferedCapabilities []codec.Symbol
	DesiredCapabilities []codec.Symbol
	// Source and Target replace the peer's termini in the reply; by
	// default they are echoed.
	Source *frame.Source
	Target *frame.Target
	// SenderSettleMode is what we answer when the peer asked for no
	// snd-settle-mode. By default: settled on links we send on (Event Hubs
	// clients need pre-settled events), mixed on links we receive on.
	// A mode the peer asked for is always echoed.
	SenderSettleMode *frame.SenderSettleMode
	// Credit bounds the messages that may wait for Receive on a link we
	// receive on; it is the credit we grant. Default 100.
	Credit uint32
	// MaxMessageSize is the max-message-size of a link we receive on;
	// larger messages are refused. Default Options.MaxMessageSize.
	MaxMessageSize uint64
	// SendBuffer bounds the bytes waiting for credit on a link we send on;
	// Send blocks past it. Default 256 KiB.
	SendBuffer int
}

// maxUnsettledOut bounds the deliveries we send unsettled (only when a
// peer insists on snd-settle-mode unsettled) before waiting for its
// dispositions.
const maxUnsettledOut = 1024

type linkState uint8

const (
	linkAttached  linkState = iota
	linkDetaching           // we sent detach and wait for the peer's
	linkGone
)

// Link is one attached link. Its methods are safe for concurrent use.
type Link struct {
	c    *Conn
	peer *frame.Attach // the attach the peer sent; read-only
	role frame.Role    // our role
	opts LinkOptions

	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	attached chan struct{} // closed once sq or recvQ exist

	// Set before done is closed.
	errMu sync.Mutex
	err   error

	// Application to connection goroutine.
	dirty     atomic.Bool
	mu        sync.Mutex
	detachReq bool
	detachErr *Error
	settles   []settlement

	sq    *sendQueue     // links we send on
	recvQ chan *Delivery // links we receive on; capacity = credit

	// Owned by the connection goroutine.
	sess          *session
	localHandle   uint32
	remoteHandle  uint32
	state         linkState
	sndSettle     frame.SenderSettleMode
	rcvSettle     frame.ReceiverSettleMode
	deliveryCount uint32
	linkCredit    uint32
	drain         bool // the peer's last flow asked to drain
	drainPending  bool // ... and we have not answered it yet
	inReady       bool
	out           outDelivery // delivery being sent, when out.active
	nextTag       uint64
	unsettledOut  int
	in            *inDelivery // delivery being received
}

type settlement struct {
	id    uint32
	state frame.DeliveryState
}

type outDelivery struct {
	active  bool
	payload []byte
	off     int
	id      uint32
	tag     uint64
	settled bool
}

type inDelivery struct {
	id      uint32
	tag     []byte
	format  uint32
	settled bool
	chunks  [][]byte
	size    int // payload bytes so far
	held    int // budget held by the frames
	discard bool
}

// LinkError is why a link ended, as Err, Send and Receive report it.
type LinkError struct {
	// Remote is the error the peer detached with (nil for a clean detach
	// by the peer); Local the one we detached with.
	Remote, Local *Error
	// Cause is set when the link ended with its session or connection.
	Cause error
}

func (e *LinkError) Error() string {
	switch {
	case e.Remote != nil:
		return "amqp: link detached by peer: " + e.Remote.Error()
	case e.Local != nil:
		return "amqp: link detached: " + e.Local.Error()
	case e.Cause != nil:
		return "amqp: link ended: " + e.Cause.Error()
	}
	return "amqp: link detached"
}

func (e *LinkError) Unwrap() error { return e.Cause }

// Conn returns the link's connection.
func (l *Link) Conn() *Conn { return l.c }

// Peer returns the attach the peer sent, as decoded. Do not modify it.
func (l *Link) Peer() *frame.Attach { return l.peer }

// Name is the link name.
func (l *Link) Name() string { return l.peer.Name }

// Role is our role: frame.RoleSender on links where we send (the peer
// receives, e.g. an Event Hubs consumer), frame.RoleReceiver where we
// receive.
func (l *Link) Role() frame.Role { return l.role }

// Source is the peer's source terminus (with its filters); nil if null.
func (l *Link) Source() *frame.Source { return l.peer.Source }

// Target is the peer's target terminus; nil if null.
func (l *Link) Target() *frame.Target { return l.peer.Target }

// Address is the address of the node at our end: the source address on
// links we send on, the target address on links we receive on.
func (l *Link) Address() string {
	if l.role == frame.RoleSender {
		if l.peer.Source != nil {
			return l.peer.Source.Address
		}
		return ""
	}
	if l.peer.Target != nil {
		return l.peer.Target.Address
	}
	return ""
}

// Properties are the peer's link properties (e.g. com.microsoft:epoch as
// int64).
func (l *Link) Properties() codec.Map { return l.peer.Properties }

// DesiredCapabilities are the capabilities the peer asked for.
func (l *Link) DesiredCapabilities() []codec.Symbol { return l.peer.DesiredCapabilities }

// Context is cancelled when the link ends.
func (l *Link) Context() context.Context { return l.ctx }

// Done is closed when the link has ended.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err is why the link ended (a *LinkError), or nil while it is attached.
func (l *Link) Err() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	return l.err
}

// Detach ends the link, sending the peer a detach with err (nil for a
// clean detach): amqp:link:stolen, for example, when a consumer with a
// higher epoch takes over. It does not wait; Done is closed once the link
// has ended.
func (l *Link) Detach(err *Error) {
	l.mu.Lock()
	if !l.detachReq {
		l.detachReq, l.detachErr = true, err
	}
	l.mu.Unlock()
	l.c.notify(l)
}

var (
	errNotSender   = errors.New("amqp: Send on a link where the peer sends")
	errNotReceiver = errors.New("amqp: Receive on a link where the peer receives")
)

// Send queues an encoded message (see codec.Message.AppendBinary) to go to
// the peer as credit allows: pre-settled, unless the peer insisted on
// unsettled deliveries. It blocks while the link's or the connection's
// send buffer is full, so a consumer that grants no credit slows the
// caller down instead of growing memory. p must not be modified after.
func (l *Link) Send(ctx context.Context, p []byte) error {
	if l.role != frame.RoleSender {
		return errNotSender
	}
	if max := l.peer.MaxMessageSize; max > 0 && uint64(len(p)) > max {
		return Errorf(frame.CondMessageSizeExceeded, "message of %d bytes exceeds the peer's max-message-size %d", len(p), max)
	}
	if err := l.waitAttached(ctx); err != nil {
		return err
	}
	if err := l.c.outBudget.take(ctx, l.done, len(p)); err != nil {
		if errors.Is(err, errConnClosed) {
			return l.Err()
		}
		return err
	}
	if err := l.sq.push(ctx, p); err != nil {
		l.c.outBudget.give(len(p))
		return err
	}
	return nil
}

// SendMessage encodes m and sends it.
func (l *Link) SendMessage(ctx context.Context, m *codec.Message) error {
	p, err := m.MarshalBinary()
	if err != nil {
		return err
	}
	return l.Send(ctx, p)
}

// Receive returns the next message the peer sent on this link, whole
// (reassembled from its frames), waiting for one. After the link ends it
// returns the link's error.
func (l *Link) Receive(ctx context.Context) (*Delivery, error) {
	if l.role != frame.RoleReceiver {
		return nil, errNotReceiver
	}
	if err := l.waitAttached(ctx); err != nil {
		return nil, err
	}
	select {
	case d := <-l.recvQ:
		l.took(d)
		return d, nil
	case <-l.done:
		return nil, l.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// waitAttached waits until our attach reply is out (the application may
// use a link from the goroutines it starts in Options.Attach).
func (l *Link) waitAttached(ctx context.Context) error {
	select {
	case <-l.attached:
		return l.Err()
	case <-l.done:
		return l.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Link) took(d *Delivery) {
	if n := d.held.Swap(0); n > 0 {
		l.c.inBudget.give(int(n))
	}
	l.c.notify(l) // the freed slot may be granted as credit
}

// Delivery is a message received on a link.
type Delivery struct {
	link *Link
	// Payload is the encoded message (codec.Message.UnmarshalBinary
	// decodes it).
	Payload []byte
	// Format is the message-format of the transfer (0, or 0x80013700 for
	// an Event Hubs batch).
	Format uint32
	// Tag is the delivery-tag.
	Tag []byte
	// Settled reports that the peer sent it pre-settled: no outcome is
	// expected and Accept and Reject do nothing.
	Settled bool

	id      uint32
	held    atomic.Int64
	settled atomic.Bool
}

// Message decodes the payload.
func (d *Delivery) Message() (*codec.Message, error) {
	m := &codec.Message{}
	if err := m.UnmarshalBinary(d.Payload); err != nil {
		return nil, err
	}
	return m, nil
}

// Accept settles the delivery as accepted.
func (d *Delivery) Accept() { d.Settle(&frame.Accepted{}) }

// Reject settles the delivery as rejected with err.
func (d *Delivery) Reject(err *Error) { d.Settle(&frame.Rejected{Error: err}) }

// Release settles the delivery as released (not processed).
func (d *Delivery) Release() { d.Settle(&frame.Released{}) }

// Settle sends the peer the outcome of the delivery, once; later calls,
// and calls for pre-settled deliveries or ended links, do nothing. It
// does not wait for the disposition to be written.
func (d *Delivery) Settle(state frame.DeliveryState) {
	if d.Settled || !d.settled.CompareAndSwap(false, true) {
		return
	}
	l := d.link
	l.mu.Lock()
	l.settles = append(l.settles, settlement{id: d.id, state: state})
	l.mu.Unlock()
	l.c.notify(l)
}

// finish ends the link for the application: the error is recorded, Done
// closes, senders and receivers fail, buffered bytes are returned to the
// connection's budgets. Connection goroutine only.
func (l *Link) finish(err *LinkError) {
	select {
	case <-l.done:
		return
	default:
	}
	l.errMu.Lock()
	l.err = err
	l.errMu.Unlock()
	if l.sq != nil {
		l.c.outBudget.give(l.sq.close(err))
		if l.out.active {
			l.out = outDelivery{}
		}
	}
	if l.in != nil {
		l.c.inBudget.give(l.in.held)
		l.in = nil
	}
	if l.recvQ != nil {
	drain:
		for {
			select {
			case d := <-l.recvQ:
				if n := d.held.Swap(0); n > 0 {
					l.c.inBudget.give(int(n))
				}
			default:
				break drain
			}
		}
	}
	l.c.mu.Lock()
	delete(l.c.links, l)
	l.c.mu.Unlock()
	l.cancel()
	close(l.done)
}

func (l *Link) String() string {
	return fmt.Sprintf("link %q (%s, %s)", l.peer.Name, l.role, l.Address())
}
