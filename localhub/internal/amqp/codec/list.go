package codec

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// ListWriter appends a described list (a performative, a terminus, a
// section) field by field, without boxing each field in an interface.
// Trailing null fields are dropped, as the spec allows, and the list gets
// its 8-bit header when it fits.
type ListWriter struct {
	dst       []byte
	hdr       int // offset of the list constructor
	count     int // fields written
	keepLen   int // len(dst) after the last non-null field
	keepCount int
	err       error
}

// BeginDescribedList starts a described list with a ulong descriptor at the
// end of dst.
// It returns a value so that encoding a performative allocates nothing.
func BeginDescribedList(dst []byte, descriptor uint64) ListWriter {
	dst = AppendUlong(append(dst, codeDescribed), descriptor)
	hdr := len(dst)
	dst = append(dst, codeList32, 0, 0, 0, 0, 0, 0, 0, 0)
	return ListWriter{dst: dst, hdr: hdr, keepLen: len(dst)}
}

func (w *ListWriter) kept() {
	w.count++
	w.keepLen, w.keepCount = len(w.dst), w.count
}

// Null writes an absent field.
func (w *ListWriter) Null() {
	w.dst = append(w.dst, codeNull)
	w.count++
}

// Bool writes a boolean field.
func (w *ListWriter) Bool(v bool) {
	if v {
		w.dst = append(w.dst, codeTrue)
	} else {
		w.dst = append(w.dst, codeFalse)
	}
	w.kept()
}

// BoolOrNull writes v, or null when v is false (the default of most
// boolean fields).
func (w *ListWriter) BoolOrNull(v bool) {
	if !v {
		w.Null()
		return
	}
	w.Bool(true)
}

// Ubyte writes a ubyte field.
func (w *ListWriter) Ubyte(v uint8) {
	w.dst = append(w.dst, codeUbyte, v)
	w.kept()
}

// Ushort writes a ushort field.
func (w *ListWriter) Ushort(v uint16) {
	w.dst = binary.BigEndian.AppendUint16(append(w.dst, codeUshort), v)
	w.kept()
}

// Uint writes a uint field.
func (w *ListWriter) Uint(v uint32) {
	w.dst = AppendUint(w.dst, v)
	w.kept()
}

// UintPtr writes *v, or null.
func (w *ListWriter) UintPtr(v *uint32) {
	if v == nil {
		w.Null()
		return
	}
	w.Uint(*v)
}

// Ulong writes a ulong field.
func (w *ListWriter) Ulong(v uint64) {
	w.dst = AppendUlong(w.dst, v)
	w.kept()
}

// String writes a str field; empty is null.
func (w *ListWriter) String(v string) {
	if v == "" {
		w.Null()
		return
	}
	w.dst, _ = appendVar(w.dst, codeStr8, codeStr32, v)
	w.kept()
}

// Symbol writes a sym field; empty is null.
func (w *ListWriter) Symbol(v Symbol) {
	if v == "" {
		w.Null()
		return
	}
	w.dst, _ = appendVar(w.dst, codeSym8, codeSym32, v)
	w.kept()
}

// Binary writes a binary field; nil is null (an empty non-nil slice is an
// empty binary).
func (w *ListWriter) Binary(v []byte) {
	if v == nil {
		w.Null()
		return
	}
	w.dst, _ = appendVar(w.dst, codeVbin8, codeVbin32, v)
	w.kept()
}

// Timestamp writes a timestamp field; the zero time is null.
func (w *ListWriter) Timestamp(v time.Time) {
	if v.IsZero() {
		w.Null()
		return
	}
	w.dst = AppendTimestamp(w.dst, v)
	w.kept()
}

// Symbols writes a multiple-symbol field as an array of sym; empty is
// null.
func (w *ListWriter) Symbols(v []Symbol) {
	if len(v) == 0 {
		w.Null()
		return
	}
	w.Value(v)
}

// Map writes a map field; empty is null.
func (w *ListWriter) Map(v Map) {
	if len(v) == 0 {
		w.Null()
		return
	}
	w.Value(v)
}

// Value writes any value; nil is null.
func (w *ListWriter) Value(v any) {
	if v == nil {
		w.Null()
		return
	}
	if w.err != nil {
		return
	}
	var err error
	if w.dst, err = appendValue(w.dst, v, 2); err != nil {
		w.err = err
		return
	}
	w.kept()
}

// Raw writes a field already encoded by another ListWriter (or Append).
func (w *ListWriter) Raw(encoded []byte) {
	w.dst = append(w.dst, encoded...)
	w.kept()
}

