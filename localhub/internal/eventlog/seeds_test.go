//go:build seedgen

package eventlog

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWriteSeedCorpora regenerates the checked-in seed corpora of the fuzz
// targets from real records:
//
//	go test -tags seedgen -run TestWriteSeedCorpora ./localhub/internal/eventlog/
func TestWriteSeedCorpora(t *testing.T) {
	var records [][]byte
	for i, e := range sampleEvents() {
		records = append(records, encodeRecord(t, e, 0, int64(i), 1_700_000_000_000+int64(i)))
	}
	batch := append(encodeRecord(t, Event{Body: []byte("b0")}, flagMore, 0, 5), encodeRecord(t, Event{Body: []byte("b1")}, 0, 1, 5)...)

	decode := [][]byte{records[1], records[2], records[3], batch, records[2][:len(records[2])-1], nil}
	writeCorpus(t, "FuzzDecodeRecord", decode)

	// FuzzRecover gets what follows a segment header: records numbered
	// from 0, and the damage recovery must handle.
	var stream []byte
	for i, e := range sampleEvents() {
		stream = append(stream, encodeRecord(t, e, 0, int64(i), 1_700_000_000_000)...)
	}
	withBatch := append(append([]byte(nil), records[0]...), append(encodeRecord(t, Event{Body: []byte("b0")}, flagMore, 1, 5), encodeRecord(t, Event{Body: []byte("b1")}, 0, 2, 5)...)...)
	flipped := append([]byte(nil), stream...)
	flipped[len(records[0])+len(records[1])+20] ^= 1
	recover := [][]byte{
		stream,
		stream[:len(stream)-7],               // torn last record
		withBatch[:len(withBatch)-3],         // torn batch
		flipped,                              // bad checksum mid-stream
		append(stream, make([]byte, 100)...), // zeros after the end
		append(records[0], records[0]...),    // a sequence number repeated
		{},
	}
	writeCorpus(t, "FuzzRecover", recover)
}

func writeCorpus(t *testing.T, target string, inputs [][]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for i, in := range inputs {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", in)
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644))
	}
}
