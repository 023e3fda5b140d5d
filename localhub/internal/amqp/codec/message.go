package codec

import (
	"fmt"
	"time"
)

// Descriptors of the message sections (AMQP 1.0 part 3, section 3.2).
const (
	SectionHeader                = 0x70
	SectionDeliveryAnnotations   = 0x71
	SectionMessageAnnotations    = 0x72
	SectionProperties            = 0x73
	SectionApplicationProperties = 0x74
	SectionData                  = 0x75
	SectionSequence              = 0x76
	SectionValue                 = 0x77
	SectionFooter                = 0x78
)

var sectionNames = map[Symbol]uint64{
	"amqp:header:list":                SectionHeader,
	"amqp:delivery-annotations:map":   SectionDeliveryAnnotations,
	"amqp:message-annotations:map":    SectionMessageAnnotations,
	"amqp:properties:list":            SectionProperties,
	"amqp:application-properties:map": SectionApplicationProperties,
	"amqp:data:binary":                SectionData,
	"amqp:amqp-sequence:list":         SectionSequence,
	"amqp:amqp-value:*":               SectionValue,
	"amqp:footer:map":                 SectionFooter,
}

// Message is an AMQP message: its sections with their exact types, so
// what a peer sent can be passed on unchanged and what we build is typed
// as the receiving client expects (str vs sym keys, int vs long, ...).
//
// Maps keep their keys as sent: annotation keys are normally Symbol,
// application-property keys string.
type Message struct {
	Header              *Header
	DeliveryAnnotations Map
	// Annotations is the message-annotations section.
	Annotations           Map
	Properties            *Properties
	ApplicationProperties Map
	// The body is one of: Data (one data section per element), Sequence
	// (one amqp-sequence section per element), or an amqp-value section
	// when HasValue is set (Value may then be nil: an amqp-value of null).
	Data     [][]byte
	Sequence [][]any
	Value    any
	HasValue bool
	Footer   Map
}

// Header is the header section.
type Header struct {
	Durable bool
	// Priority decodes as 4, the AMQP default, when absent; 4 is left out
	// when encoding.
	Priority uint8
	// TTL is the time to live in milliseconds; 0 means none.
	TTL           uint32
	FirstAcquirer bool
	DeliveryCount uint32
}

// Properties is the properties section. Empty strings and zero times are
// absent on the wire.
type Properties struct {
	// MessageID and CorrelationID are uint64, UUID, []byte or string.
	MessageID          any
	UserID             []byte
	To                 string
	Subject            string
	ReplyTo            string
	CorrelationID      any
	ContentType        Symbol
	ContentEncoding    Symbol
	AbsoluteExpiryTime time.Time
	CreationTime       time.Time
	GroupID            string
	GroupSequence      *uint32
	ReplyToGroupID     string
}

// MarshalBinary returns the encoded message.
func (m *Message) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(nil)
}

// AppendBinary appends the encoded message (its sections in the order the
// spec gives) to dst.
func (m *Message) AppendBinary(dst []byte) ([]byte, error) {
	start := len(dst)
	fail := func(section string, err error) ([]byte, error) {
		return dst[:start], fmt.Errorf("amqp codec: %s: %w", section, err)
	}
	var err error
	if h := m.Header; h != nil {
		var prio any
		if h.Priority != 4 {
			prio = h.Priority
		}
		var ttl any
		if h.TTL != 0 {
			ttl = h.TTL
		}
		dst, err = AppendDescribedList(dst, SectionHeader, orNil(h.Durable), prio, ttl, orNil(h.FirstAcquirer), orNil(h.DeliveryCount))
		if err != nil {
			return fail("header", err)
		}
	}
	if dst, err = appendMapSection(dst, SectionDeliveryAnnotations, m.DeliveryAnnotations); err != nil {
		return fail("delivery-annotations", err)
	}
	if dst, err = appendMapSection(dst, SectionMessageAnnotations, m.Annotations); err != nil {
		return fail("message-annotations", err)
	}
	if p := m.Properties; p != nil {
		var groupSeq any
		if p.GroupSequence != nil {
			groupSeq = *p.GroupSequence
		}
		dst, err = AppendDescribedList(dst, SectionProperties,
			p.MessageID, nilBytes(p.UserID), orNil(p.To), orNil(p.Subject), orNil(p.ReplyTo),
			p.CorrelationID, orNil(p.ContentType), orNil(p.ContentEncoding),
			nilTime(p.AbsoluteExpiryTime), nilTime(p.CreationTime), orNil(p.GroupID), groupSeq,
			orNil(p.ReplyToGroupID))
		if err != nil {
			return fail("properties", err)
		}
	}
	if dst, err = appendMapSection(dst, SectionApplicationProperties, m.ApplicationProperties); err != nil {
		return fail("application-properties", err)
	}
	for _, d := range m.Data {
		dst = AppendBinary(append(dst, codeDescribed, codeSmallUlong, SectionData), d)
	}
	for _, s := range m.Sequence {
		if dst, err = appendList(append(dst, codeDescribed, codeSmallUlong, SectionSequence), s, 1); err != nil {
			return fail("amqp-sequence", err)
		}
	}
	if m.HasValue || m.Value != nil {
		if dst, err = appendValue(append(dst, codeDescribed, codeSmallUlong, SectionValue), m.Value, 1); err != nil {
			return fail("amqp-value", err)
		}
	}
	if dst, err = appendMapSection(dst, SectionFooter, m.Footer); err != nil {
		return fail("footer", err)
	}
	return dst, nil
}

