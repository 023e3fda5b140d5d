package eventlog

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScanAnyBufferSize scans one segment through buffers of every small
// size: records cross buffer ends at every possible byte.
func TestScanAnyBufferSize(t *testing.T) {
	l := openLog(t, Options{Partitions: 1})
	var want []int64
	for i := range 40 {
		e := mustAppend(t, l, Event{DeviceID: "dev", Body: []byte(strconv.Itoa(i) + string(make([]byte, i*13%200)))})
		want = append(want, offsetOf(t, e))
	}
	p := l.parts[0]
	s := p.segs[0]
	for size := range 400 {
		var got []int64
		err := s.scan(make([]byte, 0, size), s.baseOff, s.endOff, func(off int64, fr frame) bool {
			require.Equal(t, int64(len(got)), fr.seq)
			got = append(got, off)
			return true
		})
		require.NoError(t, err, "buffer of %d bytes", size)
		require.Equal(t, want, got, "buffer of %d bytes", size)
	}
}

func TestSegHeader(t *testing.T) {
	h := segHeader{baseSeq: 7, baseOff: 1234, prevOff: 1200, prevTime: -3}
	got, err := decodeSegHeader(h.encode())
	require.NoError(t, err)
	require.Equal(t, h, got)

	for _, tt := range []struct {
		name string
		b    func() []byte
		want string
	}{
		{"short", func() []byte { return h.encode()[:headerSize-1] }, "incomplete"},
		{"magic", func() []byte { b := h.encode(); b[0] = 'X'; return b }, "not a segment"},
		{"checksum", func() []byte { b := h.encode(); b[10] ^= 1; return b }, "checksum"},
		{"negative", func() []byte { return segHeader{baseSeq: -1}.encode() }, "out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeSegHeader(tt.b())
			require.ErrorContains(t, err, tt.want)
		})
	}
}
