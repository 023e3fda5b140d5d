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
	seen := map[uint64]bool{}
	for off := 0; off < len(b); {
		v, n, err := Decode(b[off:])
		if err != nil {
			return fmt.Errorf("amqp codec: section at offset %d: %w", off, err)
		}
		off += n
		code, val, err := sectionOf(v)
		if err != nil {
			return err
		}
		if code != SectionData && code != SectionSequence && seen[code] {
			return fmt.Errorf("%w: section 0x%02x repeated", ErrMalformed, code)
		}
		seen[code] = true
		if err := m.setSection(code, val); err != nil {
			return fmt.Errorf("amqp codec: section 0x%02x: %w", code, err)
		}
	}
	kinds := 0
	for _, c := range []uint64{SectionData, SectionSequence, SectionValue} {
		if seen[c] {
			kinds++
		}
	}
	if kinds > 1 {
		return fmt.Errorf("%w: body mixes data, amqp-sequence and amqp-value sections", ErrMalformed)
	}
	return nil
}

func sectionOf(v any) (uint64, any, error) {
	d, ok := v.(Described)
	if !ok {
		return 0, nil, fmt.Errorf("%w: message section is a %T, not a described value", ErrMalformed, v)
	}
	switch desc := d.Descriptor.(type) {
	case uint64:
		if desc >= SectionHeader && desc <= SectionFooter {
			return desc, d.Value, nil
		}
	case Symbol:
		if code, ok := sectionNames[desc]; ok {
			return code, d.Value, nil
		}
	}
	return 0, nil, fmt.Errorf("%w: unknown message section descriptor %v", ErrMalformed, d.Descriptor)
}

func (m *Message) setSection(code uint64, v any) error {
	switch code {
	case SectionHeader:
		l, err := sectionList(v, 5)
		if err != nil {
			return err
		}
		h := &Header{Priority: 4}
		f := fields(l)
		f.boolean(0, &h.Durable)
		f.ubyte(1, &h.Priority)
		f.uint(2, &h.TTL)
		f.boolean(3, &h.FirstAcquirer)
		f.uint(4, &h.DeliveryCount)
		m.Header = h
		return f.err
	case SectionDeliveryAnnotations:
		return sectionMap(v, &m.DeliveryAnnotations)
	case SectionMessageAnnotations:
		return sectionMap(v, &m.Annotations)
	case SectionProperties:
		l, err := sectionList(v, 13)
		if err != nil {
			return err
		}
		p := &Properties{}
		f := fields(l)
		f.messageID(0, &p.MessageID)
		f.binary(1, &p.UserID)
		f.str(2, &p.To)
		f.str(3, &p.Subject)
		f.str(4, &p.ReplyTo)
		f.messageID(5, &p.CorrelationID)
		f.sym(6, &p.ContentType)
		f.sym(7, &p.ContentEncoding)
		f.time(8, &p.AbsoluteExpiryTime)
		f.time(9, &p.CreationTime)
		f.str(10, &p.GroupID)
		if len(l) > 11 && l[11] != nil {
			var seq uint32
			f.uint(11, &seq)
			p.GroupSequence = &seq
		}
		f.str(12, &p.ReplyToGroupID)
		m.Properties = p
		return f.err
	case SectionApplicationProperties:
		return sectionMap(v, &m.ApplicationProperties)
	case SectionData:
		b, ok := v.([]byte)
		if !ok {
			return fmt.Errorf("%w: data section holds %T, not binary", ErrMalformed, v)
		}
		m.Data = append(m.Data, b)
	case SectionSequence:
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%w: amqp-sequence section holds %T, not a list", ErrMalformed, v)
		}
		m.Sequence = append(m.Sequence, l)
	case SectionValue:
		m.Value, m.HasValue = v, true
	case SectionFooter:
		return sectionMap(v, &m.Footer)
	}
	return nil
}

func sectionList(v any, max int) ([]any, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: section holds %T, not a list", ErrMalformed, v)
	}
	if len(l) > max {
		l = l[:max] // fields of later AMQP versions are ignored
	}
	return l, nil
}

func sectionMap(v any, dst *Map) error {
	switch m := v.(type) {
	case Map:
		*dst = m
	case nil:
	default:
		return fmt.Errorf("%w: section holds %T, not a map", ErrMalformed, v)
	}
	return nil
}

// fields reads the fields of a decoded composite (a list), checking types;
// the first error sticks.
type fieldList struct {
	l   []any
	err error
}

func fields(l []any) *fieldList { return &fieldList{l: l} }

func (f *fieldList) get(i int) any {
	if i < len(f.l) {
		return f.l[i]
	}
	return nil
}

func (f *fieldList) fail(i int, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: field %d is %T, want %s", ErrMalformed, i, f.get(i), want)
	}
}

func (f *fieldList) boolean(i int, dst *bool) {
	switch v := f.get(i).(type) {
	case nil:
	case bool:
		*dst = v
	default:
		f.fail(i, "boolean")
	}
}

func (f *fieldList) ubyte(i int, dst *uint8) {
	switch v := f.get(i).(type) {
	case nil:
	case uint8:
		*dst = v
	default:
		f.fail(i, "ubyte")
	}
}

func (f *fieldList) uint(i int, dst *uint32) {
	switch v := f.get(i).(type) {
	case nil:
	case uint32:
		*dst = v
	default:
		f.fail(i, "uint")
	}
}

func (f *fieldList) binary(i int, dst *[]byte) {
	switch v := f.get(i).(type) {
	case nil:
	case []byte:
		*dst = v
	default:
		f.fail(i, "binary")
	}
}

// str accepts a sym too: peers are not always careful, and the text is
// what matters in these fields.
func (f *fieldList) str(i int, dst *string) {
	switch v := f.get(i).(type) {
	case nil:
	case string:
		*dst = v
	case Symbol:
		*dst = string(v)
	default:
		f.fail(i, "string")
	}
}

func (f *fieldList) sym(i int, dst *Symbol) {
	switch v := f.get(i).(type) {
	case nil:
	case Symbol:
		*dst = v
	case string:
		*dst = Symbol(v)
	default:
		f.fail(i, "symbol")
	}
}

func (f *fieldList) time(i int, dst *time.Time) {
	switch v := f.get(i).(type) {
	case nil:
	case time.Time:
		*dst = v
	default:
		f.fail(i, "timestamp")
	}
}

func (f *fieldList) messageID(i int, dst *any) {
	switch v := f.get(i).(type) {
	case nil:
	case uint64, UUID, []byte, string:
		*dst = v
	default:
		f.fail(i, "message-id (ulong, uuid, binary or string)")
	}
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
