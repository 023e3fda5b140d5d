package eventhubs

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// Annotations Event Hubs sets on every event (reference §5). Clients
// check their types: x-opt-offset must be a str (Go v2 fails the whole
// receive otherwise, .NET casts it), the sequence number a long, the
// enqueued time a timestamp.
const (
	annSequenceNumber = "x-opt-sequence-number"
	annOffset         = "x-opt-offset"
	annEnqueuedTime   = "x-opt-enqueued-time"
	annPartitionKey   = "x-opt-partition-key"
	annModuleID       = "iothub-connection-module-id"
)

// encoder turns stored events into the AMQP messages consumers get. One
// per consumer link: it reuses its scratch maps, and allocates the
// encoded messages in slabs (a message must not change once handed to
// the AMQP layer, so each gets its own bytes, but not its own allocation).
type encoder struct {
	msg   codec.Message
	props codec.Properties
	keys  []string
	slab  []byte
}

const slabSize = 64 << 10

// encode returns e as an AMQP message: message annotations (the event's
// own, then x-opt-sequence-number, x-opt-offset, x-opt-enqueued-time and
// x-opt-partition-key when set), properties, application properties and
// one data section with the body, the sections IoT Hub's events have.
func (enc *encoder) encode(e *eventlog.Event) ([]byte, error) {
	m := &enc.msg
	m.Annotations = m.Annotations[:0]
	enc.keys = sortedKeys(enc.keys[:0], e.Annotations)
	for _, k := range enc.keys {
		m.Annotations = append(m.Annotations, codec.MapEntry{Key: codec.Symbol(k), Value: toCodec(e.Annotations[k])})
	}
	if e.ModuleID != "" && e.Annotations[annModuleID] == nil {
		m.Annotations = append(m.Annotations, codec.MapEntry{Key: codec.Symbol(annModuleID), Value: e.ModuleID})
	}
	m.Annotations = append(m.Annotations,
		codec.MapEntry{Key: codec.Symbol(annSequenceNumber), Value: e.SequenceNumber},
		codec.MapEntry{Key: codec.Symbol(annOffset), Value: e.Offset},
		codec.MapEntry{Key: codec.Symbol(annEnqueuedTime), Value: e.EnqueuedTime},
	)
	if e.PartitionKey != "" {
		m.Annotations = append(m.Annotations, codec.MapEntry{Key: codec.Symbol(annPartitionKey), Value: e.PartitionKey})
	}

	m.Properties = nil
	if e.MessageID != "" || e.CorrelationID != "" || e.ContentType != "" || e.ContentEncoding != "" || len(e.UserID) > 0 {
		enc.props = codec.Properties{
			UserID:          e.UserID,
			ContentType:     codec.Symbol(e.ContentType),
			ContentEncoding: codec.Symbol(e.ContentEncoding),
		}
		if e.MessageID != "" {
			enc.props.MessageID = e.MessageID
		}
		if e.CorrelationID != "" {
			enc.props.CorrelationID = e.CorrelationID
		}
		m.Properties = &enc.props
	}

	m.ApplicationProperties = m.ApplicationProperties[:0]
	enc.keys = sortedKeys(enc.keys[:0], e.Properties)
	for _, k := range enc.keys {
		m.ApplicationProperties = append(m.ApplicationProperties, codec.MapEntry{Key: k, Value: e.Properties[k]})
	}
	enc.keys = sortedKeys(enc.keys[:0], e.TypedProperties)
	for _, k := range enc.keys {
		m.ApplicationProperties = append(m.ApplicationProperties, codec.MapEntry{Key: k, Value: toCodec(e.TypedProperties[k])})
	}

	if m.Data == nil {
		m.Data = make([][]byte, 1)
	}
	m.Data[0] = e.Body

	// Encode at the end of the slab; start a new slab when it is full.
	if cap(enc.slab)-len(enc.slab) < len(e.Body)+1024 {
		enc.slab = make([]byte, 0, max(slabSize, 2*len(e.Body)+4096))
	}
	start := len(enc.slab)
	out, err := m.AppendBinary(enc.slab)
	if err != nil {
		return nil, err
	}
	if &out[:1][0] != &enc.slab[:1][0] { // grew out of the slab: it is its own allocation
		enc.slab = enc.slab[:start]
		return out[start:len(out):len(out)], nil
	}
	enc.slab = out
	return out[start:len(out):len(out)], nil
}

func sortedKeys[V any](dst []string, m map[string]V) []string {
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst)
	return dst
}