// End finishes the list and returns the extended buffer, or the first
// error a field had.
func (w *ListWriter) End() ([]byte, error) {
	if w.err != nil {
		return w.dst[:w.hdr], w.err
	}
	dst := w.dst[:w.keepLen]
	n := len(dst) - w.hdr - 9
	if w.keepCount == 0 {
		dst[w.hdr] = codeList0
		return dst[:w.hdr+1], nil
	}
	if n+1 <= math.MaxUint8 && w.keepCount <= math.MaxUint8 {
		dst[w.hdr] = codeList8
		dst[w.hdr+1] = uint8(n + 1)
		dst[w.hdr+2] = uint8(w.keepCount)
		copy(dst[w.hdr+3:], dst[w.hdr+9:])
		return dst[:len(dst)-6], nil
	}
	binary.BigEndian.PutUint32(dst[w.hdr+1:], uint32(n+4))
	binary.BigEndian.PutUint32(dst[w.hdr+5:], uint32(w.keepCount))
	return dst, nil
}

// ListReader reads the fields of a described list one by one, checking
// each field's type. Absent trailing fields read as null. The first error
// sticks and is returned by Err; later reads then report absent fields.
type ListReader struct {
	name   string // for errors: "attach", "source", ...
	d      decoder
	index  int
	fields int
	depth  int
	err    error
}

// ReadDescribedList decodes the descriptor and list header of a described
// list at the start of b. It returns the descriptor (a uint64, or the
// Symbol of a symbolic descriptor), a reader over the fields, and the
// bytes after the list.
func ReadDescribedList(b []byte) (descriptor any, r *ListReader, rest []byte, err error) {
	d := decoder{b: b, budget: len(b) + zeroWidthAllowance}
	code, err := d.byte()
	if err != nil {
		return nil, nil, nil, err
	}
	if code != codeDescribed {
		return nil, nil, nil, malformed("want a described list, found constructor 0x%02x", code)
	}
	if descriptor, err = d.value(1); err != nil {
		return nil, nil, nil, err
	}
	r, err = d.listReader(2)
	if err != nil {
		return nil, nil, nil, err
	}
	return descriptor, r, b[d.off:], nil
}

// listReader reads a list header at d and returns a reader over its
// body, advancing d past the list.
func (d *decoder) listReader(depth int) (*ListReader, error) {
	code, err := d.byte()
	if err != nil {
		return nil, err
	}
	switch code {
	case codeList0:
		return &ListReader{d: decoder{budget: d.budget}, depth: depth}, nil
	case codeList8, codeList32:
		body, count, err := d.compound(code == codeList8)
		if err != nil {
			return nil, err
		}
		if count > len(body.b) {
			return nil, malformed("list count %d exceeds its %d bytes", count, len(body.b))
		}
		return &ListReader{d: body, fields: count, depth: depth}, nil
	}
	return nil, malformed("want a list, found constructor 0x%02x", code)
}

// Name sets the name errors use for this list.
func (r *ListReader) Name(name string) *ListReader {
	r.name = name
	return r
}

// Err returns the first error, including bytes left after the last field.
func (r *ListReader) Err() error {
	if r.err == nil && r.index >= r.fields && r.d.off != len(r.d.b) {
		r.err = malformed("%s: %d bytes after the last field", r.name, len(r.d.b)-r.d.off)
	}
	return r.err
}

// Remaining reports how many fields are left to read.
func (r *ListReader) Remaining() int { return r.fields - r.index }

func (r *ListReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s field %d: %s", ErrMalformed, r.name, r.index-1, fmt.Sprintf(format, args...))
	}
}

// next reads the next field's constructor; ok is false for an absent or
// null field (or after an error).
func (r *ListReader) next() (code byte, ok bool) {
	if r.err != nil || r.index >= r.fields {
		r.index++
		return 0, false
	}
	r.index++
	c, err := r.d.byte()
	if err != nil {
		r.err = err
		return 0, false
	}
	return c, c != codeNull
}

// Skip steps over a field whatever it holds.
func (r *ListReader) Skip() {
	if code, ok := r.next(); ok {
		if code == codeDescribed {
			r.d.off--
			if err := r.d.skip(r.depth); err != nil {
				r.err = err
			}
			return
		}
		if err := r.d.skipPrimitive(code, r.depth); err != nil {
			r.err = err
		}
	}
}

// Bool reads a boolean field into dst; it reports whether it was present.
func (r *ListReader) Bool(dst *bool) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	switch code {
	case codeTrue:
		*dst = true
	case codeFalse:
		*dst = false
	case codeBool:
		b, err := r.d.byte()
		if err != nil || b > 1 {
			r.fail("bad boolean")
			return false
		}
		*dst = b == 1
	default:
		r.fail("constructor 0x%02x, want boolean", code)
		return false
	}
	return true
}

// Ubyte reads a ubyte field.
func (r *ListReader) Ubyte(dst *uint8) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	if code != codeUbyte {
		r.fail("constructor 0x%02x, want ubyte", code)
		return false
	}
	b, err := r.d.byte()
	if err != nil {
		r.err = err
		return false
	}
	*dst = b
	return true
}

// Ushort reads a ushort field.
func (r *ListReader) Ushort(dst *uint16) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	if code != codeUshort {
		r.fail("constructor 0x%02x, want ushort", code)
		return false
	}
	v, err := r.d.u16()
	if err != nil {
		r.err = err
		return false
	}
	*dst = v
	return true
}

