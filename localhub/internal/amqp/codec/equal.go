package codec

import (
	"bytes"
	"slices"
	"time"
)

// Equal reports whether a and b are the same AMQP value: same type and
// same contents. Timestamps compare as instants; NaN equals nothing, as
// in Go.
func Equal(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case []byte:
		bb, ok := b.([]byte)
		return ok && bytes.Equal(a, bb)
	case time.Time:
		bt, ok := b.(time.Time)
		return ok && a.Equal(bt)
	case []any:
		bl, ok := b.([]any)
		return ok && slices.EqualFunc(a, bl, Equal)
	case Map:
		bm, ok := b.(Map)
		return ok && slices.EqualFunc(a, bm, func(x, y MapEntry) bool {
			return Equal(x.Key, y.Key) && Equal(x.Value, y.Value)
		})
	case Described:
		bd, ok := b.(Described)
		return ok && Equal(a.Descriptor, bd.Descriptor) && Equal(a.Value, bd.Value)
	case *Described:
		bd, ok := b.(*Described)
		return ok && (a == bd || a != nil && bd != nil && Equal(*a, *bd))
	case Array:
		ba, ok := b.(Array)
		return ok && a.Type == ba.Type && Equal(a.Descriptor, ba.Descriptor) && slices.EqualFunc(a.Elems, ba.Elems, Equal)
	case []time.Time:
		bt, ok := b.([]time.Time)
		return ok && slices.EqualFunc(a, bt, time.Time.Equal)
	case [][]byte:
		bb, ok := b.([][]byte)
		return ok && slices.EqualFunc(a, bb, bytes.Equal)
	case []bool:
		return sliceEqual(a, b)
	case []uint16:
		return sliceEqual(a, b)
	case []uint32:
		return sliceEqual(a, b)
	case []uint64:
		return sliceEqual(a, b)
	case []int8:
		return sliceEqual(a, b)
	case []int16:
		return sliceEqual(a, b)
	case []int32:
		return sliceEqual(a, b)
	case []int64:
		return sliceEqual(a, b)
	case []float32:
		return sliceEqual(a, b)
	case []float64:
		return sliceEqual(a, b)
	case []Char:
		return sliceEqual(a, b)
	case []UUID:
		return sliceEqual(a, b)
	case []string:
		return sliceEqual(a, b)
	case []Symbol:
		return sliceEqual(a, b)
	case bool, uint8, uint16, uint32, uint64, uint, int8, int16, int32, int64, int,
		float32, float64, Decimal32, Decimal64, Decimal128, Char, UUID, string, Symbol:
		return a == b
	}
	return false // not an AMQP value
}

func sliceEqual[T comparable](a []T, b any) bool {
	bs, ok := b.([]T)
	return ok && slices.Equal(a, bs)
}