// toCodec converts a stored annotation or property value to the AMQP
// value it was (eventlog keeps symbols, uuids and chars apart from strings
// and byte arrays for exactly this).
func toCodec(v any) any {
	switch v := v.(type) {
	case eventlog.Symbol:
		return codec.Symbol(v)
	case eventlog.UUID:
		return codec.UUID(v)
	case eventlog.Char:
		return codec.Char(v)
	}
	return v
}

// errUnstorable marks producer messages the events log cannot keep as
// they are; the producer gets them back rejected rather than altered.
var errUnstorable = errors.New("cannot store")

// fromProducer turns a message a producer sent into an event: what Event
// Hubs consumers read back. Kept: message-id and correlation-id (strings),
// user-id, content-type, content-encoding, application properties, message
// annotations (x-opt-partition-key becomes the event's partition key; the
// x-opt annotations Event Hubs assigns are dropped) and a body of at most
// one data section. Not kept: the header, delivery annotations, footer,
// and the to, subject, reply-to, expiry, creation-time and group fields
// (docs/architecture.md). A body of amqp-value or amqp-sequence sections,
// several data sections, non-string ids and properties of compound types
// are refused: stored, they would come back different.
func fromProducer(m *codec.Message) (eventlog.Event, error) {
	var e eventlog.Event
	switch {
	case m.HasValue || len(m.Sequence) > 0:
		return e, fmt.Errorf("%w: the body is an amqp-value or amqp-sequence section; the local hub stores event bodies of one data section", errUnstorable)
	case len(m.Data) > 1:
		return e, fmt.Errorf("%w: the body has %d data sections; the local hub stores event bodies of one data section", errUnstorable, len(m.Data))
	case len(m.Data) == 1:
		e.Body = m.Data[0]
	}
	if p := m.Properties; p != nil {
		var err error
		if e.MessageID, err = stringID("message-id", p.MessageID); err != nil {
			return e, err
		}
		if e.CorrelationID, err = stringID("correlation-id", p.CorrelationID); err != nil {
			return e, err
		}
		e.UserID = p.UserID
		e.ContentType = string(p.ContentType)
		e.ContentEncoding = string(p.ContentEncoding)
	}
	for _, kv := range m.ApplicationProperties {
		k, ok := kv.Key.(string)
		if !ok {
			return e, fmt.Errorf("%w: an application property key is %T, not a string", errUnstorable, kv.Key)
		}
		if s, ok := kv.Value.(string); ok {
			if e.Properties == nil {
				e.Properties = map[string]string{}
			}
			e.Properties[k] = s
			continue
		}
		v, err := fromCodec(kv.Value)
		if err != nil {
			return e, fmt.Errorf("application property %q: %w", truncate(k), err)
		}
		if e.TypedProperties == nil {
			e.TypedProperties = map[string]any{}
		}
		e.TypedProperties[k] = v
	}
	for _, kv := range m.Annotations {
		var k string
		switch key := kv.Key.(type) {
		case codec.Symbol:
			k = string(key)
		case string:
			k = key
		default:
			return e, fmt.Errorf("%w: a message annotation key is %T, not a symbol", errUnstorable, kv.Key)
		}
		switch k {
		case annPartitionKey:
			pk, ok := kv.Value.(string)
			if !ok && kv.Value != nil {
				return e, fmt.Errorf("%w: %s is %T, not a string", errUnstorable, annPartitionKey, kv.Value)
			}
			e.PartitionKey = pk
			continue
		case annSequenceNumber, annOffset, annEnqueuedTime, "x-opt-publisher", "x-opt-partition-id":
			continue // Event Hubs assigns these
		}
		v, err := fromCodec(kv.Value)
		if err != nil {
			return e, fmt.Errorf("message annotation %q: %w", truncate(k), err)
		}
		if e.Annotations == nil {
			e.Annotations = map[string]any{}
		}
		e.Annotations[k] = v
	}
	return e, nil
}

func stringID(field string, v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	}
	return "", fmt.Errorf("%w: %s is %T; the local hub stores string ids only", errUnstorable, field, v)
}

// fromCodec converts an AMQP value to one the events log stores.
func fromCodec(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float32, float64, string, []byte:
		return v, nil
	case time.Time:
		return v, nil
	case codec.Symbol:
		return eventlog.Symbol(v), nil
	case codec.UUID:
		return eventlog.UUID(v), nil
	case codec.Char:
		return eventlog.Char(v), nil
	}
	return nil, fmt.Errorf("%w: a %s; the local hub stores values of primitive types only", errUnstorable, typeName(v))
}

func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case codec.Map:
		return "map"
	case codec.Described:
		return "described value"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", v), "codec.")
}
