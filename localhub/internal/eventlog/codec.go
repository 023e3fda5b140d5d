package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"
)

// A record is one event on disk:
//
//	length  uint32 LE   bytes of payload
//	crc     uint32 LE   CRC-32C of the length field and the payload
//	payload:
//	  flags uint8       flagMore: another record of the same append follows
//	  seq   int64 LE    sequence number
//	  time  int64 LE    enqueued time, Unix milliseconds
//	  event fields      see appendEventFields
//
// The checksum covers the length too, so a torn or overwritten length
// cannot make garbage look like a record. The sequence number lets
// recovery check continuity without trusting file names.
const (
	frameHeaderSize = 8
	fixedSize       = 1 + 8 + 8
	// MaxEventSize bounds one event's encoded fields (body, properties and
	// annotations together). It is above every IoT Hub and Event Hubs
	// message limit, and it is what recovery accepts as a plausible length.
	MaxEventSize = 16 << 20
	maxPayload   = fixedSize + MaxEventSize

	flagMore = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrCorrupt is returned when stored bytes fail their checksum or do not
	// decode. Open repairs what a crash leaves; a reader meets it only if a
	// file changed under the running log.
	ErrCorrupt = errors.New("eventlog: corrupt record")
	// ErrInvalidEvent is returned by Append for an event the log cannot
	// store: an unsupported value type, a key in both Properties and
	// TypedProperties, or more than MaxEventSize bytes.
	ErrInvalidEvent = errors.New("eventlog: invalid event")

	// errShortRecord means the buffer ends inside a record: read more, or,
	// at the end of a file, a torn write.
	errShortRecord = errors.New("eventlog: record incomplete")
)

// frame is a parsed record.
type frame struct {
	flags  byte
	seq    int64
	timeMs int64
	fields []byte // the event fields, aliasing the parsed buffer
	size   int    // bytes of the whole record
}

// parseFrame parses the record at the start of b and checks its checksum.
func parseFrame(b []byte) (frame, error) {
	if len(b) < frameHeaderSize {
		return frame{}, errShortRecord
	}
	n := binary.LittleEndian.Uint32(b)
	if n < fixedSize || n > maxPayload {
		return frame{}, fmt.Errorf("%w: length %d", ErrCorrupt, n)
	}
	size := frameHeaderSize + int(n)
	if len(b) < size {
		return frame{}, errShortRecord
	}
	p := b[frameHeaderSize:size]
	sum := crc32.Update(crc32.Update(0, castagnoli, b[:4]), castagnoli, p)
	if sum != binary.LittleEndian.Uint32(b[4:]) {
		return frame{}, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if p[0]&^flagMore != 0 {
		return frame{}, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, p[0])
	}
	return frame{
		flags:  p[0],
		seq:    int64(binary.LittleEndian.Uint64(p[1:])),
		timeMs: int64(binary.LittleEndian.Uint64(p[9:])),
		fields: p[fixedSize:],
		size:   size,
	}, nil
}

// appendRecordHeader reserves the frame header and fixed fields of a record
// at the end of dst; sealRecord fills them in once the fields follow.
func appendRecordHeader(dst []byte) []byte {
	return append(dst, make([]byte, frameHeaderSize+fixedSize)...)
}

// sealRecord completes the record that starts at rec[0] and fills rec.
func sealRecord(rec []byte, flags byte, seq, timeMs int64) {
	p := rec[frameHeaderSize:]
	p[0] = flags
	binary.LittleEndian.PutUint64(p[1:], uint64(seq))
	binary.LittleEndian.PutUint64(p[9:], uint64(timeMs))
	binary.LittleEndian.PutUint32(rec, uint32(len(p)))
	sum := crc32.Update(crc32.Update(0, castagnoli, rec[:4]), castagnoli, p)
	binary.LittleEndian.PutUint32(rec[4:], sum)
}

