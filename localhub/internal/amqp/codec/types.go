package codec

import (
	"fmt"
	"time"
)

// Go types for the AMQP types that have no exact Go counterpart. The
// others map directly: null=nil, boolean=bool, ubyte=uint8, ushort=uint16,
// uint=uint32, ulong=uint64, byte=int8, short=int16, int=int32, long=int64,
// float=float32, double=float64, timestamp=time.Time (millisecond
// precision, UTC when decoded), binary=[]byte, string=string, list=[]any.
type (
	// Symbol is an AMQP symbol (ASCII). A Go string encodes as str, never
	// as sym: the two are different values to every peer.
	Symbol string
	// UUID is an AMQP uuid (RFC 4122 byte order).
	UUID [16]byte
	// Char is an AMQP char: one UTF-32 code point.
	Char rune
	// Decimal32, Decimal64 and Decimal128 are IEEE 754 decimals, carried
	// opaque: nothing here does decimal arithmetic.
	Decimal32  [4]byte
	Decimal64  [8]byte
	Decimal128 [16]byte
)

func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Described is a described value: a descriptor (by convention uint64 or
// Symbol) and the value it describes.
type Described struct {
	Descriptor any
	Value      any
}

// MapEntry is one key/value pair of a Map.
type MapEntry struct {
	Key, Value any
}

// Map is an AMQP map kept as its pairs in wire order. A slice rather than
// a Go map because AMQP keys may be of any type ([]byte, lists, ...),
// because str and sym keys with the same text are different keys, and
// because a stable order makes encodings reproducible.
type Map []MapEntry

// Get returns the value of the first entry whose key equals key (with
// Equal: the type must match too, so "a" does not find Symbol("a")).
func (m Map) Get(key any) (any, bool) {
	for _, e := range m {
		if Equal(e.Key, key) {
			return e.Value, true
		}
	}
	return nil, false
}

// Set replaces the value of key, or appends the pair if key is absent.
func (m *Map) Set(key, value any) {
	for i, e := range *m {
		if Equal(e.Key, key) {
			(*m)[i].Value = value
			return
		}
	}
	*m = append(*m, MapEntry{Key: key, Value: value})
}

// Delete removes every entry whose key equals key.
func (m *Map) Delete(key any) {
	out := (*m)[:0]
	for _, e := range *m {
		if !Equal(e.Key, key) {
			out = append(out, e)
		}
	}
	clear((*m)[len(out):])
	*m = out
}

// Type names an AMQP type, independent of its encoding width. Arrays need
// it: every element of an array shares one constructor.
type Type uint8

// The AMQP types.
const (
	TypeInvalid Type = iota
	TypeNull
	TypeBool
	TypeUbyte
	TypeUshort
	TypeUint
	TypeUlong
	TypeByte
	TypeShort
	TypeInt
	TypeLong
	TypeFloat
	TypeDouble
	TypeDecimal32
	TypeDecimal64
	TypeDecimal128
	TypeChar
	TypeTimestamp
	TypeUUID
	TypeBinary
	TypeString
	TypeSymbol
	TypeList
	TypeMap
	TypeArray
)

var typeNames = [...]string{
	TypeInvalid: "invalid", TypeNull: "null", TypeBool: "boolean", TypeUbyte: "ubyte",
	TypeUshort: "ushort", TypeUint: "uint", TypeUlong: "ulong", TypeByte: "byte",
	TypeShort: "short", TypeInt: "int", TypeLong: "long", TypeFloat: "float",
	TypeDouble: "double", TypeDecimal32: "decimal32", TypeDecimal64: "decimal64",
	TypeDecimal128: "decimal128", TypeChar: "char", TypeTimestamp: "timestamp",
	TypeUUID: "uuid", TypeBinary: "binary", TypeString: "string", TypeSymbol: "symbol",
	TypeList: "list", TypeMap: "map", TypeArray: "array",
}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Array is an AMQP array that has no typed Go slice: arrays of described
// values, of ubyte (a []byte is binary), of decimals, nulls, lists, maps
// or arrays. Arrays of the other primitive types are typed slices
// ([]string is an array of str, []Symbol of sym, []int64 of long, ...),
// both when encoding and when decoding.
type Array struct {
	// Type is the element type. When zero, Encode takes it from the first
	// element, so an empty Array needs it.
	Type Type
	// Descriptor, when not nil, describes every element (the array's
	// constructor is a described one).
	Descriptor any
	// Elems holds the element values (without their descriptor), each of
	// the Go type Type maps to.
	Elems []any
}

// typeOf returns the AMQP type a Go value encodes as, for the value kinds
// that may be array elements.
func typeOf(v any) Type {
	switch v.(type) {
	case nil:
		return TypeNull
	case bool:
		return TypeBool
	case uint8:
		return TypeUbyte
	case uint16:
		return TypeUshort
	case uint32:
		return TypeUint
	case uint64, uint:
		return TypeUlong
	case int8:
		return TypeByte
	case int16:
		return TypeShort
	case int32:
		return TypeInt
	case int64, int:
		return TypeLong
	case float32:
		return TypeFloat
	case float64:
		return TypeDouble
	case Decimal32:
		return TypeDecimal32
	case Decimal64:
		return TypeDecimal64
	case Decimal128:
		return TypeDecimal128
	case Char:
		return TypeChar
	case time.Time:
		return TypeTimestamp
	case UUID:
		return TypeUUID
	case []byte:
		return TypeBinary
	case string:
		return TypeString
	case Symbol:
		return TypeSymbol
	case []any:
		return TypeList
	case Map:
		return TypeMap
	case Array, []bool, []uint16, []uint32, []uint64, []int8, []int16, []int32, []int64,
		[]float32, []float64, []Char, []time.Time, []UUID, [][]byte, []string, []Symbol:
		return TypeArray
	}
	return TypeInvalid
}
