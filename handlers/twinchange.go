package handlers

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/iothub-reboot/devmgmt/handlers/internal/invocation"
	"github.com/iothub-reboot/devmgmt/handlers/internal/jsonscan"
)

// processorBinding is TwinChangeProcessor's trigger binding name
// (functions/TwinChangeProcessor/function.json).
const processorBinding = "events"

// Routed twin-change notifications (iothub-protocols.md §4).
const (
	sourceTwinChange = "twinChangeEvents"
	schemaTwinChange = "twinChangeNotification"
	opReplaceTwin    = "replaceTwin"
)

// decodedBatch is an invocation as the processor needs it: per event, the
// twin change it carries, if any.
type decodedBatch struct {
	Partition string
	// Warnings describe metadata that could not be read.
	Warnings []string
	Events   []decodedEvent
}

// decodedEvent is one event of a batch.
type decodedEvent struct {
	SequenceNumber  int64
	EnqueuedTimeUTC string
	// Change is the device's reported-properties change; nil for any other
	// event (telemetry, lifecycle, a service's patch, a module's twin).
	Change *twinChange
	// Err says why a twin change could not be read.
	Err error
}

// batchDecoder reads the host's invocation body. It may overwrite body.
// It fails only when the events themselves cannot be read.
type batchDecoder func(body []byte) (decodedBatch, error)

// twinChange is what the processor takes from one twin-change notification.
type twinChange struct {
	DeviceID string
	// LastReboot is the reported lastReboot, normalized to RFC 3339 UTC;
	// empty when the change did not set it.
	LastReboot string
	RequestID  string
	Status     string
	// Reason is the device's reason (or error) for a failed reboot.
	Reason string
	// Version is the reported properties' $version after the change.
	Version int64
}

// scanBatch is the processor's decoder: invocation.DecodeEventHubBatch,
// which unescapes the host's encoding layers in place, then only the
// members the processor needs, read with jsonscan. This runs for every
// event of every batch (docs/performance.md compares it with libraries).
func scanBatch(body []byte) (decodedBatch, error) {
	batch, err := invocation.DecodeEventHubBatch(body, processorBinding)
	if err != nil {
		return decodedBatch{}, err
	}
	out := decodedBatch{Partition: partitionID(batch.PartitionContext), Warnings: batch.Warnings, Events: make([]decodedEvent, len(batch.Events))}
	for i := range batch.Events {
		ev := &batch.Events[i]
		change, err := parseTwinChange(ev)
		out.Events[i] = decodedEvent{SequenceNumber: ev.SequenceNumber, EnqueuedTimeUTC: ev.EnqueuedTimeUTC, Change: change, Err: err}
	}
	return out, nil
}

// twinChangeHeaders are the properties that classify an event, from its
// system properties (AMQP annotations) and application properties.
type twinChangeHeaders struct {
	source    string // iothub-message-source
	hasSource bool
	sysDevice string // iothub-connection-device-id
	sysModule string // iothub-connection-module-id
	schema    string // iothub-message-schema
	opType    string
	device    string // deviceId
	module    string // moduleId
}

// classify returns the device whose reported properties changed, or ""
// for an event that is not such a change. A module's twin change is not a
// device reboot: RebootDevice reboots devices and RebootStatus reads device
// twins, so module events are skipped (counted as ignored).
func (h *twinChangeHeaders) classify() (deviceID string, err error) {
	// The source annotation decides when present; the schema property is
	// the fallback for a routed copy that lost its annotations.
	isTwinChange := h.schema == schemaTwinChange
	if h.hasSource {
		isTwinChange = h.source == sourceTwinChange
	}
	if !isTwinChange || h.opType == opReplaceTwin || h.sysModule != "" || h.module != "" {
		return "", nil
	}
	if deviceID = firstNonEmpty(h.sysDevice, h.device); deviceID == "" {
		return "", errors.New("twin change names no device")
	}
	return deviceID, nil
}

