package invocation

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/iothub-reboot/devmgmt/handlers/internal/jsonscan"
)

// EventHubBatch is an Event Hubs trigger invocation with cardinality
// "many" and dataType "string" (or "binary", whose bodies stay base64).
type EventHubBatch struct {
	Events []Event
	// PartitionContext is the host's object as sent
	// ({"FullyQualifiedNamespace","EventHubName","ConsumerGroup","PartitionId"}).
	PartitionContext json.RawMessage
	// RetryContext is set when the host re-delivers a batch under the
	// function's retry policy ({"RetryCount","MaxRetryCount","Exception"}).
	RetryContext json.RawMessage
	// Warnings describe metadata that could not be decoded; the events are
	// still usable, with those fields left empty.
	Warnings []string
}

// Event is one event of a batch with the metadata the host sent for it.
// Its slices may share memory with each other and with the decoded body:
// treat them as read-only.
type Event struct {
	// Body is the event body with the host's encoding removed: the UTF-8
	// text for dataType "string".
	Body []byte
	// SystemProperties is the event's JSON object of AMQP properties and
	// message annotations (iothub-connection-device-id,
	// iothub-message-source, x-opt-sequence-number, …) plus the
	// extension's SequenceNumber, Offset and EnqueuedTimeUtc. Nil if absent.
	SystemProperties json.RawMessage
	// Properties is the event's JSON object of application properties.
	// Nil if absent.
	Properties json.RawMessage
	// EnqueuedTimeUTC is the host's rendering, e.g.
	// "2020-10-21T14:00:10.824" (UTC, without a zone designator).
	EnqueuedTimeUTC string
	SequenceNumber  int64
	Offset          string
	PartitionKey    string
}