// Uint reads a uint field (any of its encodings).
func (r *ListReader) Uint(dst *uint32) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	var err error
	switch code {
	case codeUint0:
		*dst = 0
	case codeSmallUint:
		var b byte
		b, err = r.d.byte()
		*dst = uint32(b)
	case codeUint:
		*dst, err = r.d.u32()
	default:
		r.fail("constructor 0x%02x, want uint", code)
		return false
	}
	if err != nil {
		r.err = err
		return false
	}
	return true
}

// UintPtr reads a uint field into a new *uint32, nil when absent.
func (r *ListReader) UintPtr(dst **uint32) bool {
	var v uint32
	if !r.Uint(&v) {
		return false
	}
	*dst = &v
	return true
}

// Ulong reads a ulong field (any of its encodings).
func (r *ListReader) Ulong(dst *uint64) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	var err error
	switch code {
	case codeUlong0:
		*dst = 0
	case codeSmallUlong:
		var b byte
		b, err = r.d.byte()
		*dst = uint64(b)
	case codeUlong:
		*dst, err = r.d.u64()
	default:
		r.fail("constructor 0x%02x, want ulong", code)
		return false
	}
	if err != nil {
		r.err = err
		return false
	}
	return true
}

// String reads a str field; a sym is accepted too.
func (r *ListReader) String(dst *string) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	switch code {
	case codeStr8, codeStr32, codeSym8, codeSym32:
		p, err := r.d.variable(code == codeStr8 || code == codeSym8)
		if err != nil {
			r.err = err
			return false
		}
		*dst = string(p)
		return true
	}
	r.fail("constructor 0x%02x, want string", code)
	return false
}

// Symbol reads a sym field; a str is accepted too.
func (r *ListReader) Symbol(dst *Symbol) bool {
	var s string
	if !r.String(&s) {
		return false
	}
	*dst = Symbol(s)
	return true
}

// Binary reads a binary field (copied).
func (r *ListReader) Binary(dst *[]byte) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	if code != codeVbin8 && code != codeVbin32 {
		r.fail("constructor 0x%02x, want binary", code)
		return false
	}
	p, err := r.d.variable(code == codeVbin8)
	if err != nil {
		r.err = err
		return false
	}
	*dst = append([]byte{}, p...)
	return true
}

// Timestamp reads a timestamp field.
func (r *ListReader) Timestamp(dst *time.Time) bool {
	code, ok := r.next()
	if !ok {
		return false
	}
	if code != codeTimestamp {
		r.fail("constructor 0x%02x, want timestamp", code)
		return false
	}
	v, err := r.d.u64()
	if err != nil {
		r.err = err
		return false
	}
	*dst = time.UnixMilli(int64(v)).UTC()
	return true
}

// Value reads a field of any type.
func (r *ListReader) Value(dst *any) bool {
	if r.err != nil || r.index >= r.fields {
		r.index++
		return false
	}
	r.index++
	v, err := r.d.value(r.depth)
	if err != nil {
		r.err = err
		return false
	}
	*dst = v
	return v != nil
}

// Symbols reads a multiple-symbol field: one symbol or an array of them.
func (r *ListReader) Symbols(dst *[]Symbol) bool {
	var v any
	if !r.Value(&v) {
		return false
	}
	switch v := v.(type) {
	case Symbol:
		*dst = []Symbol{v}
	case []Symbol:
		*dst = v
	default:
		r.fail("%T, want symbol or array of symbol", v)
		return false
	}
	return true
}

// Map reads a map field.
func (r *ListReader) Map(dst *Map) bool {
	var v any
	if !r.Value(&v) {
		return false
	}
	m, ok := v.(Map)
	if !ok {
		r.fail("%T, want map", v)
		return false
	}
	*dst = m
	return true
}

// Composite reads a field holding a described list (a composite type) and
// returns its descriptor and a reader over its fields; ok is false when the
// field is null or absent.
func (r *ListReader) Composite() (descriptor any, sub *ListReader, ok bool) {
	code, ok := r.next()
	if !ok {
		return nil, nil, false
	}
	if code != codeDescribed {
		r.fail("constructor 0x%02x, want a described list", code)
		return nil, nil, false
	}
	if r.depth >= MaxDepth {
		r.fail("nesting deeper than %d", MaxDepth)
		return nil, nil, false
	}
	desc, err := r.d.value(r.depth + 1)
	if err != nil {
		r.err = err
		return nil, nil, false
	}
	sub, err = r.d.listReader(r.depth + 1)
	if err != nil {
		r.err = err
		return nil, nil, false
	}
	return desc, sub, true
}

// Fail records a semantic error (a missing mandatory field, a value out of
// range) about the field read last.
func (r *ListReader) Fail(format string, args ...any) {
	r.fail(format, args...)
}

// Index reports the index of the next field.
func (r *ListReader) Index() int { return r.index }
