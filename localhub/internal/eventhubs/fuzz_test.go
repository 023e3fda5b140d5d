package eventhubs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// selectorSeeds are what the clients send (Go, JS quoted; .NET
// unquoted; amenzhinsky's alias) and near misses.
var selectorSeeds = []string{
	"amqp.annotation.x-opt-offset > '-1'",
	"amqp.annotation.x-opt-offset > '@latest'",
	"amqp.annotation.x-opt-offset >= '12345'",
	"amqp.annotation.x-opt-sequence-number > '41'",
	"amqp.annotation.x-opt-enqueued-time > '1700000000000'",
	"amqp.annotation.x-opt-offset > -1",
	"amqp.annotation.x-opt-offset > @latest",
	"amqp.annotation.x-opt-enqueued-time > 1700000000000",
	"amqp.annotation.x-opt-enqueuedtimeutc > '1700000000000'",
	"amqp.annotation.x-opt-offset>'5'",
	"amqp.annotation.x-opt-offset < '5'",
	"amqp.annotation.x-opt-offset > '5",
	"amqp.annotation.x-opt-sequence-number > '-9223372036854775808'",
	"",
}

func FuzzParseSelector(f *testing.F) {
	for _, s := range selectorSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		pos, err := parseSelector(expr)
		if err != nil {
			return
		}
		set := 0
		for _, b := range []bool{pos.Earliest, pos.Latest, pos.Offset != nil, pos.SequenceNumber != nil, pos.EnqueuedTime != nil} {
			if b {
				set++
			}
		}
		require.Equal(t, 1, set, "exactly one start position from %q", expr)
		// What parsed, written back as Go's client writes it, parses the same.
		again, err := parseSelector(format(pos))
		require.NoError(t, err, "%q → %q", expr, format(pos))
		require.Equal(t, pos, again)
	})
}

// format writes a position as azeventhubs' getStartExpression does.
func format(p eventlog.Position) string {
	op := ">"
	if p.Inclusive {
		op = ">="
	}
	switch {
	case p.Earliest:
		return "amqp.annotation.x-opt-offset " + op + " '-1'"
	case p.Latest:
		return "amqp.annotation.x-opt-offset " + op + " '@latest'"
	case p.Offset != nil:
		return "amqp.annotation.x-opt-offset " + op + " '" + *p.Offset + "'"
	case p.SequenceNumber != nil:
		return "amqp.annotation.x-opt-sequence-number " + op + " '" + strconv.FormatInt(*p.SequenceNumber, 10) + "'"
	}
	return fmt.Sprintf("amqp.annotation.x-opt-enqueued-time %s '%d'", op, p.EnqueuedTime.UnixMilli())
}

// addressServer is the part of a Server that parseAddress reads.
func addressServer() *Server {
	return &Server{hostname: "myhub.azure-devices.net", name: "myhub", groups: []string{DefaultConsumerGroup, "functions"}, partitions: 4}
}

var addressSeeds = []string{
	"myhub/ConsumerGroups/$Default/Partitions/0", "/myhub/ConsumerGroups/functions/Partitions/3",
	"myhub/consumergroups/$default/partitions/1", "amqps://myhub.azure-devices.net:5671/myhub/Partitions/2",
	"myhub", "myhub/$management", "$management", "$cbs", "myhub/Partitions/04", "myhub/Partitions/4",
	"other/ConsumerGroups/$Default/Partitions/0", "myhub/ConsumerGroups//Partitions/0", "//", "",
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range addressSeeds {
		f.Add(s)
	}
	s := addressServer()
	f.Fuzz(func(t *testing.T, raw string) {
		a, _, ok := s.parseAddress(raw)
		if !ok {
			return
		}
		// The canonical path names the same node.
		again, _, ok := s.parseAddress(a.path)
		require.True(t, ok, "%q → %q", raw, a.path)
		require.Equal(t, a, again)
		if a.node == nodeConsumer || a.node == nodePartition {
			require.Less(t, a.partition, 4)
			require.GreaterOrEqual(t, a.partition, 0)
		}
	})
}