// appendEventFields encodes what the producer set on e:
//
//	strings  DeviceID ModuleID MessageID CorrelationID ContentType
//	         ContentEncoding PartitionKey      uvarint length, bytes
//	UserID                                     optional bytes
//	Properties                                 optional count, key/value strings
//	TypedProperties, Annotations               optional count, key string, value
//	Body                                       optional bytes
//
// "Optional" lengths and counts are stored plus one, 0 meaning nil, so nil
// and empty round-trip exactly. Values are a tag byte and its payload (see
// appendValue).
func appendEventFields(dst []byte, e *Event) ([]byte, error) {
	for _, s := range [...]string{e.DeviceID, e.ModuleID, e.MessageID, e.CorrelationID, e.ContentType, e.ContentEncoding, e.PartitionKey} {
		dst = appendString(dst, s)
	}
	dst = appendOptBytes(dst, e.UserID)
	if e.Properties == nil {
		dst = append(dst, 0)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(e.Properties))+1)
		var keys [16]string
		for _, k := range sortedKeys(keys[:0], e.Properties) {
			dst = appendString(appendString(dst, k), e.Properties[k])
		}
	}
	var err error
	if dst, err = appendValueMap(dst, e.TypedProperties); err != nil {
		return nil, fmt.Errorf("typed property %w", err)
	}
	if dst, err = appendValueMap(dst, e.Annotations); err != nil {
		return nil, fmt.Errorf("annotation %w", err)
	}
	return appendOptBytes(dst, e.Body), nil
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendOptBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	return append(binary.AppendUvarint(dst, uint64(len(b))+1), b...)
}

func appendValueMap(dst []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(dst, 0), nil
	}
	dst = binary.AppendUvarint(dst, uint64(len(m))+1)
	var keys [16]string
	for _, k := range sortedKeys(keys[:0], m) {
		var err error
		if dst, err = appendValue(appendString(dst, k), m[k]); err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
	}
	return dst, nil
}

// sortedKeys makes the encoding of a map deterministic, so the same
// properties encode to the same bytes and a reader can decode them once
// for a run of events (eventDecoder).
func sortedKeys[V any](dst []string, m map[string]V) []string {
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

// Value tags. The numbers are on disk: never reuse one.
const (
	tagNil byte = iota
	tagFalse
	tagTrue
	tagInt8
	tagInt16
	tagInt32
	tagInt64
	tagUint8
	tagUint16
	tagUint32
	tagUint64
	tagFloat32
	tagFloat64
	tagString
	tagSymbol
	tagBinary
	tagTime
	tagUUID
	tagChar
)

// appendValue encodes one typed value. Signed integers are zig-zag
// varints, unsigned ones varints; times are Unix seconds and nanoseconds,
// so every time.Time round-trips (in UTC).
func appendValue(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, tagNil), nil
	case bool:
		if v {
			return append(dst, tagTrue), nil
		}
		return append(dst, tagFalse), nil
	case int8:
		return binary.AppendVarint(append(dst, tagInt8), int64(v)), nil
	case int16:
		return binary.AppendVarint(append(dst, tagInt16), int64(v)), nil
	case int32:
		return binary.AppendVarint(append(dst, tagInt32), int64(v)), nil
	case int64:
		return binary.AppendVarint(append(dst, tagInt64), v), nil
	case uint8:
		return binary.AppendUvarint(append(dst, tagUint8), uint64(v)), nil
	case uint16:
		return binary.AppendUvarint(append(dst, tagUint16), uint64(v)), nil
	case uint32:
		return binary.AppendUvarint(append(dst, tagUint32), uint64(v)), nil
	case uint64:
		return binary.AppendUvarint(append(dst, tagUint64), v), nil
	case float32:
		return binary.LittleEndian.AppendUint32(append(dst, tagFloat32), math.Float32bits(v)), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(dst, tagFloat64), math.Float64bits(v)), nil
	case string:
		return appendString(append(dst, tagString), v), nil
	case Symbol:
		return appendString(append(dst, tagSymbol), string(v)), nil
	case []byte:
		return append(binary.AppendUvarint(append(dst, tagBinary), uint64(len(v))), v...), nil
	case time.Time:
		dst = binary.AppendVarint(append(dst, tagTime), v.Unix())
		return binary.AppendUvarint(dst, uint64(v.Nanosecond())), nil
	case UUID:
		return append(append(dst, tagUUID), v[:]...), nil
	case Char:
		return binary.AppendUvarint(append(dst, tagChar), uint64(uint32(v))), nil
	}
	return nil, fmt.Errorf("%w: unsupported value type %T", ErrInvalidEvent, v)
}

// decoder reads event fields. Every read checks bounds: the input may be
// anything a damaged disk or a fuzzer produces.
type decoder struct {
	b   []byte
	err error
	*eventDecoder
}

// eventDecoder decodes runs of events, sharing what repeats between them:
// events of one partition mostly come from a few devices and carry the
// same device ids, content types, properties and annotations, and decoding
// those once saves most of a read's allocations. The events share the
// strings, maps and body arena, which is fine as events are read-only. A
// nil eventDecoder shares nothing. Not safe for concurrent use.
type eventDecoder struct {
	strs  map[string]string
	vals  map[string]any
	props map[string]map[string]string // section encoding -> map
	maps  map[string]map[string]any
	arena []byte
	d     decoder
}

