package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var ts = time.UnixMilli(1700000000123).UTC()

// TestEncodeExact pins the bytes of each type's most compact encoding
// (AMQP 1.0 part 1, section 1.6).
func TestEncodeExact(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"null", nil, "40"},
		{"true", true, "41"},
		{"false", false, "42"},
		{"ubyte", uint8(7), "50 07"},
		{"ushort", uint16(0x1234), "60 1234"},
		{"uint0", uint32(0), "43"},
		{"smalluint", uint32(255), "52 ff"},
		{"uint", uint32(256), "70 00000100"},
		{"ulong0", uint64(0), "44"},
		{"smallulong", uint64(0x53), "53 53"},
		{"ulong", uint64(0x0000468C00000004), "80 0000468c00000004"},
		{"go uint is ulong", uint(1), "53 01"},
		{"byte", int8(-1), "51 ff"},
		{"short", int16(-2), "61 fffe"},
		{"smallint", int32(-128), "54 80"},
		{"int", int32(202), "71 000000ca"},
		{"smalllong", int64(127), "55 7f"},
		{"long", int64(-129), "81 ffffffffffffff7f"},
		{"go int is long", 5, "55 05"},
		{"float", float32(1.5), "72 3fc00000"},
		{"double", 1.5, "82 3ff8000000000000"},
		{"decimal32", Decimal32{1, 2, 3, 4}, "74 01020304"},
		{"decimal64", Decimal64{1, 2, 3, 4, 5, 6, 7, 8}, "84 0102030405060708"},
		{"decimal128", Decimal128{15: 1}, "94 00000000000000000000000000000001"},
		{"char", Char('é'), "73 000000e9"},
		{"timestamp", ts, "83 0000018bcfe5687b"},
		{"uuid", UUID{0: 0xde, 15: 0xef}, "98 de0000000000000000000000000000ef"},
		{"vbin8", []byte{1, 2}, "a0 02 0102"},
		{"str8", "hub", "a1 03 687562"},
		{"sym8", Symbol("MSSBCBS"), "a3 07 4d535342434253"},
		{"list0", []any{}, "45"},
		{"list8", []any{uint32(1), "a"}, "c0 06 02 52 01 a1 01 61"},
		{"map8 str keys", Map{{"status-code", int32(202)}}, "c1 13 02 a1 0b 7374617475732d636f6465 71 000000ca"},
		{"empty map", Map{}, "c1 01 00"},
		{"described", Described{uint64(0x24), []any{}}, "00 53 24 45"},
		{"array of str", []string{"0", "1"}, "e0 06 02 a1 01 30 01 31"},
		{"array of sym", []Symbol{"ANONYMOUS"}, "e0 0c 01 a3 09 414e4f4e594d4f5553"},
		{"array of long", []int64{1}, "e0 0a 01 81 0000000000000001"},
		{"array of uint", []uint32{1, 2}, "e0 0a 02 70 00000001 00000002"},
		{"array of bool", []bool{true, false}, "e0 04 02 56 01 00"},
		{"empty array of str", []string{}, "e0 02 00 a1"},
		{"array of described str", Array{Descriptor: Symbol("d"), Elems: []any{"x"}}, "e0 08 01 00 a3 01 64 a1 01 78"},
		{"array of ubyte", Array{Type: TypeUbyte, Elems: []any{uint8(1), uint8(2)}}, "e0 04 02 50 01 02"},
		{"array of list", Array{Elems: []any{[]any{}, []any{true}}}, "e0 13 02 d0 00000004 00000000 00000005 00000001 41"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.v)
			if err != nil {
				t.Fatalf("Marshal(%#v): %v", tt.v, err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("Marshal(%#v) = % x, want % x", tt.v, got, want)
			}
			back, err := Unmarshal(got)
			if err != nil {
				t.Fatalf("Unmarshal(% x): %v", got, err)
			}
			want := tt.v
			switch v := tt.v.(type) {
			case uint:
				want = uint64(v)
			case int:
				want = int64(v)
			case Array:
				if v.Type == 0 {
					v.Type = typeOf(v.Elems[0])
				}
				want = v
			}
			if !Equal(back, want) {
				t.Fatalf("Unmarshal(Marshal(%#v)) = %#v", tt.v, back)
			}
		})
	}
}

