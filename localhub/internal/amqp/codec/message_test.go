package codec_test

import (
	"bytes"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

var enqueued = time.UnixMilli(1700000000123).UTC()

// iotHubEvent is a telemetry event shaped as IoT Hub delivers it on its
// built-in endpoint.
func iotHubEvent(body []byte) *codec.Message {
	return &codec.Message{
		Annotations: codec.Map{
			{codec.Symbol("iothub-connection-device-id"), "dev-0001"},
			{codec.Symbol("iothub-connection-auth-method"), `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`},
			{codec.Symbol("iothub-connection-auth-generation-id"), "638000000000000000"},
			{codec.Symbol("iothub-enqueuedtime"), enqueued},
			{codec.Symbol("iothub-message-source"), "Telemetry"},
			{codec.Symbol("x-opt-sequence-number"), int64(123456)},
			{codec.Symbol("x-opt-offset"), "987654321"},
			{codec.Symbol("x-opt-enqueued-time"), enqueued},
			{codec.Symbol("x-opt-partition-key"), "dev-0001"},
		},
		Properties: &codec.Properties{
			MessageID:       "6e1d0b9c-0b7a-4b7e-9a39-6f3b2a1c0d11",
			CorrelationID:   "corr-1",
			UserID:          []byte("dev-0001"),
			ContentType:     "application/json",
			ContentEncoding: "utf-8",
		},
		ApplicationProperties: codec.Map{
			{"temperatureAlert", "false"},
			{"level", int32(3)},
		},
		Data: [][]byte{body},
	}
}

// TestRoundTripWithGoAMQP encodes with go-amqp's public Message and decodes
// with ours, then back, checking that exact types survive both ways.
func TestRoundTripWithGoAMQP(t *testing.T) {
	str := func(s string) *string { return &s }
	seq := uint32(9)
	ct := enqueued.Add(time.Hour)
	theirs := &goamqp.Message{
		Header: &goamqp.MessageHeader{Durable: true, Priority: 7, TTL: 5 * time.Second, FirstAcquirer: true, DeliveryCount: 2},
		DeliveryAnnotations: goamqp.Annotations{
			goamqp.Symbol("da"): uint16(3),
		},
		Annotations: goamqp.Annotations{
			goamqp.Symbol("x-opt-offset"):          "12",
			goamqp.Symbol("x-opt-sequence-number"): int64(5),
			goamqp.Symbol("x-opt-enqueued-time"):   enqueued,
			"str-key":                              int32(-7),
			goamqp.Symbol("uuid"):                  goamqp.UUID{1, 2, 3},
		},
		Properties: &goamqp.MessageProperties{
			MessageID:          uint64(77),
			UserID:             []byte("u"),
			To:                 str("to"),
			Subject:            str("subj"),
			ReplyTo:            str("$cbs-reply"),
			CorrelationID:      goamqp.UUID{9},
			ContentType:        str("application/json"),
			ContentEncoding:    str("utf-8"),
			AbsoluteExpiryTime: &ct,
			CreationTime:       &enqueued,
			GroupID:            str("g"),
			GroupSequence:      &seq,
			ReplyToGroupID:     str("rg"),
		},
		ApplicationProperties: map[string]any{
			"status-code":   int32(200),
			"partition_ids": []string{"0", "1", "2", "3"},
			"b":             []byte{1},
			"f":             float64(1.25),
			"l":             []any{int8(-1), nil, "x"},
		},
		Value: codec.Map{}, // replaced below; go-amqp needs its own types
		Footer: goamqp.Annotations{
			goamqp.Symbol("f"): true,
		},
	}
	theirs.Value = map[string]any{"name": "hub", "georeplication_factor": int32(1)}

	enc, err := theirs.MarshalBinary()
	require.NoError(t, err)

	var ours codec.Message
	require.NoError(t, ours.UnmarshalBinary(enc))

	require.Equal(t, &codec.Header{Durable: true, Priority: 7, TTL: 5000, FirstAcquirer: true, DeliveryCount: 2}, ours.Header)
	got, _ := ours.DeliveryAnnotations.Get(codec.Symbol("da"))
	require.Equal(t, uint16(3), got)
	for key, want := range map[any]any{
		codec.Symbol("x-opt-offset"):          "12",
		codec.Symbol("x-opt-sequence-number"): int64(5),
		codec.Symbol("x-opt-enqueued-time"):   enqueued,
		codec.Symbol("str-key"):               int32(-7), // go-amqp writes string annotation keys as sym
		codec.Symbol("uuid"):                  codec.UUID{1, 2, 3},
	} {
		got, ok := ours.Annotations.Get(key)
		require.True(t, ok, "annotation %v (%T) missing", key, key)
		require.True(t, codec.Equal(got, want), "annotation %v = %#v, want %#v", key, got, want)
	}
	p := ours.Properties
	require.Equal(t, uint64(77), p.MessageID)
	require.Equal(t, codec.UUID{9}, p.CorrelationID)
	require.Equal(t, "$cbs-reply", p.ReplyTo)
	require.Equal(t, codec.Symbol("application/json"), p.ContentType)
	require.True(t, p.CreationTime.Equal(enqueued))
	require.True(t, p.AbsoluteExpiryTime.Equal(ct))
	require.Equal(t, uint32(9), *p.GroupSequence)
	ids, _ := ours.ApplicationProperties.Get("partition_ids")
	require.Equal(t, []string{"0", "1", "2", "3"}, ids)
	sc, _ := ours.ApplicationProperties.Get("status-code")
	require.Equal(t, int32(200), sc)
	l, _ := ours.ApplicationProperties.Get("l")
	require.Equal(t, []any{int8(-1), nil, "x"}, l)
	require.True(t, ours.HasValue)
	gf, _ := ours.Value.(codec.Map).Get("georeplication_factor")
	require.Equal(t, int32(1), gf)

	// And back: go-amqp must read our encoding as what it wrote.
	again, err := ours.MarshalBinary()
	require.NoError(t, err)
	var back goamqp.Message
	require.NoError(t, back.UnmarshalBinary(again))
	require.Equal(t, theirs.Header, back.Header)
	require.Equal(t, symKeysAsString(theirs.DeliveryAnnotations), symKeysAsString(back.DeliveryAnnotations))
	require.Equal(t, symKeysAsString(theirs.Annotations), symKeysAsString(back.Annotations))
	require.Equal(t, theirs.ApplicationProperties, back.ApplicationProperties)
	require.Equal(t, theirs.Value, back.Value)
	require.Equal(t, symKeysAsString(theirs.Footer), symKeysAsString(back.Footer))
	require.Equal(t, *theirs.Properties.To, *back.Properties.To)
	require.Equal(t, theirs.Properties.MessageID, back.Properties.MessageID)
	require.Equal(t, theirs.Properties.CorrelationID, back.Properties.CorrelationID)
	require.True(t, theirs.Properties.CreationTime.Equal(*back.Properties.CreationTime))
}

// TestEventAsGoAMQPSeesIt checks what matters to Event Hubs clients: the
// types a go-amqp receiver decodes from an event and a $management reply
// we encode.
func TestEventAsGoAMQPSeesIt(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 1024)
	enc, err := iotHubEvent(body).MarshalBinary()
	require.NoError(t, err)

	var m goamqp.Message
	require.NoError(t, m.UnmarshalBinary(enc))
	require.Equal(t, [][]byte{body}, m.Data)
	require.IsType(t, "", m.Annotations["x-opt-offset"])
	require.Equal(t, int64(123456), m.Annotations["x-opt-sequence-number"])
	require.True(t, enqueued.Equal(m.Annotations["x-opt-enqueued-time"].(time.Time)))
	require.Equal(t, "6e1d0b9c-0b7a-4b7e-9a39-6f3b2a1c0d11", m.Properties.MessageID)
	require.Equal(t, "application/json", *m.Properties.ContentType)
	require.Equal(t, int32(3), m.ApplicationProperties["level"])

	reply := &codec.Message{
		Properties: &codec.Properties{CorrelationID: "req-1"},
		ApplicationProperties: codec.Map{
			{"status-code", int32(200)},
			{"status-description", "OK"},
		},
		Value: codec.Map{
			{"name", "hub"},
			{"created_at", enqueued},
			{"partition_ids", []string{"0", "1"}},
			{"georeplication_factor", int32(1)},
		},
	}
	enc, err = reply.MarshalBinary()
	require.NoError(t, err)
	var r goamqp.Message
	require.NoError(t, r.UnmarshalBinary(enc))
	require.Equal(t, int32(200), r.ApplicationProperties["status-code"])
	require.Equal(t, "req-1", r.Properties.CorrelationID)
	v := r.Value.(map[string]any) // str keys, not sym
	require.Equal(t, []string{"0", "1"}, v["partition_ids"])
	require.Equal(t, int32(1), v["georeplication_factor"])
}