// DecodeEventHubBatch decodes the invocation body the host POSTs for an
// Event Hubs trigger with cardinality "many"; name is the trigger binding's
// name ("events"). It fails only when the events themselves cannot be
// read; undecodable metadata becomes a Warning.
//
// Keys match case-insensitively, as the host's own reader does. It reads
// with jsonscan, unescaping each encoding layer in a single pass, and in
// place: body is overwritten, and the events' slices point into it. A
// batch of hundreds of megabytes then costs its own size in memory, not
// one copy per encoding layer.
func DecodeEventHubBatch(body []byte, name string) (EventHubBatch, error) {
	var (
		d    envelopeScan
		b    EventHubBatch
		meta metadataScan
	)
	d.name = name
	sc := jsonscan.NewScanner(body)
	err := sc.Object(func(k []byte) error {
		switch {
		case bytes.EqualFold(k, []byte("Data")):
			if sc.IsNull() {
				return nil
			}
			return sc.Object(func(k []byte) error { return d.member(sc, k) })
		case bytes.EqualFold(k, []byte("Metadata")):
			if sc.IsNull() {
				return nil
			}
			if !sc.IsObject() {
				// The events may still be readable; the scanner skips
				// the value.
				meta.notObject = true
				return nil
			}
			if err := sc.Object(func(k []byte) error { return meta.member(sc, k) }); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = sc.End()
	}
	if err != nil {
		return EventHubBatch{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	events, err := d.events()
	if err != nil {
		return EventHubBatch{}, err
	}
	if err := b.decodeBodies(events); err != nil {
		return EventHubBatch{}, fmt.Errorf("%w: Data.%s: %v", ErrMalformed, name, err)
	}
	meta.apply(&b)
	return b, nil
}

// envelopeScan picks the trigger binding out of Data: the member named
// exactly name, else one matching case-insensitively, else Data's only
// member. The chosen value is unescaped as it is read.
type envelopeScan struct {
	name          string
	exact, folded []byte
	only          []byte
	count         int
	err           error
}

func (d *envelopeScan) member(sc *jsonscan.Scanner, k []byte) error {
	d.count++
	exact := string(k) == d.name
	if !exact && (d.exact != nil || !bytes.EqualFold(k, []byte(d.name))) {
		raw, err := sc.Raw()
		d.only = raw
		return err
	}
	text, err := arrayTextAt(sc)
	if err != nil {
		d.err = err
		text = []byte{} // selected but unreadable
	}
	if exact {
		d.exact = text
	} else if d.folded == nil {
		d.folded = text
	}
	d.only = nil
	return nil
}

func (d *envelopeScan) events() ([]byte, error) {
	switch {
	case d.exact != nil || d.folded != nil:
		if d.err != nil {
			return nil, fmt.Errorf("%w: Data.%s: %v", ErrMalformed, d.name, d.err)
		}
		if d.exact != nil {
			return d.exact, nil
		}
		return d.folded, nil
	case d.count == 1 && d.only != nil:
		text, err := arrayText(d.only)
		if err != nil {
			return nil, fmt.Errorf("%w: Data: %v", ErrMalformed, err)
		}
		return text, nil
	case d.count == 0:
		return nil, fmt.Errorf("%w: no Data", ErrMalformed)
	}
	return nil, fmt.Errorf("%w: Data has no binding %q", ErrMalformed, d.name)
}

// metadataScan collects the metadata fields (the *Array ones unescaped to
// their array text) until the events are known.
type metadataScan struct {
	arrays    [numArrays][]byte
	errs      [numArrays]error
	pc, retr  []byte
	notObject bool
}

// The per-event *Array fields, in the order warnings list them.
const (
	sysArray = iota
	propsArray
	timeArray
	seqArray
	offsetArray
	keyArray
	numArrays
)

var arrayNames = [numArrays]string{"SystemPropertiesArray", "PropertiesArray", "EnqueuedTimeUtcArray", "SequenceNumberArray", "OffsetArray", "PartitionKeyArray"}

func (m *metadataScan) member(sc *jsonscan.Scanner, k []byte) error {
	for i, n := range arrayNames {
		if bytes.EqualFold(k, []byte(n)) {
			if sc.IsNull() {
				return nil
			}
			m.arrays[i], m.errs[i] = arrayTextAt(sc)
			if m.errs[i] != nil {
				// Skip what is left of a malformed value, if it can be.
				return nil
			}
			return nil
		}
	}
	var err error
	switch {
	case bytes.EqualFold(k, []byte("PartitionContext")):
		m.pc, err = sc.Raw()
	case bytes.EqualFold(k, []byte("RetryContext")):
		m.retr, err = sc.Raw()
	}
	return err
}

func (m *metadataScan) apply(b *EventHubBatch) {
	if m.notObject {
		b.Warnings = append(b.Warnings, "Metadata is not a JSON object")
	}
	if !jsonscan.IsNull(m.pc) {
		b.PartitionContext = m.pc
	}
	if !jsonscan.IsNull(m.retr) {
		b.RetryContext = m.retr
	}
	setters := [numArrays]func(*Event, []byte) bool{
		sysArray: func(e *Event, x []byte) bool {
			if !jsonscan.IsNull(x) {
				e.SystemProperties = x
			}
			return true
		},
		propsArray: func(e *Event, x []byte) bool {
			if !jsonscan.IsNull(x) {
				e.Properties = x
			}
			return true
		},
		timeArray: func(e *Event, x []byte) bool {
			s, ok := jsonscan.String(x)
			e.EnqueuedTimeUTC = s
			return ok || jsonscan.IsNull(x)
		},
		seqArray: func(e *Event, x []byte) bool {
			n, ok := jsonscan.Int(x)
			e.SequenceNumber = n
			return ok || jsonscan.IsNull(x)
		},
		offsetArray: func(e *Event, x []byte) bool {
			e.Offset = scalarText(x)
			return true
		},
		keyArray: func(e *Event, x []byte) bool {
			s, ok := jsonscan.String(x)
			e.PartitionKey = s
			return ok || jsonscan.IsNull(x)
		},
	}
	for i, name := range arrayNames {
		switch {
		case m.errs[i] != nil:
			b.Warnings = append(b.Warnings, fmt.Sprintf("Metadata.%s is not a JSON array: %v", name, m.errs[i]))
		case m.arrays[i] != nil:
			b.perEvent(name, m.arrays[i], setters[i])
		}
	}
}

// arrayTextAt reads the next value as array text: the content of a string
// (the host's second encoding, unescaped in place), else the value itself.
func arrayTextAt(sc *jsonscan.Scanner) ([]byte, error) {
	if sc.IsString() {
		return sc.UnquoteInPlace()
	}
	return sc.Raw()
}

// arrayText is arrayTextAt for a value already delimited.
func arrayText(raw []byte) ([]byte, error) {
	raw = jsonscan.Trim(raw)
	if len(raw) > 0 && raw[0] == '"' {
		return jsonscan.UnquoteInPlace(raw)
	}
	return raw, nil
}

// decodeBodies reads the trigger value: a JSON array (usually inside a JSON
// string) whose elements are the bodies, each a JSON string for dataType
// string/binary. Non-string elements are kept as their JSON text.
func (b *EventHubBatch) decodeBodies(arr []byte) error {
	var elemErr error
	err := jsonscan.Elements(arr, func(i int, v []byte) bool {
		var body []byte
		switch {
		case jsonscan.IsNull(v):
		case v[0] == '"':
			// In place: Elements has read v and never looks back.
			if body, elemErr = jsonscan.UnquoteInPlace(v); elemErr != nil {
				elemErr = fmt.Errorf("event %d: %w", i, elemErr)
				return false
			}
		default:
			body = v
		}
		b.Events = append(b.Events, Event{Body: body})
		return true
	})
	if err == nil {
		err = elemErr
	}
	if err != nil {
		return fmt.Errorf("not a JSON array of events: %w", err)
	}
	if b.Events == nil {
		b.Events = []Event{}
	}
	return nil
}

// perEvent applies set to each event and its entry of one *Array field.
// A field that is not an array, has entries set rejects, or does not match
// the number of events is reported in Warnings; the entries it does cover
// are still used. Absent fields are fine: older extensions send fewer.
func (b *EventHubBatch) perEvent(name string, arr []byte, set func(*Event, []byte) bool) {
	count, bad := 0, -1
	err := jsonscan.Elements(arr, func(i int, x []byte) bool {
		count++
		if i < len(b.Events) && !set(&b.Events[i], x) && bad < 0 {
			bad = i
		}
		return true
	})
	switch {
	case err != nil:
		b.Warnings = append(b.Warnings, fmt.Sprintf("Metadata.%s is not a JSON array: %v", name, err))
	case bad >= 0:
		b.Warnings = append(b.Warnings, fmt.Sprintf("Metadata.%s entry %d has the wrong type", name, bad))
	case count != len(b.Events):
		b.Warnings = append(b.Warnings, fmt.Sprintf("Metadata.%s has %d entries for %d events", name, count, len(b.Events)))
	}
}

// scalarText renders a JSON scalar as text: a string's content, or the
// literal of a number ("12890070640"); null is "".
func scalarText(raw []byte) string {
	if jsonscan.IsNull(raw) {
		return ""
	}
	if s, ok := jsonscan.String(raw); ok {
		return s
	}
	return string(jsonscan.Trim(raw))
}