const (
	maxShared     = 1024 // strings, values and maps an eventDecoder remembers
	maxSharedLen  = 128  // longer strings are rarely repeated
	maxMemoLen    = 1024 // bytes of a map section worth remembering
	arenaChunk    = 64 << 10
	maxArenaValue = 16 << 10 // bodies above this get their own allocation
)

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64, what string) []byte {
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) string(what string) string {
	return string(d.bytes(d.uvarint(what), what))
}

// shared is string for values that repeat from event to event.
func (d *decoder) shared(what string) string {
	b := d.bytes(d.uvarint(what), what)
	if d.eventDecoder == nil || len(b) > maxSharedLen {
		return string(b)
	}
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if d.strs == nil {
		d.strs = make(map[string]string)
	}
	if len(d.strs) < maxShared {
		d.strs[s] = s
	}
	return s
}

// optBytes returns a copy, so events never alias a read buffer.
func (d *decoder) optBytes(what string) []byte {
	n := d.uvarint(what)
	if n == 0 || d.err != nil {
		return nil
	}
	b := d.bytes(n-1, what)
	if d.err != nil {
		return nil
	}
	if d.eventDecoder == nil || len(b) == 0 || len(b) > maxArenaValue {
		return append(make([]byte, 0, len(b)), b...)
	}
	if cap(d.arena)-len(d.arena) < len(b) {
		d.arena = make([]byte, 0, arenaChunk)
	}
	start := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[start:len(d.arena):len(d.arena)]
}

// count reads an optional entry count; each entry takes at least min
// bytes, which bounds what a corrupt count can make us allocate.
func (d *decoder) count(min int, what string) (n int, isNil bool) {
	c := d.uvarint(what)
	if c == 0 || d.err != nil {
		return 0, true
	}
	if c-1 > uint64(len(d.b)/min) {
		d.fail(what)
		return 0, true
	}
	return int(c - 1), false
}

// decodeEventFields decodes what appendEventFields wrote into e.
func decodeEventFields(b []byte, e *Event) error {
	return (*eventDecoder)(nil).decode(b, e)
}

// decode decodes what appendEventFields wrote into e.
func (ed *eventDecoder) decode(b []byte, e *Event) error {
	// The decoder escapes (decodeMap calls through function values): keep
	// one in ed rather than allocate one per event.
	var d *decoder
	if ed != nil {
		ed.d = decoder{b: b, eventDecoder: ed}
		d = &ed.d
	} else {
		d = &decoder{b: b}
	}
	e.DeviceID = d.shared("device id")
	e.ModuleID = d.shared("module id")
	e.MessageID = d.string("message id")
	e.CorrelationID = d.string("correlation id")
	e.ContentType = d.shared("content type")
	e.ContentEncoding = d.shared("content encoding")
	e.PartitionKey = d.shared("partition key")
	e.UserID = d.optBytes("user id")
	var props *map[string]map[string]string
	var maps *map[string]map[string]any
	if ed != nil {
		props, maps = &ed.props, &ed.maps
	}
	e.Properties = decodeMap(d, props, "properties", (*decoder).shared, skipString)
	e.TypedProperties = decodeMap(d, maps, "typed properties", (*decoder).value, skipValue)
	e.Annotations = decodeMap(d, maps, "annotations", (*decoder).value, skipValue)
	e.Body = d.optBytes("body")
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	return d.err
}

// decodeMap decodes a map section, or returns the map decoded before from
// the same bytes, if memos has it: a section parses exactly what it holds,
// so the same bytes always make the same map.
func decodeMap[V any](d *decoder, memos *map[string]map[string]V, what string, value func(*decoder, string) V, skip func([]byte) int) map[string]V {
	var raw []byte
	if memos != nil {
		if n := skipMap(d.b, skip); n > 1 && n <= maxMemoLen {
			raw = d.b[:n]
			if m, ok := (*memos)[string(raw)]; ok {
				d.b = d.b[n:]
				return m
			}
		}
	}
	n, isNil := d.count(2, what)
	if isNil {
		return nil
	}
	m := make(map[string]V, n)
	for range n {
		k := d.shared(what)
		m[k] = value(d, what)
	}
	if d.err != nil {
		return nil
	}
	if raw != nil {
		if *memos == nil {
			*memos = make(map[string]map[string]V)
		}
		if len(*memos) < maxShared {
			(*memos)[string(raw)] = m
		}
	}
	return m
}

