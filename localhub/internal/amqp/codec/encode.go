package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Format codes (AMQP 1.0 part 1, section 1.6).
const (
	codeDescribed  = 0x00
	codeNull       = 0x40
	codeTrue       = 0x41
	codeFalse      = 0x42
	codeUint0      = 0x43
	codeUlong0     = 0x44
	codeList0      = 0x45
	codeUbyte      = 0x50
	codeByte       = 0x51
	codeSmallUint  = 0x52
	codeSmallUlong = 0x53
	codeSmallInt   = 0x54
	codeSmallLong  = 0x55
	codeBool       = 0x56
	codeUshort     = 0x60
	codeShort      = 0x61
	codeUint       = 0x70
	codeInt        = 0x71
	codeFloat      = 0x72
	codeChar       = 0x73
	codeDecimal32  = 0x74
	codeUlong      = 0x80
	codeLong       = 0x81
	codeDouble     = 0x82
	codeTimestamp  = 0x83
	codeDecimal64  = 0x84
	codeDecimal128 = 0x94
	codeUUID       = 0x98
	codeVbin8      = 0xa0
	codeStr8       = 0xa1
	codeSym8       = 0xa3
	codeVbin32     = 0xb0
	codeStr32      = 0xb1
	codeSym32      = 0xb3
	codeList8      = 0xc0
	codeMap8       = 0xc1
	codeList32     = 0xd0
	codeMap32      = 0xd1
	codeArray8     = 0xe0
	codeArray32    = 0xf0
)

// ErrUnsupported is wrapped by encoding errors for Go values that have no
// AMQP encoding.
var ErrUnsupported = errors.New("amqp codec: unsupported type")

// maxEncodedLen bounds anything Append writes: AMQP sizes and counts are
// 32-bit.
const maxEncodedLen = math.MaxUint32

// Marshal returns the AMQP encoding of v.
func Marshal(v any) ([]byte, error) {
	return Append(nil, v)
}

// Append appends the AMQP encoding of v to dst, choosing the most compact
// encoding of its type (uint0, smalluint, list0, str8, ...). On error dst
// is returned unchanged in length.
func Append(dst []byte, v any) ([]byte, error) {
	n := len(dst)
	out, err := appendValue(dst, v, 0)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, fmt.Errorf("amqp codec: nesting deeper than %d", MaxDepth)
	}
	switch v := v.(type) {
	case nil:
		return append(dst, codeNull), nil
	case bool:
		if v {
			return append(dst, codeTrue), nil
		}
		return append(dst, codeFalse), nil
	case uint8:
		return append(dst, codeUbyte, v), nil
	case uint16:
		return binary.BigEndian.AppendUint16(append(dst, codeUshort), v), nil
	case uint32:
		return AppendUint(dst, v), nil
	case uint64:
		return AppendUlong(dst, v), nil
	case uint:
		return AppendUlong(dst, uint64(v)), nil
	case int8:
		return append(dst, codeByte, uint8(v)), nil
	case int16:
		return binary.BigEndian.AppendUint16(append(dst, codeShort), uint16(v)), nil
	case int32:
		if v >= math.MinInt8 && v <= math.MaxInt8 {
			return append(dst, codeSmallInt, uint8(v)), nil
		}
		return binary.BigEndian.AppendUint32(append(dst, codeInt), uint32(v)), nil
	case int64:
		return appendLong(dst, v), nil
	case int:
		return appendLong(dst, int64(v)), nil
	case float32:
		return binary.BigEndian.AppendUint32(append(dst, codeFloat), math.Float32bits(v)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(dst, codeDouble), math.Float64bits(v)), nil
	case Decimal32:
		return append(append(dst, codeDecimal32), v[:]...), nil
	case Decimal64:
		return append(append(dst, codeDecimal64), v[:]...), nil
	case Decimal128:
		return append(append(dst, codeDecimal128), v[:]...), nil
	case Char:
		return binary.BigEndian.AppendUint32(append(dst, codeChar), uint32(v)), nil
	case time.Time:
		return AppendTimestamp(dst, v), nil
	case UUID:
		return append(append(dst, codeUUID), v[:]...), nil
	case []byte:
		return appendVar(dst, codeVbin8, codeVbin32, v)
	case string:
		return appendVar(dst, codeStr8, codeStr32, v)
	case Symbol:
		return appendVar(dst, codeSym8, codeSym32, v)
	case []any:
		return appendList(dst, v, depth)
	case Map:
		return appendMap(dst, v, depth)
	case Described:
		return appendDescribed(dst, v, depth)
	case *Described:
		if v == nil {
			return append(dst, codeNull), nil
		}
		return appendDescribed(dst, *v, depth)
	case Array:
		return appendArray(dst, v, depth)
	case []bool:
		return appendTypedArray(dst, TypeBool, v, depth)
	case []uint16:
		return appendTypedArray(dst, TypeUshort, v, depth)
	case []uint32:
		return appendTypedArray(dst, TypeUint, v, depth)
	case []uint64:
		return appendTypedArray(dst, TypeUlong, v, depth)
	case []int8:
		return appendTypedArray(dst, TypeByte, v, depth)
	case []int16:
		return appendTypedArray(dst, TypeShort, v, depth)
	case []int32:
		return appendTypedArray(dst, TypeInt, v, depth)
	case []int64:
		return appendTypedArray(dst, TypeLong, v, depth)
	case []float32:
		return appendTypedArray(dst, TypeFloat, v, depth)
	case []float64:
		return appendTypedArray(dst, TypeDouble, v, depth)
	case []Char:
		return appendTypedArray(dst, TypeChar, v, depth)
	case []time.Time:
		return appendTypedArray(dst, TypeTimestamp, v, depth)
	case []UUID:
		return appendTypedArray(dst, TypeUUID, v, depth)
	case [][]byte:
		return appendTypedArray(dst, TypeBinary, v, depth)
	case []string:
		return appendTypedArray(dst, TypeString, v, depth)
	case []Symbol:
		return appendTypedArray(dst, TypeSymbol, v, depth)
	}
	return dst, fmt.Errorf("%w %T", ErrUnsupported, v)
}

