package handlers

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
)

// RunOn is Run serving on ln, a listener the test bound.
func RunOn(ctx context.Context, ln net.Listener, getenv func(string) string, stdout, stderr io.Writer) error {
	return run(ctx, ln, getenv, stdout, stderr)
}

// DecoderNames are the TwinChangeProcessor decoders the benchmark
// compares: the processor's own and the same decoding with JSON libraries.
var DecoderNames = []string{"jsonscan", "encoding-json", "segmentio"}

func decoderNamed(name string) batchDecoder {
	switch name {
	case "jsonscan":
		return scanBatch
	case "encoding-json":
		return decodeBatchStd
	case "segmentio":
		return decodeBatchSegment
	}
	panic("no decoder " + name)
}

// Decode runs the named decoder on body (which it may overwrite) and
// renders what the processor would act on, event by event, for
// comparisons.
func Decode(name string, body []byte) (partition string, events []string, err error) {
	b, err := decoderNamed(name)(body)
	for _, ev := range b.Events {
		events = append(events, fmt.Sprintf("seq=%d enqueued=%s change=%+v err=%v", ev.SequenceNumber, ev.EnqueuedTimeUTC, ev.Change, ev.Err))
	}
	return b.Partition, events, err
}

// DecodeStd is the benchmark's floor: the batch decoded with encoding/json.
func DecodeStd(body []byte) error {
	_, err := decodeBatchStd(body)
	return err
}

// NewServerWithDecoder is NewServer with TwinChangeProcessor reading its
// invocations with the named decoder.
func NewServerWithDecoder(d Deps, name string) http.Handler {
	d.decodeBatch = decoderNamed(name)
	return NewServer(d)
}

// RecordPatch is the tags patch that writes a fleet reboot's record.
var RecordPatch = recordPatch
