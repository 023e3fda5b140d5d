package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxDepth bounds how deeply values may nest (lists in lists, described
// values in maps, ...), so hostile input cannot exhaust the stack. The
// deepest structure AMQP itself uses (a filter in a source in an attach)
// is 5 levels.
const MaxDepth = 64

// zeroWidthAllowance is how many zero-width array elements (which take no
// bytes each) a value may hold beyond one per input byte: enough that
// re-encoding a value more compactly never pushes it over, small enough
// (1 MiB of element slots) to bound memory.
const zeroWidthAllowance = 1 << 16

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("amqp codec: malformed")

// Unmarshal decodes the single value b holds; trailing bytes are an error.
func Unmarshal(b []byte) (any, error) {
	v, n, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the value", ErrMalformed, len(b)-n)
	}
	return v, nil
}

// Decode decodes the first value in b and returns it with the number of
// bytes it took. Decoded []byte values are copies: the result never
// aliases b.
//
// Memory is proportional to len(b): every count is checked against the
// bytes left, and the elements of arrays whose constructor takes no bytes
// (an array of nulls or of uint0) are charged against a budget of
// len(b)+zeroWidthAllowance.
func Decode(b []byte) (any, int, error) {
	d := decoder{b: b, budget: len(b) + zeroWidthAllowance}
	v, err := d.value(0)
	if err != nil {
		return nil, 0, err
	}
	return v, d.off, nil
}

