package frame

import (
	"fmt"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

// Error conditions (AMQP 1.0 part 2, 2.8.15 to 2.8.18).
const (
	CondInternalError         codec.Symbol = "amqp:internal-error"
	CondNotFound              codec.Symbol = "amqp:not-found"
	CondUnauthorizedAccess    codec.Symbol = "amqp:unauthorized-access"
	CondDecodeError           codec.Symbol = "amqp:decode-error"
	CondResourceLimitExceeded codec.Symbol = "amqp:resource-limit-exceeded"
	CondNotAllowed            codec.Symbol = "amqp:not-allowed"
	CondInvalidField          codec.Symbol = "amqp:invalid-field"
	CondNotImplemented        codec.Symbol = "amqp:not-implemented"
	CondResourceLocked        codec.Symbol = "amqp:resource-locked"
	CondPreconditionFailed    codec.Symbol = "amqp:precondition-failed"
	CondResourceDeleted       codec.Symbol = "amqp:resource-deleted"
	CondIllegalState          codec.Symbol = "amqp:illegal-state"
	CondFrameSizeTooSmall     codec.Symbol = "amqp:frame-size-too-small"

	CondConnectionForced codec.Symbol = "amqp:connection:forced"
	CondFramingError     codec.Symbol = "amqp:connection:framing-error"
	CondRedirect         codec.Symbol = "amqp:connection:redirect"

	CondWindowViolation  codec.Symbol = "amqp:session:window-violation"
	CondErrantLink       codec.Symbol = "amqp:session:errant-link"
	CondHandleInUse      codec.Symbol = "amqp:session:handle-in-use"
	CondUnattachedHandle codec.Symbol = "amqp:session:unattached-handle"

	CondDetachForced          codec.Symbol = "amqp:link:detach-forced"
	CondTransferLimitExceeded codec.Symbol = "amqp:link:transfer-limit-exceeded"
	CondMessageSizeExceeded   codec.Symbol = "amqp:link:message-size-exceeded"
	CondLinkRedirect          codec.Symbol = "amqp:link:redirect"
	CondStolen                codec.Symbol = "amqp:link:stolen"
)

// Error is an AMQP error, carried by close, end, detach and the rejected
// outcome. It is a Go error, so that handlers can return one.
type Error struct {
	Condition   codec.Symbol
	Description string
	Info        codec.Map
}

func (e *Error) Error() string {
	if e.Description == "" {
		return string(e.Condition)
	}
	return fmt.Sprintf("%s: %s", e.Condition, e.Description)
}

// Errorf returns an Error with a formatted description.
func Errorf(cond codec.Symbol, format string, args ...any) *Error {
	return &Error{Condition: cond, Description: fmt.Sprintf(format, args...)}
}

func (e *Error) append(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descError)
	w.Symbol(e.Condition)
	w.String(e.Description)
	w.Map(e.Info)
	return w.End()
}

func appendError(w *codec.ListWriter, e *Error) error {
	if e == nil {
		w.Null()
		return nil
	}
	b, err := e.append(nil)
	if err != nil {
		return err
	}
	w.Raw(b)
	return nil
}

func parseError(r *codec.ListReader) *Error {
	desc, sub, ok := r.Composite()
	if !ok {
		return nil
	}
	if code, _ := descriptorCode(desc); code != descError {
		r.Fail("error descriptor %v", desc)
		return nil
	}
	sub.Name("error")
	e := &Error{}
	mandatory(sub, sub.Symbol(&e.Condition), "condition")
	sub.String(&e.Description)
	sub.Map(&e.Info)
	if err := sub.Err(); err != nil {
		r.Fail("%v", err)
		return nil
	}
	return e
}

// DeliveryState is the state of a delivery: an outcome (Accepted,
// Rejected, Released, Modified), Received, or a state this package does
// not model (UnknownState, e.g. transactional).
type DeliveryState interface {
	appendState(dst []byte) ([]byte, error)
}

// Received is the received delivery state.
type Received struct {
	SectionNumber uint32
	SectionOffset uint64
}

// Accepted is the accepted outcome.
type Accepted struct{}

// Rejected is the rejected outcome.
type Rejected struct {
	Error *Error
}

// Released is the released outcome.
type Released struct{}

// Modified is the modified outcome.
type Modified struct {
	DeliveryFailed     bool
	UndeliverableHere  bool
	MessageAnnotations codec.Map
}

// UnknownState is a delivery state with a descriptor this package does not
// know; its fields are kept as decoded.
type UnknownState struct {
	Descriptor any
	Fields     []any
}

func (s *Received) appendState(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descReceived)
	w.Uint(s.SectionNumber)
	w.Ulong(s.SectionOffset)
	return w.End()
}

func (*Accepted) appendState(dst []byte) ([]byte, error) {
	return append(dst, 0x00, 0x53, descAccepted, 0x45), nil
}

func (s *Rejected) appendState(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descRejected)
	if err := appendError(&w, s.Error); err != nil {
		return dst, err
	}
	return w.End()
}

func (*Released) appendState(dst []byte) ([]byte, error) {
	return append(dst, 0x00, 0x53, descReleased, 0x45), nil
}

func (s *Modified) appendState(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descModified)
	w.BoolOrNull(s.DeliveryFailed)
	w.BoolOrNull(s.UndeliverableHere)
	w.Map(s.MessageAnnotations)
	return w.End()
}

func (s *UnknownState) appendState(dst []byte) ([]byte, error) {
	return codec.Append(dst, codec.Described{Descriptor: s.Descriptor, Value: s.Fields})
}

func appendState(w *codec.ListWriter, s DeliveryState) error {
	if s == nil {
		w.Null()
		return nil
	}
	b, err := s.appendState(nil)
	if err != nil {
		return err
	}
	w.Raw(b)
	return nil
}

func parseState(r *codec.ListReader) DeliveryState {
	desc, sub, ok := r.Composite()
	if !ok {
		return nil
	}
	var s DeliveryState
	code, _ := descriptorCode(desc)
	switch code {
	case descReceived:
		sub.Name("received")
		st := &Received{}
		mandatory(sub, sub.Uint(&st.SectionNumber), "section-number")
		mandatory(sub, sub.Ulong(&st.SectionOffset), "section-offset")
		s = st
	case descAccepted:
		sub.Name("accepted")
		s = &Accepted{}
	case descRejected:
		sub.Name("rejected")
		s = &Rejected{Error: parseError(sub)}
	case descReleased:
		sub.Name("released")
		s = &Released{}
	case descModified:
		sub.Name("modified")
		st := &Modified{}
		sub.Bool(&st.DeliveryFailed)
		sub.Bool(&st.UndeliverableHere)
		sub.Map(&st.MessageAnnotations)
		s = st
	default:
		sub.Name("delivery-state")
		st := &UnknownState{Descriptor: desc}
		for sub.Remaining() > 0 {
			var v any
			sub.Value(&v)
			st.Fields = append(st.Fields, v)
		}
		s = st
	}
	for sub.Remaining() > 0 && sub.Err() == nil { // fields of later versions
		sub.Skip()
	}
	if err := sub.Err(); err != nil {
		r.Fail("%v", err)
		return nil
	}
	return s
}
