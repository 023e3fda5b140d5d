package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	segjson "github.com/segmentio/encoding/json"
)

// The processor's decoder written with general-purpose JSON libraries,
// for BenchmarkTwinChangeProcessor: the same output as scanBatch, from the
// same envelope, reading the same fields through typed structs (the way
// one writes it with encoding/json), so that jsonscan's place in the code
// is measured, not assumed.

// unmarshalFunc is json.Unmarshal's signature.
type unmarshalFunc func(data []byte, v any) error

// decodeBatchStd decodes with encoding/json: the benchmark's floor.
var decodeBatchStd = decodeBatchWith(json.Unmarshal)

// decodeBatchSegment decodes with github.com/segmentio/encoding/json, with
// its zero-copy flag: strings without escapes alias the input instead of
// being copied.
var decodeBatchSegment = decodeBatchWith(func(data []byte, v any) error {
	rest, err := segjson.Parse(data, v, segjson.ZeroCopy)
	if err == nil && len(bytes.TrimSpace(rest)) > 0 {
		err = errors.New("data after the JSON value")
	}
	return err
})

// stringOrRaw returns the content of raw if it is a JSON string (the
// host's second encoding), else raw.
func stringOrRaw(unmarshal unmarshalFunc, raw []byte) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return raw, nil
	}
	var s string
	if err := unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

type stdEnvelope struct {
	Data     map[string]json.RawMessage
	Metadata struct {
		SystemPropertiesArray json.RawMessage
		PropertiesArray       json.RawMessage
		EnqueuedTimeUtcArray  json.RawMessage
		SequenceNumberArray   json.RawMessage
		PartitionContext      struct{ PartitionID string }
	}
}

type stdSystemProperties struct {
	Source *string `json:"iothub-message-source"`
	Device string  `json:"iothub-connection-device-id"`
	Module string  `json:"iothub-connection-module-id"`
}

type stdProperties struct {
	Schema   string `json:"iothub-message-schema"`
	OpType   string `json:"opType"`
	DeviceID string `json:"deviceId"`
	ModuleID string `json:"moduleId"`
}

type stdNotification struct {
	Properties struct {
		Reported struct {
			Version  int64 `json:"$version"`
			IothubDM struct {
				Reboot *struct {
					LastReboot json.RawMessage `json:"lastReboot"`
					RequestID  string          `json:"requestId"`
					Status     string          `json:"status"`
					Reason     string          `json:"reason"`
					Error      string          `json:"error"`
				} `json:"reboot"`
			} `json:"iothubDM"`
		} `json:"reported"`
	} `json:"properties"`
}

func decodeBatchWith(unmarshal unmarshalFunc) batchDecoder {
	return func(body []byte) (decodedBatch, error) {
		var env stdEnvelope
		if err := unmarshal(body, &env); err != nil {
			return decodedBatch{}, fmt.Errorf("malformed envelope: %w", err)
		}
		eventsText, err := stringOrRaw(unmarshal, env.Data[processorBinding])
		if err != nil {
			return decodedBatch{}, err
		}
		var bodies []*string
		if err := unmarshal(eventsText, &bodies); err != nil {
			return decodedBatch{}, fmt.Errorf("Data.events: %w", err)
		}
		out := decodedBatch{Partition: env.Metadata.PartitionContext.PartitionID, Events: make([]decodedEvent, len(bodies))}
		var (
			sys   []stdSystemProperties
			props []stdProperties
			times []string
			seqs  []int64
		)
		for _, m := range []struct {
			name string
			raw  json.RawMessage
			v    any
		}{
			{"SystemPropertiesArray", env.Metadata.SystemPropertiesArray, &sys},
			{"PropertiesArray", env.Metadata.PropertiesArray, &props},
			{"EnqueuedTimeUtcArray", env.Metadata.EnqueuedTimeUtcArray, &times},
			{"SequenceNumberArray", env.Metadata.SequenceNumberArray, &seqs},
		} {
			text, err := stringOrRaw(unmarshal, m.raw)
			if err == nil && len(text) > 0 {
				err = unmarshal(text, m.v)
			}
			if err != nil {
				out.Warnings = append(out.Warnings, fmt.Sprintf("Metadata.%s is not a JSON array: %v", m.name, err))
			}
		}
		for i, b := range bodies {
			ev := &out.Events[i]
			if i < len(seqs) {
				ev.SequenceNumber = seqs[i]
			}
			if i < len(times) {
				ev.EnqueuedTimeUTC = times[i]
			}
			var h twinChangeHeaders
			if i < len(sys) {
				h.sysDevice, h.sysModule = sys[i].Device, sys[i].Module
				if sys[i].Source != nil {
					h.source, h.hasSource = *sys[i].Source, true
				}
			}
			if i < len(props) {
				h.schema, h.opType, h.device, h.module = props[i].Schema, props[i].OpType, props[i].DeviceID, props[i].ModuleID
			}
			deviceID, err := h.classify()
			if deviceID == "" {
				ev.Err = err
				continue
			}
			var text []byte
			if b != nil {
				text = []byte(*b)
			}
			change := &twinChange{DeviceID: deviceID}
			if err := readNotificationWith(unmarshal, text, change); err != nil {
				ev.Err = fmt.Errorf("device %s: %w", deviceID, err)
				continue
			}
			ev.Change = change
		}
		return out, nil
	}
}

func readNotificationWith(unmarshal unmarshalFunc, text []byte, change *twinChange) error {
	text, err := stringOrRaw(unmarshal, text)
	if err != nil {
		return errors.New("twin change body is not JSON")
	}
	var n stdNotification
	if err := unmarshal(fromBase64(text), &n); err != nil {
		return errors.New("twin change body is not a JSON object")
	}
	change.Version = n.Properties.Reported.Version
	r := n.Properties.Reported.IothubDM.Reboot
	if r == nil {
		return nil
	}
	change.RequestID, change.Status, change.Reason = r.RequestID, r.Status, firstNonEmpty(r.Reason, r.Error)
	if len(r.LastReboot) == 0 || string(r.LastReboot) == "null" {
		return nil
	}
	var s string
	unmarshal(r.LastReboot, &s)
	return change.setLastReboot(s, r.LastReboot)
}