// parseTwinChange returns nil for events that are not a device's
// reported-property twin change (telemetry, lifecycle, connection state,
// replaceTwin, module twins), and an error for a twin change it cannot
// read. It reads only the members it needs.
func parseTwinChange(ev *invocation.Event) (*twinChange, error) {
	var h twinChangeHeaders
	if ev.SystemProperties != nil {
		err := jsonscan.Members(ev.SystemProperties, func(k, v []byte) bool {
			switch string(k) {
			case "iothub-message-source":
				h.source, h.hasSource = jsonscan.String(v)
			case "iothub-connection-device-id":
				h.sysDevice, _ = jsonscan.String(v)
			case "iothub-connection-module-id":
				h.sysModule, _ = jsonscan.String(v)
			}
			return true
		})
		if err != nil {
			return nil, errors.New("the event's SystemProperties is not a JSON object")
		}
	}
	if ev.Properties != nil {
		err := jsonscan.Members(ev.Properties, func(k, v []byte) bool {
			switch string(k) {
			case "iothub-message-schema":
				h.schema, _ = jsonscan.String(v)
			case "opType":
				h.opType, _ = jsonscan.String(v)
			case "deviceId":
				h.device, _ = jsonscan.String(v)
			case "moduleId":
				h.module, _ = jsonscan.String(v)
			}
			return true
		})
		if err != nil {
			return nil, errors.New("the event's Properties is not a JSON object")
		}
	}
	deviceID, err := h.classify()
	if deviceID == "" {
		return nil, err
	}
	change := &twinChange{DeviceID: deviceID}
	if err := readReportedReboot(ev.Body, change); err != nil {
		return nil, fmt.Errorf("device %s: %w", change.DeviceID, err)
	}
	return change, nil
}

// readReportedReboot fills change from a notification body
// {"version":N,"properties":{"reported":{"iothubDM":{"reboot":{…}},
// "$metadata":{…},"$version":M}}}. A body that is itself a JSON string
// holding the notification is unwrapped first, and one in base64 (what the
// host sends for dataType "binary") is decoded.
func readReportedReboot(body []byte, change *twinChange) error {
	body = jsonscan.Trim(body)
	if len(body) > 0 && body[0] == '"' {
		inner, err := jsonscan.Unquote(body)
		if err != nil {
			return errors.New("twin change body is not JSON")
		}
		body = inner
	}
	body = fromBase64(body)
	var reported, reboot []byte
	if err := jsonscan.Members(body, func(k, v []byte) bool {
		if string(k) == "properties" {
			reported = member(v, "reported")
		}
		return true
	}); err != nil {
		return errors.New("twin change body is not a JSON object")
	}
	if reported == nil {
		return nil
	}
	if err := jsonscan.Members(reported, func(k, v []byte) bool {
		switch string(k) {
		case "$version":
			change.Version, _ = jsonscan.Int(v)
		case "iothubDM":
			reboot = member(v, "reboot")
		}
		return true
	}); err != nil {
		return errors.New("properties.reported is not a JSON object")
	}
	if reboot == nil {
		return nil
	}
	var lastReboot []byte
	var reason, errText string
	if err := jsonscan.Members(reboot, func(k, v []byte) bool {
		switch string(k) {
		case "lastReboot":
			lastReboot = v
		case "requestId":
			change.RequestID, _ = jsonscan.String(v)
		case "status":
			change.Status, _ = jsonscan.String(v)
		case "reason":
			reason, _ = jsonscan.String(v)
		case "error":
			errText, _ = jsonscan.String(v)
		}
		return true
	}); err != nil {
		return errors.New("iothubDM.reboot is not a JSON object")
	}
	change.Reason = firstNonEmpty(reason, errText)
	if lastReboot == nil || jsonscan.IsNull(lastReboot) {
		return nil // not set, or deleted
	}
	s, _ := jsonscan.String(lastReboot)
	return change.setLastReboot(s, lastReboot)
}

// setLastReboot normalizes the reported lastReboot s (raw as sent, for the
// error) to RFC 3339 UTC.
func (c *twinChange) setLastReboot(s string, raw []byte) error {
	t, ok := parseDeviceTime(s)
	if !ok {
		return fmt.Errorf("lastReboot %s is not an RFC 3339 time", truncate(string(raw), 64))
	}
	c.LastReboot = t.UTC().Format(time.RFC3339Nano)
	return nil
}

// fromBase64 decodes body when it is base64 rather than JSON: with
// dataType "binary" in function.json the host sends each event body as
// base64 of its bytes. A notification is a JSON object, whose text starts
// with '{' and which base64 never does (its alphabet has no '{'), so the
// two cannot be confused.
func fromBase64(body []byte) []byte {
	if len(body) == 0 || body[0] == '{' || body[0] == '[' {
		return body
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
	n, err := base64.StdEncoding.Decode(out, body)
	if err != nil {
		return body
	}
	return jsonscan.Trim(out[:n])
}

// member returns the raw value of obj's member name, or nil (also when obj
// is not an object: null for a deleted section, say).
func member(obj []byte, name string) []byte {
	var found []byte
	jsonscan.Members(obj, func(k, v []byte) bool {
		if string(k) == name {
			found = v
		}
		return true
	})
	if jsonscan.IsNull(found) {
		return nil
	}
	return found
}

func partitionID(raw json.RawMessage) string {
	var pc struct {
		PartitionID string `json:"PartitionId"`
	}
	if raw != nil && json.Unmarshal(raw, &pc) == nil {
		return pc.PartitionID
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