// skipMap returns the length of the map section at the start of b, or 0 if
// it does not parse; skip does the same for one value.
func skipMap(b []byte, skip func([]byte) int) int {
	c, n := binary.Uvarint(b)
	if n <= 0 {
		return 0
	}
	total := n
	for i := uint64(1); i < c; i++ {
		k := skipString(b[total:])
		if k == 0 {
			return 0
		}
		total += k
		v := skip(b[total:])
		if v == 0 {
			return 0
		}
		total += v
	}
	return total
}

func skipString(b []byte) int {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return 0
	}
	return n + int(l)
}

func skipValue(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	rest := b[1:]
	var n int
	switch b[0] {
	case tagNil, tagFalse, tagTrue:
		return 1
	case tagInt8, tagInt16, tagInt32, tagInt64:
		_, n = binary.Varint(rest)
	case tagUint8, tagUint16, tagUint32, tagUint64, tagChar:
		_, n = binary.Uvarint(rest)
	case tagFloat32:
		n = 4
	case tagFloat64:
		n = 8
	case tagUUID:
		n = 16
	case tagString, tagSymbol, tagBinary:
		n = skipString(rest)
	case tagTime:
		_, n = binary.Varint(rest)
		if n > 0 {
			_, m := binary.Uvarint(rest[n:])
			if m <= 0 {
				return 0
			}
			n += m
		}
	default:
		return 0
	}
	if n <= 0 || n > len(rest) {
		return 0
	}
	return 1 + n
}

func (d *decoder) value(what string) any {
	if len(d.b) == 0 {
		d.fail(what)
		return nil
	}
	tag := d.b[0]
	d.b = d.b[1:]
	switch tag {
	case tagNil:
		return nil
	case tagFalse:
		return false
	case tagTrue:
		return true
	case tagInt8:
		return int8(d.signed(math.MinInt8, math.MaxInt8, what))
	case tagInt16:
		return int16(d.signed(math.MinInt16, math.MaxInt16, what))
	case tagInt32:
		return int32(d.signed(math.MinInt32, math.MaxInt32, what))
	case tagInt64:
		return d.varint(what)
	case tagUint8:
		return uint8(d.unsigned(math.MaxUint8, what))
	case tagUint16:
		return uint16(d.unsigned(math.MaxUint16, what))
	case tagUint32:
		return uint32(d.unsigned(math.MaxUint32, what))
	case tagUint64:
		return d.uvarint(what)
	case tagFloat32:
		if b := d.bytes(4, what); d.err == nil {
			return math.Float32frombits(binary.LittleEndian.Uint32(b))
		}
	case tagFloat64:
		if b := d.bytes(8, what); d.err == nil {
			return math.Float64frombits(binary.LittleEndian.Uint64(b))
		}
	case tagString:
		return d.sharedValue(what)
	case tagSymbol:
		return Symbol(d.string(what))
	case tagBinary:
		b := d.bytes(d.uvarint(what), what)
		return append(make([]byte, 0, len(b)), b...)
	case tagTime:
		sec := d.varint(what)
		nsec := d.unsigned(999_999_999, what)
		return time.Unix(sec, int64(nsec)).UTC()
	case tagUUID:
		var u UUID
		copy(u[:], d.bytes(16, what))
		return u
	case tagChar:
		return Char(d.unsigned(math.MaxUint32, what))
	default:
		d.fail(what + " tag")
	}
	return nil
}

// sharedValue is a string value as an interface, boxed once for a run of
// events.
func (d *decoder) sharedValue(what string) any {
	if d.eventDecoder == nil {
		return d.string(what)
	}
	b := d.bytes(d.uvarint(what), what)
	if v, ok := d.vals[string(b)]; ok {
		return v
	}
	var v any = string(b)
	if d.vals == nil {
		d.vals = make(map[string]any)
	}
	if len(b) <= maxSharedLen && len(d.vals) < maxShared {
		d.vals[string(b)] = v
	}
	return v
}

func (d *decoder) signed(lo, hi int64, what string) int64 {
	v := d.varint(what)
	if v < lo || v > hi {
		d.fail(what)
		return 0
	}
	return v
}

func (d *decoder) unsigned(hi uint64, what string) uint64 {
	v := d.uvarint(what)
	if v > hi {
		d.fail(what)
		return 0
	}
	return v
}