func appendMapSection(dst []byte, code byte, m Map) ([]byte, error) {
	if len(m) == 0 {
		return dst, nil
	}
	return appendMap(append(dst, codeDescribed, codeSmallUlong, code), m, 1)
}

// orNil turns zero values into nil so that they are left out (encoded as
// null, or dropped at the end of a list).
func orNil[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

func nilBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func nilTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// UnmarshalBinary decodes an encoded message into m, replacing its
// contents. Sections may come in any order, but each non-body section at
// most once, and the body must be of one kind.
func (m *Message) UnmarshalBinary(b []byte) error {
	*m = Message{}
	var seen uint16 // bit per section code
	d := decoder{b: b, budget: len(b) + zeroWidthAllowance}
	for d.off < len(b) {
		start := d.off
		code, err := d.sectionCode()
		if err == nil {
			bit := uint16(1) << (code - SectionHeader)
			if seen&bit != 0 && code != SectionData && code != SectionSequence {
				err = malformed("section repeated")
			}
			seen |= bit
		}
		if err == nil {
			err = m.readSection(&d, code)
		}
		if err != nil {
			return fmt.Errorf("amqp codec: section at offset %d: %w", start, err)
		}
	}
	body := seen >> (SectionData - SectionHeader) & 0b111
	if body&(body-1) != 0 {
		return fmt.Errorf("%w: body mixes data, amqp-sequence and amqp-value sections", ErrMalformed)
	}
	return nil
}

func (m *Message) readSection(d *decoder, code uint64) error {
	switch code {
	case SectionHeader:
		r, err := d.listReader(1)
		if err != nil {
			return err
		}
		r.Name("header")
		h := &Header{Priority: 4}
		r.Bool(&h.Durable)
		r.Ubyte(&h.Priority)
		r.Uint(&h.TTL)
		r.Bool(&h.FirstAcquirer)
		r.Uint(&h.DeliveryCount)
		m.Header = h
		return r.Err()
	case SectionProperties:
		r, err := d.listReader(1)
		if err != nil {
			return err
		}
		r.Name("properties")
		p := &Properties{}
		messageID(r, &p.MessageID)
		r.Binary(&p.UserID)
		r.String(&p.To)
		r.String(&p.Subject)
		r.String(&p.ReplyTo)
		messageID(r, &p.CorrelationID)
		r.Symbol(&p.ContentType)
		r.Symbol(&p.ContentEncoding)
		r.Timestamp(&p.AbsoluteExpiryTime)
		r.Timestamp(&p.CreationTime)
		r.String(&p.GroupID)
		r.UintPtr(&p.GroupSequence)
		r.String(&p.ReplyToGroupID)
		m.Properties = p
		return r.Err()
	case SectionData:
		c, err := d.byte()
		if err != nil {
			return err
		}
		if c != codeVbin8 && c != codeVbin32 {
			return malformed("data section holds constructor 0x%02x, not binary", c)
		}
		p, err := d.variable(c == codeVbin8)
		if err != nil {
			return err
		}
		m.Data = append(m.Data, append([]byte{}, p...))
		return nil
	}
	v, err := d.value(1)
	if err != nil {
		return err
	}
	switch code {
	case SectionDeliveryAnnotations:
		return sectionMap(v, &m.DeliveryAnnotations)
	case SectionMessageAnnotations:
		return sectionMap(v, &m.Annotations)
	case SectionApplicationProperties:
		return sectionMap(v, &m.ApplicationProperties)
	case SectionFooter:
		return sectionMap(v, &m.Footer)
	case SectionSequence:
		l, ok := v.([]any)
		if !ok {
			return malformed("amqp-sequence section holds %T, not a list", v)
		}
		m.Sequence = append(m.Sequence, l)
	case SectionValue:
		m.Value, m.HasValue = v, true
	}
	return nil
}

func messageID(r *ListReader, dst *any) {
	var v any
	if !r.Value(&v) {
		return
	}
	switch v.(type) {
	case uint64, UUID, []byte, string:
		*dst = v
	default:
		r.Fail("%T, want a message-id (ulong, uuid, binary or string)", v)
	}
}

func sectionMap(v any, dst *Map) error {
	switch m := v.(type) {
	case Map:
		*dst = m
	case nil:
	default:
		return malformed("section holds %T, not a map", v)
	}
	return nil
}

// RawSection is one section of an encoded message, undecoded.
type RawSection struct {
	// Descriptor is the section's code (SectionHeader ... SectionFooter).
	Descriptor uint64
	// Raw is the whole encoded section, descriptor included; it aliases
	// the input.
	Raw []byte
}

// SplitSections cuts an encoded message into its sections without
// decoding their contents beyond what finding their ends takes. It lets a
// server replace one section (say the message annotations) and pass the
// others on byte for byte.
func SplitSections(b []byte) ([]RawSection, error) {
	out := make([]RawSection, 0, 6)
	d := decoder{b: b, budget: len(b) + zeroWidthAllowance}
	for d.off < len(b) {
		start := d.off
		code, err := d.sectionCode()
		if err != nil {
			return nil, fmt.Errorf("amqp codec: section at offset %d: %w", start, err)
		}
		if err := d.skip(1); err != nil {
			return nil, fmt.Errorf("amqp codec: section at offset %d: %w", start, err)
		}
		out = append(out, RawSection{Descriptor: code, Raw: b[start:d.off]})
	}
	return out, nil
}
