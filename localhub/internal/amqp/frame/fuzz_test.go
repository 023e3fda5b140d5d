package frame

import (
	"bytes"
	"flag"
	"testing"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/internal/corpus"
)

var writeCorpus = flag.Bool("write-corpus", false, "rewrite testdata/fuzz seed corpora")

func bodySeeds() [][]any {
	var out [][]any
	for _, b := range bodies() {
		enc, err := b.AppendBody(nil)
		if err != nil {
			panic(err)
		}
		out = append(out, []any{b.FrameType(), enc})
	}
	return out
}

func frameSeeds() [][]byte {
	var out [][]byte
	for _, b := range bodies() {
		enc, err := AppendFrame(nil, 1, b)
		if err != nil {
			panic(err)
		}
		out = append(out, enc)
	}
	// Several frames back to back, a heartbeat and an extended header.
	out = append(out, bytes.Join(append(out[:3:3], Heartbeat), nil),
		[]byte{0, 0, 0, 16, 3, 0, 0, 1, 9, 9, 9, 9, 0x00, 0x53, 0x17, 0x45})
	return out
}

// FuzzParseBody checks that no body makes ParseBody panic and that what it
// accepts re-encodes canonically.
func FuzzParseBody(f *testing.F) {
	for _, s := range bodySeeds() {
		f.Add(s[0].(uint8), s[1].([]byte))
	}
	f.Fuzz(func(t *testing.T, frameType uint8, b []byte) {
		body, err := ParseBody(frameType, b)
		if err != nil || body == nil {
			return
		}
		enc, err := body.AppendBody(nil)
		if err != nil {
			t.Fatalf("AppendBody(%#v): %v", body, err)
		}
		again, err := ParseBody(frameType, enc)
		if err != nil {
			t.Fatalf("ParseBody of our own encoding % x: %v", enc, err)
		}
		enc2, err := again.AppendBody(nil)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("body encoding not canonical: % x then % x (%v)", enc, enc2, err)
		}
	})
}

// FuzzReadFrame reads a stream of frames as the server does: no panic,
// no body larger than the limit.
func FuzzReadFrame(f *testing.F) {
	for _, s := range frameSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		const max = 4096
		r := bytes.NewReader(stream)
		for {
			h, body, err := ReadFrame(r, max)
			if err != nil {
				return
			}
			if h.Size > max || len(body) > max {
				t.Fatalf("frame of %d bytes passed a limit of %d", h.Size, max)
			}
			_, _ = ParseBody(h.Type, body)
		}
	})
}

func TestWriteCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("corpus files are rewritten only with -write-corpus")
	}
	corpus.Write(t, "FuzzParseBody", bodySeeds()...)
	corpus.Write(t, "FuzzReadFrame", corpus.Bytes(frameSeeds())...)
}
