package frame

import (
	"math"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

// Role is a link endpoint's role: false is sender, true is receiver.
type Role bool

// Roles.
const (
	RoleSender   Role = false
	RoleReceiver Role = true
)

func (r Role) String() string {
	if r == RoleReceiver {
		return "receiver"
	}
	return "sender"
}

// SenderSettleMode is a link's snd-settle-mode.
type SenderSettleMode uint8

// Sender settle modes.
const (
	SenderSettleUnsettled SenderSettleMode = 0
	SenderSettleSettled   SenderSettleMode = 1
	SenderSettleMixed     SenderSettleMode = 2
)

// ReceiverSettleMode is a link's rcv-settle-mode.
type ReceiverSettleMode uint8

// Receiver settle modes.
const (
	ReceiverSettleFirst  ReceiverSettleMode = 0
	ReceiverSettleSecond ReceiverSettleMode = 1
)

// Open is the open performative.
type Open struct {
	ContainerID string
	Hostname    string
	// MaxFrameSize decodes as math.MaxUint32 when absent.
	MaxFrameSize uint32
	// ChannelMax decodes as math.MaxUint16 when absent.
	ChannelMax uint16
	// IdleTimeout is in milliseconds; 0 means none.
	IdleTimeout         uint32
	OutgoingLocales     []codec.Symbol
	IncomingLocales     []codec.Symbol
	OfferedCapabilities []codec.Symbol
	DesiredCapabilities []codec.Symbol
	Properties          codec.Map
}

func (*Open) FrameType() uint8 { return TypeAMQP }

func (o *Open) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descOpen)
	w.String(o.ContainerID)
	w.String(o.Hostname)
	w.Uint(o.MaxFrameSize)
	w.Ushort(o.ChannelMax)
	uintOrNull(&w, o.IdleTimeout)
	w.Symbols(o.OutgoingLocales)
	w.Symbols(o.IncomingLocales)
	w.Symbols(o.OfferedCapabilities)
	w.Symbols(o.DesiredCapabilities)
	w.Map(o.Properties)
	return w.End()
}

func parseOpen(r *codec.ListReader) (*Open, error) {
	r.Name("open")
	o := &Open{MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}
	mandatory(r, r.String(&o.ContainerID), "container-id")
	r.String(&o.Hostname)
	r.Uint(&o.MaxFrameSize)
	r.Ushort(&o.ChannelMax)
	r.Uint(&o.IdleTimeout)
	r.Symbols(&o.OutgoingLocales)
	r.Symbols(&o.IncomingLocales)
	r.Symbols(&o.OfferedCapabilities)
	r.Symbols(&o.DesiredCapabilities)
	r.Map(&o.Properties)
	return o, r.Err()
}

// Begin is the begin performative.
type Begin struct {
	// RemoteChannel is set when answering a peer's begin.
	RemoteChannel  *uint16
	NextOutgoingID uint32
	IncomingWindow uint32
	OutgoingWindow uint32
	// HandleMax decodes as math.MaxUint32 when absent.
	HandleMax           uint32
	OfferedCapabilities []codec.Symbol
	DesiredCapabilities []codec.Symbol
	Properties          codec.Map
}

func (*Begin) FrameType() uint8 { return TypeAMQP }

func (b *Begin) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descBegin)
	if b.RemoteChannel != nil {
		w.Ushort(*b.RemoteChannel)
	} else {
		w.Null()
	}
	w.Uint(b.NextOutgoingID)
	w.Uint(b.IncomingWindow)
	w.Uint(b.OutgoingWindow)
	w.Uint(b.HandleMax)
	w.Symbols(b.OfferedCapabilities)
	w.Symbols(b.DesiredCapabilities)
	w.Map(b.Properties)
	return w.End()
}

func parseBegin(r *codec.ListReader) (*Begin, error) {
	r.Name("begin")
	b := &Begin{HandleMax: math.MaxUint32}
	var rc uint16
	if r.Ushort(&rc) {
		b.RemoteChannel = &rc
	}
	mandatory(r, r.Uint(&b.NextOutgoingID), "next-outgoing-id")
	mandatory(r, r.Uint(&b.IncomingWindow), "incoming-window")
	mandatory(r, r.Uint(&b.OutgoingWindow), "outgoing-window")
	r.Uint(&b.HandleMax)
	r.Symbols(&b.OfferedCapabilities)
	r.Symbols(&b.DesiredCapabilities)
	r.Map(&b.Properties)
	return b, r.Err()
}

// Attach is the attach performative.
type Attach struct {
	Name   string
	Handle uint32
	Role   Role
	// SndSettleMode and RcvSettleMode are nil when absent (mixed and
	// first): an endpoint that set them expects them echoed.
	SndSettleMode       *SenderSettleMode
	RcvSettleMode       *ReceiverSettleMode
	Source              *Source
	Target              *Target
	Unsettled           codec.Map
	IncompleteUnsettled bool
	// InitialDeliveryCount is written only when Role is sender.
	InitialDeliveryCount uint32
	// MaxMessageSize is 0 for no limit.
	MaxMessageSize      uint64
	OfferedCapabilities []codec.Symbol
	DesiredCapabilities []codec.Symbol
	Properties          codec.Map
}