func TestMessageBodies(t *testing.T) {
	tests := []struct {
		name string
		m    codec.Message
	}{
		{"two data sections", codec.Message{Data: [][]byte{{1}, {2, 3}}}},
		{"amqp-value null", codec.Message{HasValue: true}},
		{"amqp-value string", codec.Message{Value: "token", HasValue: true}},
		{"sequences", codec.Message{Sequence: [][]any{{int32(1)}, {"a", nil}}}},
		{"header defaults", codec.Message{Header: &codec.Header{Priority: 4}, Data: [][]byte{{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := tt.m.MarshalBinary()
			require.NoError(t, err)
			var got codec.Message
			require.NoError(t, got.UnmarshalBinary(enc))
			again, err := got.MarshalBinary()
			require.NoError(t, err)
			require.Equal(t, enc, again, "re-encoding changed the bytes")
			require.Equal(t, tt.m.HasValue, got.HasValue)
			require.Equal(t, len(tt.m.Data), len(got.Data))
			require.Equal(t, len(tt.m.Sequence), len(got.Sequence))
		})
	}
}

func TestMessageMalformed(t *testing.T) {
	mk := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	data := []byte{0x00, 0x53, 0x75, 0xa0, 0x01, 'x'}
	value := []byte{0x00, 0x53, 0x77, 0x40}
	header := []byte{0x00, 0x53, 0x70, 0x45}
	tests := []struct {
		name string
		in   []byte
	}{
		{"not described", []byte{0x40}},
		{"unknown section", []byte{0x00, 0x53, 0x79, 0x40}},
		{"data not binary", []byte{0x00, 0x53, 0x75, 0x40 + 1}},
		{"mixed bodies", mk(data, value)},
		{"header twice", mk(header, header)},
		{"header field type", []byte{0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0xa1, 0x00}},
		{"annotations not a map", []byte{0x00, 0x53, 0x72, 0x45}},
		{"truncated", data[:4]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m codec.Message
			require.Error(t, m.UnmarshalBinary(tt.in))
		})
	}
}

func TestSplitSections(t *testing.T) {
	m := iotHubEvent([]byte("body"))
	m.Header = &codec.Header{Durable: true}
	enc, err := m.MarshalBinary()
	require.NoError(t, err)
	secs, err := codec.SplitSections(enc)
	require.NoError(t, err)
	var codes []uint64
	var joined []byte
	for _, s := range secs {
		codes = append(codes, s.Descriptor)
		joined = append(joined, s.Raw...)
	}
	require.Equal(t, []uint64{codec.SectionHeader, codec.SectionMessageAnnotations, codec.SectionProperties,
		codec.SectionApplicationProperties, codec.SectionData}, codes)
	require.Equal(t, enc, joined)
}

// symKeysAsString mirrors go-amqp's decoding, which returns sym
// annotation keys as string and timestamps in local time.
func symKeysAsString(a goamqp.Annotations) goamqp.Annotations {
	out := goamqp.Annotations{}
	for k, v := range a {
		if s, ok := k.(goamqp.Symbol); ok {
			k = string(s)
		}
		if t, ok := v.(time.Time); ok {
			v = t.UTC()
		}
		out[k] = v
	}
	return out
}
