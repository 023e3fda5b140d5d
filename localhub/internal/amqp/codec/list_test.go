package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestListWriter(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *ListWriter)
		want  string
	}{
		{"all null is list0", func(w *ListWriter) { w.Null(); w.String(""); w.BoolOrNull(false) }, "00 53 24 45"},
		{"trailing nulls dropped", func(w *ListWriter) { w.Uint(1); w.Null(); w.Map(nil) }, "00 53 24 c0 03 01 52 01"},
		{"inner nulls kept", func(w *ListWriter) { w.Null(); w.Bool(true) }, "00 53 24 c0 03 02 40 41"},
		{"symbols as array", func(w *ListWriter) { w.Symbols([]Symbol{"a"}) }, "00 53 24 c0 07 01 e0 04 01 a3 01 61"},
		{"list32 when large", func(w *ListWriter) { w.String(strings.Repeat("x", 300)) },
			"00 53 24 d0 00000135 00000001 b1 0000012c " + strings.Repeat("78", 300)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := BeginDescribedList([]byte{}, 0x24)
			tt.write(&w)
			got, err := w.End()
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tt.want); !bytes.Equal(got, want) {
				t.Fatalf("got % x\nwant % x", got, want)
			}
		})
	}
}

func TestListReaderTypes(t *testing.T) {
	w := BeginDescribedList(nil, 0x12)
	w.String("name")
	w.Uint(70000)
	w.Bool(true)
	w.Ubyte(1)
	w.Null()
	w.Ushort(9)
	w.Ulong(1 << 40)
	w.Binary([]byte{})
	w.Timestamp(time.UnixMilli(5))
	w.Symbols([]Symbol{"x", "y"})
	w.Map(Map{{Symbol("k"), int64(1)}})
	w.Value(Described{uint64(0x28), []any{"addr"}})
	enc, err := w.End()
	if err != nil {
		t.Fatal(err)
	}
	desc, r, rest, err := ReadDescribedList(append(enc, 0xaa))
	if err != nil {
		t.Fatal(err)
	}
	if desc != uint64(0x12) || !bytes.Equal(rest, []byte{0xaa}) {
		t.Fatalf("descriptor %v rest % x", desc, rest)
	}
	var (
		s    string
		u    uint32
		b    bool
		ub   uint8
		us   uint16
		ul   uint64
		bin  []byte
		ts   time.Time
		syms []Symbol
		m    Map
	)
	r.String(&s)
	r.Uint(&u)
	r.Bool(&b)
	r.Ubyte(&ub)
	if r.Uint(&u) {
		t.Fatal("null field reported present")
	}
	r.Ushort(&us)
	r.Ulong(&ul)
	r.Binary(&bin)
	r.Timestamp(&ts)
	r.Symbols(&syms)
	r.Map(&m)
	d, sub, ok := r.Composite()
	if !ok || d != uint64(0x28) {
		t.Fatalf("Composite = %v, %v", d, ok)
	}
	var addr string
	sub.String(&addr)
	if err := sub.Err(); err != nil || addr != "addr" {
		t.Fatalf("source address %q, %v", addr, err)
	}
	if r.Bool(&b) {
		t.Fatal("field past the end reported present")
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if s != "name" || u != 70000 || !b || ub != 1 || us != 9 || ul != 1<<40 || bin == nil || len(bin) != 0 ||
		ts.UnixMilli() != 5 || len(syms) != 2 || len(m) != 1 {
		t.Fatalf("fields read back wrong: %q %d %v %d %d %d %v %v %v %v", s, u, b, ub, us, ul, bin, ts, syms, m)
	}
}

func TestListReaderWrongType(t *testing.T) {
	w := BeginDescribedList(nil, 0x10)
	w.Uint(1)
	enc, _ := w.End()
	_, r, _, err := ReadDescribedList(enc)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	r.Name("open").String(&s)
	if err := r.Err(); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "open field 0") {
		t.Fatalf("Err() = %v, want a malformed open field 0", err)
	}
}