func (*Attach) FrameType() uint8 { return TypeAMQP }

func (a *Attach) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descAttach)
	w.String(a.Name)
	w.Uint(a.Handle)
	w.Bool(bool(a.Role))
	if a.SndSettleMode != nil {
		w.Ubyte(uint8(*a.SndSettleMode))
	} else {
		w.Null()
	}
	if a.RcvSettleMode != nil {
		w.Ubyte(uint8(*a.RcvSettleMode))
	} else {
		w.Null()
	}
	if a.Source != nil {
		src, err := a.Source.Append(nil)
		if err != nil {
			return dst, err
		}
		w.Raw(src)
	} else {
		w.Null()
	}
	if a.Target != nil {
		tgt, err := a.Target.Append(nil)
		if err != nil {
			return dst, err
		}
		w.Raw(tgt)
	} else {
		w.Null()
	}
	w.Map(a.Unsettled)
	w.BoolOrNull(a.IncompleteUnsettled)
	if a.Role == RoleSender {
		w.Uint(a.InitialDeliveryCount)
	} else {
		w.Null()
	}
	uintOrNull64(&w, a.MaxMessageSize)
	w.Symbols(a.OfferedCapabilities)
	w.Symbols(a.DesiredCapabilities)
	w.Map(a.Properties)
	return w.End()
}

func parseAttach(r *codec.ListReader) (*Attach, error) {
	r.Name("attach")
	a := &Attach{}
	mandatory(r, r.String(&a.Name), "name")
	mandatory(r, r.Uint(&a.Handle), "handle")
	var role bool
	mandatory(r, r.Bool(&role), "role")
	a.Role = Role(role)
	var m uint8
	if r.Ubyte(&m) {
		if m > uint8(SenderSettleMixed) {
			r.Fail("snd-settle-mode %d", m)
		}
		sm := SenderSettleMode(m)
		a.SndSettleMode = &sm
	}
	if r.Ubyte(&m) {
		if m > uint8(ReceiverSettleSecond) {
			r.Fail("rcv-settle-mode %d", m)
		}
		rm := ReceiverSettleMode(m)
		a.RcvSettleMode = &rm
	}
	a.Source = parseSource(r)
	a.Target = parseTarget(r)
	r.Map(&a.Unsettled)
	r.Bool(&a.IncompleteUnsettled)
	r.Uint(&a.InitialDeliveryCount)
	r.Ulong(&a.MaxMessageSize)
	r.Symbols(&a.OfferedCapabilities)
	r.Symbols(&a.DesiredCapabilities)
	r.Map(&a.Properties)
	return a, r.Err()
}

// Flow is the flow performative. Link fields (Handle onwards) are set only
// on link-level flows.
type Flow struct {
	NextIncomingID *uint32
	IncomingWindow uint32
	NextOutgoingID uint32
	OutgoingWindow uint32
	Handle         *uint32
	DeliveryCount  *uint32
	LinkCredit     *uint32
	Available      *uint32
	Drain          bool
	Echo           bool
	Properties     codec.Map
}

func (*Flow) FrameType() uint8 { return TypeAMQP }

func (f *Flow) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descFlow)
	w.UintPtr(f.NextIncomingID)
	w.Uint(f.IncomingWindow)
	w.Uint(f.NextOutgoingID)
	w.Uint(f.OutgoingWindow)
	w.UintPtr(f.Handle)
	w.UintPtr(f.DeliveryCount)
	w.UintPtr(f.LinkCredit)
	w.UintPtr(f.Available)
	w.BoolOrNull(f.Drain)
	w.BoolOrNull(f.Echo)
	w.Map(f.Properties)
	return w.End()
}

func parseFlow(r *codec.ListReader) (*Flow, error) {
	r.Name("flow")
	f := &Flow{}
	r.UintPtr(&f.NextIncomingID)
	mandatory(r, r.Uint(&f.IncomingWindow), "incoming-window")
	mandatory(r, r.Uint(&f.NextOutgoingID), "next-outgoing-id")
	mandatory(r, r.Uint(&f.OutgoingWindow), "outgoing-window")
	r.UintPtr(&f.Handle)
	r.UintPtr(&f.DeliveryCount)
	r.UintPtr(&f.LinkCredit)
	r.UintPtr(&f.Available)
	r.Bool(&f.Drain)
	r.Bool(&f.Echo)
	r.Map(&f.Properties)
	if f.Handle == nil && (f.DeliveryCount != nil || f.LinkCredit != nil || f.Available != nil || f.Drain) {
		r.Fail("link fields without a handle")
	}
	return f, r.Err()
}

// Transfer is the transfer performative and its payload (a message or a
// piece of one).
type Transfer struct {
	Handle uint32
	// DeliveryID, DeliveryTag and MessageFormat are required on the first
	// frame of a delivery and may be left out on the others.
	DeliveryID    *uint32
	DeliveryTag   []byte
	MessageFormat *uint32
	Settled       bool
	More          bool
	RcvSettleMode *ReceiverSettleMode
	State         DeliveryState
	Resume        bool
	Aborted       bool
	Batchable     bool
	Payload       []byte
}