type decoder struct {
	b      []byte
	off    int
	budget int // zero-width array elements still allowed
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func (d *decoder) need(n int) ([]byte, error) {
	if n < 0 || len(d.b)-d.off < n {
		return nil, malformed("need %d bytes at offset %d, have %d", n, d.off, len(d.b)-d.off)
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, malformed("unexpected end of data at offset %d", d.off)
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) u16() (uint16, error) {
	p, err := d.need(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(p), nil
}

func (d *decoder) u32() (uint32, error) {
	p, err := d.need(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(p), nil
}

func (d *decoder) u64() (uint64, error) {
	p, err := d.need(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(p), nil
}

func (d *decoder) value(depth int) (any, error) {
	code, err := d.byte()
	if err != nil {
		return nil, err
	}
	if code == codeDescribed {
		return d.described(depth)
	}
	return d.primitive(code, depth)
}

func (d *decoder) described(depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, malformed("nesting deeper than %d", MaxDepth)
	}
	desc, err := d.value(depth + 1)
	if err != nil {
		return nil, err
	}
	v, err := d.value(depth + 1)
	if err != nil {
		return nil, err
	}
	return Described{Descriptor: desc, Value: v}, nil
}

// primitive decodes the value after its (non-described) constructor.
func (d *decoder) primitive(code byte, depth int) (any, error) {
	switch code {
	case codeNull:
		return nil, nil
	case codeTrue:
		return true, nil
	case codeFalse:
		return false, nil
	case codeBool:
		b, err := d.byte()
		if err != nil {
			return nil, err
		}
		if b > 1 {
			return nil, malformed("boolean byte 0x%02x", b)
		}
		return b == 1, nil
	case codeUbyte:
		return d.byte()
	case codeByte:
		b, err := d.byte()
		return int8(b), err
	case codeUshort:
		return d.u16()
	case codeShort:
		v, err := d.u16()
		return int16(v), err
	case codeUint0:
		return uint32(0), nil
	case codeSmallUint:
		b, err := d.byte()
		return uint32(b), err
	case codeUint:
		return d.u32()
	case codeUlong0:
		return uint64(0), nil
	case codeSmallUlong:
		b, err := d.byte()
		return uint64(b), err
	case codeUlong:
		return d.u64()
	case codeSmallInt:
		b, err := d.byte()
		return int32(int8(b)), err
	case codeInt:
		v, err := d.u32()
		return int32(v), err
	case codeSmallLong:
		b, err := d.byte()
		return int64(int8(b)), err
	case codeLong:
		v, err := d.u64()
		return int64(v), err
	case codeFloat:
		v, err := d.u32()
		return math.Float32frombits(v), err
	case codeDouble:
		v, err := d.u64()
		return math.Float64frombits(v), err
	case codeChar:
		v, err := d.u32()
		return Char(v), err
	case codeTimestamp:
		v, err := d.u64()
		if err != nil {
			return nil, err
		}
		return time.UnixMilli(int64(v)).UTC(), nil
	case codeDecimal32:
		p, err := d.need(4)
		if err != nil {
			return nil, err
		}
		return Decimal32(p), nil
	case codeDecimal64:
		p, err := d.need(8)
		if err != nil {
			return nil, err
		}
		return Decimal64(p), nil
	case codeDecimal128:
		p, err := d.need(16)
		if err != nil {
			return nil, err
		}
		return Decimal128(p), nil
	case codeUUID:
		p, err := d.need(16)
		if err != nil {
			return nil, err
		}
		return UUID(p), nil
	case codeVbin8, codeVbin32:
		p, err := d.variable(code == codeVbin8)
		if err != nil {
			return nil, err
		}
		return append([]byte{}, p...), nil
	case codeStr8, codeStr32:
		p, err := d.variable(code == codeStr8)
		return string(p), err
	case codeSym8, codeSym32:
		p, err := d.variable(code == codeSym8)
		return Symbol(p), err
	case codeList0:
		return []any{}, nil
	case codeList8, codeList32:
		return d.list(code == codeList8, depth)
	case codeMap8, codeMap32:
		return d.mapValue(code == codeMap8, depth)
	case codeArray8, codeArray32:
		return d.array(code == codeArray8, depth)
	}
	return nil, malformed("unknown format code 0x%02x at offset %d", code, d.off-1)
}

func (d *decoder) variable(short bool) ([]byte, error) {
	var n int
	if short {
		b, err := d.byte()
		if err != nil {
			return nil, err
		}
		n = int(b)
	} else {
		v, err := d.u32()
		if err != nil {
			return nil, err
		}
		if uint64(v) > uint64(len(d.b)) {
			return nil, malformed("length %d exceeds the data", v)
		}
		n = int(v)
	}
	return d.need(n)
}

// compound reads the size and count of a list, map or array and returns a
// decoder over exactly its remaining body (after the count).
func (d *decoder) compound(short bool) (body decoder, count int, err error) {
	var size, n uint32
	if short {
		s, err := d.byte()
		if err != nil {
			return body, 0, err
		}
		if s < 1 {
			return body, 0, malformed("compound size %d too small for its count", s)
		}
		c, err := d.byte()
		if err != nil {
			return body, 0, err
		}
		size, n = uint32(s)-1, uint32(c)
	} else {
		s, err := d.u32()
		if err != nil {
			return body, 0, err
		}
		if s < 4 {
			return body, 0, malformed("compound size %d too small for its count", s)
		}
		c, err := d.u32()
		if err != nil {
			return body, 0, err
		}
		size, n = s-4, c
	}
	p, err := d.need(int(size))
	if err != nil {
		return body, 0, err
	}
	return decoder{b: p, budget: d.budget}, int(n), nil
}

func (d *decoder) list(short bool, depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, malformed("nesting deeper than %d", MaxDepth)
	}
	body, count, err := d.compound(short)
	if err != nil {
		return nil, err
	}
	if count > len(body.b) { // every element takes at least one byte
		return nil, malformed("list count %d exceeds its %d bytes", count, len(body.b))
	}
	l := make([]any, count)
	for i := range l {
		if l[i], err = body.value(depth + 1); err != nil {
			return nil, err
		}
	}
	d.budget = body.budget
	if body.off != len(body.b) {
		return nil, malformed("list has %d bytes after its %d elements", len(body.b)-body.off, count)
	}
	return l, nil
}

func (d *decoder) mapValue(short bool, depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, malformed("nesting deeper than %d", MaxDepth)
	}
	body, count, err := d.compound(short)
	if err != nil {
		return nil, err
	}
	if count%2 != 0 {
		return nil, malformed("map with odd count %d", count)
	}
	if count > len(body.b) {
		return nil, malformed("map count %d exceeds its %d bytes", count, len(body.b))
	}
	m := make(Map, count/2)
	for i := range m {
		if m[i].Key, err = body.value(depth + 1); err != nil {
			return nil, err
		}
		if m[i].Value, err = body.value(depth + 1); err != nil {
			return nil, err
		}
	}
	d.budget = body.budget
	if body.off != len(body.b) {
		return nil, malformed("map has %d bytes after its %d entries", len(body.b)-body.off, count/2)
	}
	return m, nil
}

func (d *decoder) array(short bool, depth int) (any, error) {
	if depth >= MaxDepth {
		return nil, malformed("nesting deeper than %d", MaxDepth)
	}
	body, count, err := d.compound(short)
	if err != nil {
		return nil, err
	}
	code, err := body.byte()
	if err != nil {
		return nil, err
	}
	var descriptor any
	if code == codeDescribed {
		if descriptor, err = body.value(depth + 1); err != nil {
			return nil, err
		}
		if code, err = body.byte(); err != nil {
			return nil, err
		}
	}
	t := codeType(code)
	if t == TypeInvalid {
		return nil, malformed("array element constructor 0x%02x", code)
	}
	if zeroWidth(code) {
		if count > body.budget {
			return nil, malformed("array of %d zero-width elements", count)
		}
		body.budget -= count
	} else if count > len(body.b)-body.off {
		return nil, malformed("array count %d exceeds its %d bytes", count, len(body.b)-body.off)
	}
	elems := make([]any, count)
	for i := range elems {
		if elems[i], err = body.primitive(code, depth+1); err != nil {
			return nil, err
		}
	}
	d.budget = body.budget
	if body.off != len(body.b) {
		return nil, malformed("array has %d bytes after its %d elements", len(body.b)-body.off, count)
	}
	if descriptor != nil {
		return Array{Type: t, Descriptor: descriptor, Elems: elems}, nil
	}
	if s := typedSlice(t, elems); s != nil {
		return s, nil
	}
	return Array{Type: t, Elems: elems}, nil
}

func zeroWidth(code byte) bool {
	switch code {
	case codeNull, codeTrue, codeFalse, codeUint0, codeUlong0, codeList0:
		return true
	}
	return false
}

func codeType(code byte) Type {
	switch code {
	case codeNull:
		return TypeNull
	case codeTrue, codeFalse, codeBool:
		return TypeBool
	case codeUbyte:
		return TypeUbyte
	case codeUshort:
		return TypeUshort
	case codeUint0, codeSmallUint, codeUint:
		return TypeUint
	case codeUlong0, codeSmallUlong, codeUlong:
		return TypeUlong
	case codeByte:
		return TypeByte
	case codeShort:
		return TypeShort
	case codeSmallInt, codeInt:
		return TypeInt
	case codeSmallLong, codeLong:
		return TypeLong
	case codeFloat:
		return TypeFloat
	case codeDouble:
		return TypeDouble
	case codeDecimal32:
		return TypeDecimal32
	case codeDecimal64:
		return TypeDecimal64
	case codeDecimal128:
		return TypeDecimal128
	case codeChar:
		return TypeChar
	case codeTimestamp:
		return TypeTimestamp
	case codeUUID:
		return TypeUUID
	case codeVbin8, codeVbin32:
		return TypeBinary
	case codeStr8, codeStr32:
		return TypeString
	case codeSym8, codeSym32:
		return TypeSymbol
	case codeList0, codeList8, codeList32:
		return TypeList
	case codeMap8, codeMap32:
		return TypeMap
	case codeArray8, codeArray32:
		return TypeArray
	}
	return TypeInvalid
}

// typedSlice converts decoded array elements to the typed slice their type
// has, or returns nil for types that stay an Array.
func typedSlice(t Type, elems []any) any {
	switch t {
	case TypeBool:
		return convert[bool](elems)
	case TypeUshort:
		return convert[uint16](elems)
	case TypeUint:
		return convert[uint32](elems)
	case TypeUlong:
		return convert[uint64](elems)
	case TypeByte:
		return convert[int8](elems)
	case TypeShort:
		return convert[int16](elems)
	case TypeInt:
		return convert[int32](elems)
	case TypeLong:
		return convert[int64](elems)
	case TypeFloat:
		return convert[float32](elems)
	case TypeDouble:
		return convert[float64](elems)
	case TypeChar:
		return convert[Char](elems)
	case TypeTimestamp:
		return convert[time.Time](elems)
	case TypeUUID:
		return convert[UUID](elems)
	case TypeBinary:
		return convert[[]byte](elems)
	case TypeString:
		return convert[string](elems)
	case TypeSymbol:
		return convert[Symbol](elems)
	}
	return nil
}

func convert[T any](elems []any) []T {
	out := make([]T, len(elems))
	for i, e := range elems {
		out[i] = e.(T)
	}
	return out
}