// FuzzUnpack feeds producer deliveries: whatever unpack accepts is
// stored, and reads back (as the consumer's message) the same.
func FuzzUnpack(f *testing.F) {
	for _, seed := range unpackSeeds(f) {
		f.Add(seed.format, seed.payload)
	}
	f.Fuzz(func(t *testing.T, format uint32, payload []byte) {
		events, _, err := unpack(&amqp.Delivery{Format: format, Payload: payload})
		if err != nil {
			return
		}
		var enc encoder
		for i := range events {
			e := events[i]
			e.SequenceNumber, e.Offset, e.EnqueuedTime = 7, "1024", time.UnixMilli(1_700_000_000_000).UTC()
			p, err := enc.encode(&e)
			require.NoError(t, err)
			var m codec.Message
			require.NoError(t, m.UnmarshalBinary(p))
			back, err := fromProducer(&m)
			require.NoError(t, err, "what a consumer reads, a producer may send")
			back.SequenceNumber, back.Offset, back.EnqueuedTime = e.SequenceNumber, e.Offset, e.EnqueuedTime
			again, err := enc.encode(&back)
			require.NoError(t, err)
			require.True(t, bytes.Equal(p, again), "stored %#v\nread   %#v", e, back)
		}
	})
}

type unpackSeed struct {
	format  uint32
	payload []byte
}

func unpackSeeds(t testing.TB) []unpackSeed {
	enc := func(m *codec.Message) []byte {
		b, err := m.MarshalBinary()
		require.NoError(t, err)
		return b
	}
	one := enc(&codec.Message{
		Properties:            &codec.Properties{MessageID: "m1", CorrelationID: "c1", ContentType: "application/json", UserID: []byte("u")},
		ApplicationProperties: codec.Map{{Key: "s", Value: "v"}, {Key: "n", Value: int64(5)}, {Key: "f", Value: 1.5}},
		Annotations:           codec.Map{{Key: codec.Symbol("x-opt-partition-key"), Value: "pk"}, {Key: codec.Symbol("sym"), Value: codec.Symbol("y")}},
		Data:                  [][]byte{[]byte(`{"a":1}`)},
	})
	two := enc(&codec.Message{Data: [][]byte{[]byte("second")}})
	batch := enc(&codec.Message{
		Annotations: codec.Map{{Key: codec.Symbol("x-opt-partition-key"), Value: "pk"}},
		Data:        [][]byte{one, two},
	})
	return []unpackSeed{
		{0, one}, {0, two}, {BatchFormat, batch}, {BatchFormat, one},
		{0, enc(&codec.Message{Value: "v"})},
		{0, enc(&codec.Message{Data: [][]byte{[]byte("a"), []byte("b")}})},
		{0, one[:len(one)-3]}, {BatchFormat, batch[:len(batch)-1]}, {0, nil},
	}
}

var audienceSeeds = []string{
	"amqps://myhub.azure-devices.net/myhub/consumergroups/$default/partitions/0",
	"amqp://localhost:5672/myhub", "sb://myhub.azure-devices.net:5671/myhub/$management",
	"myhub.azure-devices.net/myhub", "sb://[::1]:5672/myhub/", "://", "", "sb://host",
}

// FuzzSplitAudience: a token's audience is cut into a host without port
// and an entity path without outer slashes, and a token always covers
// the path it names.
func FuzzSplitAudience(f *testing.F) {
	for _, s := range audienceSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, aud string) {
		host, path := splitAudience(aud)
		require.NotContains(t, host, "/")
		require.False(t, strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/"), "%q", path)
		g := grant{path: strings.ToLower(path), rights: Listen}
		require.True(t, g.covers(path, Listen, time.Now()))
		require.True(t, g.covers(path+"/Partitions/0", Listen, time.Now()))
		if path != "" {
			require.False(t, g.covers(path+"x", Listen, time.Now()), "whole segments only")
		}
	})
}