func (*Transfer) FrameType() uint8 { return TypeAMQP }

func (t *Transfer) AppendBody(dst []byte) ([]byte, error) {
	dst, err := t.AppendPerformative(dst)
	if err != nil {
		return dst, err
	}
	return append(dst, t.Payload...), nil
}

// AppendPerformative appends the transfer performative without the
// payload, so a sender can size the payload piece that fits a frame.
func (t *Transfer) AppendPerformative(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descTransfer)
	w.Uint(t.Handle)
	w.UintPtr(t.DeliveryID)
	w.Binary(t.DeliveryTag)
	w.UintPtr(t.MessageFormat)
	w.BoolOrNull(t.Settled)
	w.BoolOrNull(t.More)
	if t.RcvSettleMode != nil {
		w.Ubyte(uint8(*t.RcvSettleMode))
	} else {
		w.Null()
	}
	if err := appendState(&w, t.State); err != nil {
		return dst, err
	}
	w.BoolOrNull(t.Resume)
	w.BoolOrNull(t.Aborted)
	w.BoolOrNull(t.Batchable)
	return w.End()
}

func parseTransfer(r *codec.ListReader) (*Transfer, error) {
	r.Name("transfer")
	t := &Transfer{}
	mandatory(r, r.Uint(&t.Handle), "handle")
	r.UintPtr(&t.DeliveryID)
	r.Binary(&t.DeliveryTag)
	r.UintPtr(&t.MessageFormat)
	r.Bool(&t.Settled)
	r.Bool(&t.More)
	var m uint8
	if r.Ubyte(&m) {
		if m > uint8(ReceiverSettleSecond) {
			r.Fail("rcv-settle-mode %d", m)
		}
		rm := ReceiverSettleMode(m)
		t.RcvSettleMode = &rm
	}
	t.State = parseState(r)
	r.Bool(&t.Resume)
	r.Bool(&t.Aborted)
	r.Bool(&t.Batchable)
	return t, r.Err()
}

// Disposition is the disposition performative.
type Disposition struct {
	Role      Role
	First     uint32
	Last      *uint32
	Settled   bool
	State     DeliveryState
	Batchable bool
}

func (*Disposition) FrameType() uint8 { return TypeAMQP }

func (d *Disposition) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descDisposition)
	w.Bool(bool(d.Role))
	w.Uint(d.First)
	w.UintPtr(d.Last)
	w.BoolOrNull(d.Settled)
	if err := appendState(&w, d.State); err != nil {
		return dst, err
	}
	w.BoolOrNull(d.Batchable)
	return w.End()
}

func parseDisposition(r *codec.ListReader) (*Disposition, error) {
	r.Name("disposition")
	d := &Disposition{}
	var role bool
	mandatory(r, r.Bool(&role), "role")
	d.Role = Role(role)
	mandatory(r, r.Uint(&d.First), "first")
	r.UintPtr(&d.Last)
	r.Bool(&d.Settled)
	d.State = parseState(r)
	r.Bool(&d.Batchable)
	return d, r.Err()
}

// Detach is the detach performative.
type Detach struct {
	Handle uint32
	Closed bool
	Error  *Error
}

func (*Detach) FrameType() uint8 { return TypeAMQP }

func (d *Detach) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descDetach)
	w.Uint(d.Handle)
	w.BoolOrNull(d.Closed)
	if err := appendError(&w, d.Error); err != nil {
		return dst, err
	}
	return w.End()
}

func parseDetach(r *codec.ListReader) (*Detach, error) {
	r.Name("detach")
	d := &Detach{}
	mandatory(r, r.Uint(&d.Handle), "handle")
	r.Bool(&d.Closed)
	d.Error = parseError(r)
	return d, r.Err()
}

// End is the end performative.
type End struct {
	Error *Error
}

func (*End) FrameType() uint8 { return TypeAMQP }

func (e *End) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descEnd)
	if err := appendError(&w, e.Error); err != nil {
		return dst, err
	}
	return w.End()
}

func parseEnd(r *codec.ListReader) (*End, error) {
	r.Name("end")
	return &End{Error: parseError(r)}, r.Err()
}

// Close is the close performative.
type Close struct {
	Error *Error
}

func (*Close) FrameType() uint8 { return TypeAMQP }

func (c *Close) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descClose)
	if err := appendError(&w, c.Error); err != nil {
		return dst, err
	}
	return w.End()
}

func parseClose(r *codec.ListReader) (*Close, error) {
	r.Name("close")
	return &Close{Error: parseError(r)}, r.Err()
}

func uintOrNull(w *codec.ListWriter, v uint32) {
	if v == 0 {
		w.Null()
		return
	}
	w.Uint(v)
}

func uintOrNull64(w *codec.ListWriter, v uint64) {
	if v == 0 {
		w.Null()
		return
	}
	w.Ulong(v)
}
