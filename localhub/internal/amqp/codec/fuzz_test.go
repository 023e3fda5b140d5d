package codec

import (
	"bytes"
	"flag"
	"testing"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/internal/corpus"
)

// writeCorpus rewrites the checked-in seed corpora from the seeds below:
// go test -run TestWriteCorpus -write-corpus ./localhub/internal/amqp/codec
var writeCorpus = flag.Bool("write-corpus", false, "rewrite testdata/fuzz seed corpora")

func valueSeeds() [][]byte {
	values := []any{
		nil, true, uint8(1), uint16(2), uint32(300), uint64(1 << 40), int8(-1), int16(-300),
		int32(-70000), int64(-1 << 40), float32(1.5), 2.5, Decimal32{1}, Decimal64{2}, Decimal128{3},
		Char('x'), time.UnixMilli(1700000000000).UTC(), UUID{1}, []byte("bin"), "str", Symbol("sym"),
		[]any{uint32(1), "a", []any{}}, Map{{Symbol("k"), int32(1)}, {"s", Map{}}},
		[]string{"0", "1"}, []Symbol{"MSSBCBS", "ANONYMOUS", "PLAIN"}, []int64{1, -1}, []bool{true},
		Array{Descriptor: uint64(0x468C00000004), Elems: []any{"amqp.annotation.x-opt-offset > '-1'"}},
		Array{Type: TypeUbyte, Elems: []any{uint8(1)}},
		Array{Elems: []any{Map{{"a", nil}}}},
		Described{uint64(0x24), []any{}},
	}
	var out [][]byte
	for _, v := range values {
		b, err := Marshal(v)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	// Wide and zero-width forms Marshal never writes.
	out = append(out,
		[]byte{0xb1, 0, 0, 0, 2, 'h', 'i'},
		[]byte{0xd0, 0, 0, 0, 6, 0, 0, 0, 1, 0x52, 5},
		[]byte{0xe0, 2, 3, 0x43},
		[]byte{0xf0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x40},
	)
	return out
}

func messageSeeds() [][]byte {
	seq := uint32(1)
	msgs := []*Message{
		{Data: [][]byte{[]byte("hello")}},
		{
			Header:                &Header{Durable: true, Priority: 4, TTL: 1000},
			DeliveryAnnotations:   Map{{Symbol("d"), int64(1)}},
			Annotations:           Map{{Symbol("x-opt-offset"), "0"}, {Symbol("x-opt-sequence-number"), int64(0)}},
			Properties:            &Properties{MessageID: "id", ReplyTo: "$cbs", CreationTime: time.UnixMilli(1).UTC(), GroupSequence: &seq},
			ApplicationProperties: Map{{"operation", "put-token"}, {"expiration", time.UnixMilli(2).UTC()}},
			Value:                 "SharedAccessSignature sr=x&sig=y&se=1&skn=z",
			HasValue:              true,
			Footer:                Map{{Symbol("f"), nil}},
		},
		{Sequence: [][]any{{int32(1)}, {}}},
	}
	var out [][]byte
	for _, m := range msgs {
		b, err := m.MarshalBinary()
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecode checks that decoding never panics and that whatever decodes
// re-encodes to a canonical form that decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range valueSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := Decode(b)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("Decode used %d of %d bytes", n, len(b))
		}
		enc, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(Decode(% x)) = %v", b, err)
		}
		v2, err := Unmarshal(enc)
		if err != nil {
			t.Fatalf("Unmarshal(Marshal(%#v)) = %v", v, err)
		}
		enc2, err := Marshal(v2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not canonical: % x then % x (%v)", enc, enc2, err)
		}
	})
}

// FuzzMessage does the same for whole messages.
func FuzzMessage(f *testing.F) {
	for _, s := range messageSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("MarshalBinary after UnmarshalBinary(% x): %v", b, err)
		}
		var m2 Message
		if err := m2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("UnmarshalBinary(% x) of our own encoding: %v", enc, err)
		}
		enc2, err := m2.MarshalBinary()
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("message encoding not canonical: % x then % x (%v)", enc, enc2, err)
		}
		if _, err := SplitSections(enc); err != nil {
			t.Fatalf("SplitSections of a valid message: %v", err)
		}
	})
}

func TestWriteCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("corpus files are rewritten only with -write-corpus")
	}
	corpus.Write(t, "FuzzDecode", corpus.Bytes(valueSeeds())...)
	corpus.Write(t, "FuzzMessage", corpus.Bytes(messageSeeds())...)
	corpus.Write(t, "FuzzSkip", corpus.Bytes(valueSeeds())...)
}