// TestDecodeWideForms decodes the encodings Append never produces but
// peers may send.
func TestDecodeWideForms(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"uint as 0x70", "70 00000000", uint32(0)},
		{"ulong as 0x80", "80 0000000000000001", uint64(1)},
		{"int as 0x71", "71 00000001", int32(1)},
		{"long as 0x81", "81 0000000000000001", int64(1)},
		{"bool as 0x56", "56 01", true},
		{"str32", "b1 00000002 6869", "hi"},
		{"sym32", "b3 00000001 61", Symbol("a")},
		{"vbin32", "b0 00000001 ff", []byte{0xff}},
		{"list32", "d0 00000006 00000001 52 05", []any{uint32(5)}},
		{"map32", "d1 00000008 00000002 a3 01 6b 40", Map{{Symbol("k"), nil}}},
		{"array32 of sym", "f0 00000009 00000002 a3 01 61 01 62", []Symbol{"a", "b"}},
		{"array of smalluint", "e0 04 02 52 01 02", []uint32{1, 2}},
		{"array of uint0", "e0 02 03 43", []uint32{0, 0, 0}},
		{"array of true", "e0 02 02 41", []bool{true, true}},
		{"array of smalllong", "e0 03 01 55 ff", []int64{-1}},
		{"array of timestamps", "e0 0a 01 83 0000018bcfe5687b", []time.Time{ts}},
		{"symbolic descriptor", "00 a3 03 616263 45", Described{Symbol("abc"), []any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Unmarshal(unhex(t, tt.in))
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if !Equal(got, tt.want) {
				t.Fatalf("Unmarshal(%s) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	deep := strings.Repeat("00 53 01 ", MaxDepth+1) + "40"
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"unknown code", "ff"},
		{"truncated uint", "70 0000"},
		{"truncated str", "a1 05 6869"},
		{"str32 longer than data", "b1 ffffffff 00"},
		{"list count beyond bytes", "c0 02 09 40"},
		{"list size beyond data", "c0 09 01 40"},
		{"list with trailing bytes", "c0 03 01 40 40"},
		{"map odd count", "c1 02 01 40"},
		{"array bad constructor", "e0 02 01 ff"},
		{"array count beyond bytes", "e0 03 05 70 00"},
		{"huge zero-width array", "f0 00000005 ffffffff 40"},
		{"boolean byte 2", "56 02"},
		{"too deep", deep},
		{"size smaller than count", "c0 00 00"},
		{"trailing bytes", "40 40"},
		{"described missing value", "00 53 01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := Unmarshal(unhex(t, tt.in))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal(%s) = %#v, %v; want ErrMalformed", tt.in, v, err)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"go map", map[string]any{"a": 1}},
		{"struct", struct{}{}},
		{"empty untyped array", Array{}},
		{"mixed array", Array{Elems: []any{"a", Symbol("b")}}},
		{"unsupported in list", []any{1, complex(1, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{0xaa}
			got, err := Append(prefix, tt.v)
			if err == nil {
				t.Fatalf("Append(%#v) = % x, want an error", tt.v, got)
			}
			if !bytes.Equal(got, prefix) {
				t.Fatalf("Append(%#v) left % x, want the prefix only", tt.v, got)
			}
		})
	}
}

// TestCompactBoundaries checks the switch from 8- to 32-bit forms.
func TestCompactBoundaries(t *testing.T) {
	for _, n := range []int{0, 1, 254, 255, 256, 70000} {
		s := strings.Repeat("x", n)
		for _, v := range []any{s, Symbol(s), []byte(s), []any{s}, Map{{"k", s}}, []string{s, "y"}} {
			enc, err := Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Unmarshal(enc)
			if err != nil {
				t.Fatalf("len %d %T: %v", n, v, err)
			}
			if !Equal(back, v) {
				t.Fatalf("len %d %T: round trip changed the value", n, v)
			}
		}
	}
	// 255 one-byte elements: the body (count + elements) no longer fits
	// list8's size byte.
	l := make([]any, 255)
	enc, _ := Marshal(l)
	if enc[0] != codeList32 {
		t.Fatalf("list of 255 nulls encoded with 0x%02x, want list32", enc[0])
	}
	if enc, _ = Marshal(l[:254]); enc[0] != codeList8 {
		t.Fatalf("list of 254 nulls encoded with 0x%02x, want list8", enc[0])
	}
}

func TestNumericExtremes(t *testing.T) {
	for _, v := range []any{
		uint8(math.MaxUint8), uint16(math.MaxUint16), uint32(math.MaxUint32), uint64(math.MaxUint64),
		int8(math.MinInt8), int16(math.MinInt16), int32(math.MinInt32), int32(math.MaxInt32),
		int64(math.MinInt64), int64(math.MaxInt64), float32(math.Inf(-1)), math.MaxFloat64,
		time.UnixMilli(-1).UTC(), time.UnixMilli(math.MaxInt64).UTC(),
	} {
		enc, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Unmarshal(enc)
		if err != nil || !Equal(back, v) {
			t.Fatalf("round trip of %T %v = %v, %v", v, v, back, err)
		}
	}
}

func TestMapHelpers(t *testing.T) {
	m := Map{{Symbol("x-opt-offset"), "12"}, {"x-opt-offset", "str key"}}
	if v, ok := m.Get(Symbol("x-opt-offset")); !ok || v != "12" {
		t.Fatalf("Get(sym) = %v, %v", v, ok)
	}
	if v, _ := m.Get("x-opt-offset"); v != "str key" {
		t.Fatalf("Get(str) = %v, want the str-keyed entry", v)
	}
	if _, ok := m.Get([]byte("x")); ok {
		t.Fatal("Get of an absent binary key found something")
	}
	m.Set(Symbol("x-opt-offset"), "13")
	m.Set(Symbol("new"), int64(1))
	m.Delete("x-opt-offset")
	want := Map{{Symbol("x-opt-offset"), "13"}, {Symbol("new"), int64(1)}}
	if !Equal(m, want) {
		t.Fatalf("after Set/Delete: %#v, want %#v", m, want)
	}
}

func TestDecodeDoesNotAlias(t *testing.T) {
	in := unhex(t, "a0 02 0102")
	v, err := Unmarshal(in)
	if err != nil {
		t.Fatal(err)
	}
	in[2] = 0xff
	if b := v.([]byte); b[0] != 1 {
		t.Fatal("decoded binary aliases the input")
	}
}