// AppendUint appends v as an AMQP uint in its most compact form.
func AppendUint(dst []byte, v uint32) []byte {
	switch {
	case v == 0:
		return append(dst, codeUint0)
	case v <= math.MaxUint8:
		return append(dst, codeSmallUint, uint8(v))
	}
	return binary.BigEndian.AppendUint32(append(dst, codeUint), v)
}

// AppendUlong appends v as an AMQP ulong in its most compact form.
func AppendUlong(dst []byte, v uint64) []byte {
	switch {
	case v == 0:
		return append(dst, codeUlong0)
	case v <= math.MaxUint8:
		return append(dst, codeSmallUlong, uint8(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, codeUlong), v)
}

func appendLong(dst []byte, v int64) []byte {
	if v >= math.MinInt8 && v <= math.MaxInt8 {
		return append(dst, codeSmallLong, uint8(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, codeLong), uint64(v))
}

// AppendTimestamp appends t as an AMQP timestamp (milliseconds since the
// Unix epoch; finer precision is dropped).
func AppendTimestamp(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(dst, codeTimestamp), uint64(t.UnixMilli()))
}

// AppendBinary appends b as an AMQP binary.
func AppendBinary(dst []byte, b []byte) []byte {
	out, _ := appendVar(dst, codeVbin8, codeVbin32, b) // cannot fail below 4 GiB
	return out
}

func appendVar[T ~string | ~[]byte](dst []byte, code8, code32 byte, v T) ([]byte, error) {
	if len(v) <= math.MaxUint8 {
		dst = append(dst, code8, uint8(len(v)))
		return append(dst, v...), nil
	}
	if uint64(len(v)) > maxEncodedLen {
		return dst, errors.New("amqp codec: value longer than 4 GiB")
	}
	dst = binary.BigEndian.AppendUint32(append(dst, code32), uint32(len(v)))
	return append(dst, v...), nil
}

// compound writes a list, map or array: it reserves the 32-bit header,
// encodes the body, then narrows the header to the 8-bit form when size
// and count fit, as the spec asks encoders to prefer.
func compound(dst []byte, code8, code32 byte, count int, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	dst = append(dst, code32, 0, 0, 0, 0, 0, 0, 0, 0)
	dst, err := body(dst)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - 9 // body bytes after the count
	if n+1 <= math.MaxUint8 && count <= math.MaxUint8 {
		dst[start] = code8
		dst[start+1] = uint8(n + 1)
		dst[start+2] = uint8(count)
		copy(dst[start+3:], dst[start+9:])
		return dst[:len(dst)-6], nil
	}
	if uint64(n)+4 > maxEncodedLen || uint64(count) > maxEncodedLen {
		return dst[:start], errors.New("amqp codec: compound value larger than 4 GiB")
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(n+4))
	binary.BigEndian.PutUint32(dst[start+5:], uint32(count))
	return dst, nil
}

func appendList(dst []byte, l []any, depth int) ([]byte, error) {
	if len(l) == 0 {
		return append(dst, codeList0), nil
	}
	return compound(dst, codeList8, codeList32, len(l), func(dst []byte) ([]byte, error) {
		var err error
		for _, v := range l {
			if dst, err = appendValue(dst, v, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	})
}

func appendMap(dst []byte, m Map, depth int) ([]byte, error) {
	return compound(dst, codeMap8, codeMap32, 2*len(m), func(dst []byte) ([]byte, error) {
		var err error
		for _, e := range m {
			if dst, err = appendValue(dst, e.Key, depth+1); err != nil {
				return dst, err
			}
			if dst, err = appendValue(dst, e.Value, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	})
}

func appendDescribed(dst []byte, d Described, depth int) ([]byte, error) {
	dst = append(dst, codeDescribed)
	dst, err := appendValue(dst, d.Descriptor, depth+1)
	if err != nil {
		return dst, err
	}
	return appendValue(dst, d.Value, depth+1)
}

// AppendDescribedList appends a described list with a ulong descriptor,
// the shape of every performative, section and composite type. Trailing
// nil fields are left out, as the spec allows.
func AppendDescribedList(dst []byte, descriptor uint64, fields ...any) ([]byte, error) {
	for len(fields) > 0 && fields[len(fields)-1] == nil {
		fields = fields[:len(fields)-1]
	}
	n := len(dst)
	dst = AppendUlong(append(dst, codeDescribed), descriptor)
	out, err := appendList(dst, fields, 1)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

func appendArray(dst []byte, a Array, depth int) ([]byte, error) {
	t := a.Type
	if t == TypeInvalid {
		if len(a.Elems) == 0 {
			return dst, errors.New("amqp codec: empty Array needs a Type")
		}
		t = typeOf(a.Elems[0])
	}
	return appendArrayOf(dst, t, a.Descriptor, len(a.Elems), func(i int) any { return a.Elems[i] }, depth)
}

func appendTypedArray[T any](dst []byte, t Type, s []T, depth int) ([]byte, error) {
	return appendArrayOf(dst, t, nil, len(s), func(i int) any { return s[i] }, depth)
}

// appendArrayOf writes an array whose n elements, returned by elem, all
// have type t.
func appendArrayOf(dst []byte, t Type, descriptor any, n int, elem func(int) any, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, fmt.Errorf("amqp codec: nesting deeper than %d", MaxDepth)
	}
	code, err := arrayCode(t, n, elem)
	if err != nil {
		return dst, err
	}
	return compound(dst, codeArray8, codeArray32, n, func(dst []byte) ([]byte, error) {
		var err error
		if descriptor != nil {
			dst = append(dst, codeDescribed)
			if dst, err = appendValue(dst, descriptor, depth+1); err != nil {
				return dst, err
			}
		}
		dst = append(dst, code)
		for i := range n {
			if dst, err = appendElem(dst, code, elem(i), depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	})
}

// arrayCode picks the one constructor all elements of an array share: the
// fixed-width form for fixed types, the 8-bit form of variable types when
// every element fits in it.
func arrayCode(t Type, n int, elem func(int) any) (byte, error) {
	switch t {
	case TypeNull:
		return codeNull, nil
	case TypeBool:
		return codeBool, nil
	case TypeUbyte:
		return codeUbyte, nil
	case TypeUshort:
		return codeUshort, nil
	case TypeUint:
		return codeUint, nil
	case TypeUlong:
		return codeUlong, nil
	case TypeByte:
		return codeByte, nil
	case TypeShort:
		return codeShort, nil
	case TypeInt:
		return codeInt, nil
	case TypeLong:
		return codeLong, nil
	case TypeFloat:
		return codeFloat, nil
	case TypeDouble:
		return codeDouble, nil
	case TypeDecimal32:
		return codeDecimal32, nil
	case TypeDecimal64:
		return codeDecimal64, nil
	case TypeDecimal128:
		return codeDecimal128, nil
	case TypeChar:
		return codeChar, nil
	case TypeTimestamp:
		return codeTimestamp, nil
	case TypeUUID:
		return codeUUID, nil
	case TypeList:
		return codeList32, nil
	case TypeMap:
		return codeMap32, nil
	case TypeArray:
		return codeArray32, nil
	case TypeBinary, TypeString, TypeSymbol:
		short := true
		for i := range n {
			if varLen(elem(i)) > math.MaxUint8 {
				short = false
				break
			}
		}
		switch {
		case t == TypeBinary && short:
			return codeVbin8, nil
		case t == TypeBinary:
			return codeVbin32, nil
		case t == TypeString && short:
			return codeStr8, nil
		case t == TypeString:
			return codeStr32, nil
		case short:
			return codeSym8, nil
		}
		return codeSym32, nil
	}
	return 0, fmt.Errorf("%w: array of %v", ErrUnsupported, t)
}

func varLen(v any) int {
	switch v := v.(type) {
	case []byte:
		return len(v)
	case string:
		return len(v)
	case Symbol:
		return len(v)
	}
	return 0
}

// appendElem writes one array element without its constructor.
func appendElem(dst []byte, code byte, v any, depth int) ([]byte, error) {
	mismatch := func() ([]byte, error) {
		return dst, fmt.Errorf("amqp codec: array element %T does not match constructor 0x%02x", v, code)
	}
	switch code {
	case codeNull:
		if v != nil {
			return mismatch()
		}
		return dst, nil
	case codeBool:
		b, ok := v.(bool)
		if !ok {
			return mismatch()
		}
		if b {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	case codeUbyte:
		b, ok := v.(uint8)
		if !ok {
			return mismatch()
		}
		return append(dst, b), nil
	case codeByte:
		b, ok := v.(int8)
		if !ok {
			return mismatch()
		}
		return append(dst, uint8(b)), nil
	case codeUshort:
		x, ok := v.(uint16)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint16(dst, x), nil
	case codeShort:
		x, ok := v.(int16)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint16(dst, uint16(x)), nil
	case codeUint:
		x, ok := v.(uint32)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint32(dst, x), nil
	case codeInt:
		x, ok := v.(int32)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint32(dst, uint32(x)), nil
	case codeChar:
		x, ok := v.(Char)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint32(dst, uint32(x)), nil
	case codeFloat:
		x, ok := v.(float32)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint32(dst, math.Float32bits(x)), nil
	case codeUlong:
		switch x := v.(type) {
		case uint64:
			return binary.BigEndian.AppendUint64(dst, x), nil
		case uint:
			return binary.BigEndian.AppendUint64(dst, uint64(x)), nil
		}
		return mismatch()
	case codeLong:
		switch x := v.(type) {
		case int64:
			return binary.BigEndian.AppendUint64(dst, uint64(x)), nil
		case int:
			return binary.BigEndian.AppendUint64(dst, uint64(x)), nil
		}
		return mismatch()
	case codeDouble:
		x, ok := v.(float64)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint64(dst, math.Float64bits(x)), nil
	case codeTimestamp:
		x, ok := v.(time.Time)
		if !ok {
			return mismatch()
		}
		return binary.BigEndian.AppendUint64(dst, uint64(x.UnixMilli())), nil
	case codeDecimal32:
		x, ok := v.(Decimal32)
		if !ok {
			return mismatch()
		}
		return append(dst, x[:]...), nil
	case codeDecimal64:
		x, ok := v.(Decimal64)
		if !ok {
			return mismatch()
		}
		return append(dst, x[:]...), nil
	case codeDecimal128:
		x, ok := v.(Decimal128)
		if !ok {
			return mismatch()
		}
		return append(dst, x[:]...), nil
	case codeUUID:
		x, ok := v.(UUID)
		if !ok {
			return mismatch()
		}
		return append(dst, x[:]...), nil
	case codeVbin8, codeVbin32:
		x, ok := v.([]byte)
		if !ok {
			return mismatch()
		}
		return appendVarBody(dst, code == codeVbin8, x), nil
	case codeStr8, codeStr32:
		x, ok := v.(string)
		if !ok {
			return mismatch()
		}
		return appendVarBody(dst, code == codeStr8, x), nil
	case codeSym8, codeSym32:
		x, ok := v.(Symbol)
		if !ok {
			return mismatch()
		}
		return appendVarBody(dst, code == codeSym8, x), nil
	case codeList32, codeMap32, codeArray32:
		want := TypeList
		switch code {
		case codeMap32:
			want = TypeMap
		case codeArray32:
			want = TypeArray
		}
		if typeOf(v) != want {
			return mismatch()
		}
		// Encode with its own constructor, then widen it to the 32-bit
		// form without the constructor byte.
		var tmp []byte
		tmp, err := appendValue(tmp, v, depth)
		if err != nil {
			return dst, err
		}
		return append(dst, widen(tmp)...), nil
	}
	return mismatch()
}

func appendVarBody[T ~string | ~[]byte](dst []byte, short bool, v T) []byte {
	if short {
		dst = append(dst, uint8(len(v)))
	} else {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(v)))
	}
	return append(dst, v...)
}

// widen turns an encoded list, map or array (any width) into the body of
// its 32-bit form, without the constructor.
func widen(enc []byte) []byte {
	switch enc[0] {
	case codeList0:
		return []byte{0, 0, 0, 4, 0, 0, 0, 0}
	case codeList8, codeMap8, codeArray8:
		size, count := int(enc[1]), int(enc[2])
		body := enc[3:]
		out := make([]byte, 0, 8+len(body))
		out = binary.BigEndian.AppendUint32(out, uint32(size-1+4))
		out = binary.BigEndian.AppendUint32(out, uint32(count))
		return append(out, body...)
	}
	return enc[1:]
}
