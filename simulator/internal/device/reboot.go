package device

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Reboot statuses reported in iothubDM.reboot.status.
const (
	StatusRunning   = "running"
	StatusRebooting = "rebooting"
	StatusFailed    = "failed"
)

// MaxDelay bounds delaySeconds: a longer delay is refused rather than
// leaving a reboot pending for days.
const MaxDelay = 24 * time.Hour

// RebootRequest is the payload of the reboot method. Our function app sends
// {"requestId":"...","delaySeconds":n}; both fields are optional.
type RebootRequest struct {
	RequestID string
	Delay     time.Duration
}

// ErrBadPayload marks a reboot payload the device refuses (status 400).
var ErrBadPayload = errors.New("bad reboot payload")

// ParseRebootRequest reads a reboot payload. An empty body or JSON null is a
// request with no fields: IoT Hub delivers a service's "payload": null as an
// empty body, and the Node service samples send exactly that. Anything but a
// JSON object, a non-string requestId or a delaySeconds that is not a number
// within [0, MaxDelay] is an ErrBadPayload. Unknown fields are ignored.
func ParseRebootRequest(payload []byte) (RebootRequest, error) {
	payload = bytes.TrimSpace(payload)
	if len(payload) == 0 || bytes.Equal(payload, []byte("null")) {
		return RebootRequest{}, nil
	}
	if payload[0] != '{' {
		return RebootRequest{}, fmt.Errorf("%w: the payload must be a JSON object", ErrBadPayload)
	}
	var wire struct {
		RequestID    json.RawMessage `json:"requestId"`
		DelaySeconds json.RawMessage `json:"delaySeconds"`
	}
	if err := json.Unmarshal(payload, &wire); err != nil {
		return RebootRequest{}, fmt.Errorf("%w: %v", ErrBadPayload, err)
	}
	var req RebootRequest
	if isSet(wire.RequestID) {
		if err := json.Unmarshal(wire.RequestID, &req.RequestID); err != nil {
			return RebootRequest{}, fmt.Errorf("%w: requestId must be a string", ErrBadPayload)
		}
	}
	if isSet(wire.DelaySeconds) {
		var secs float64
		if err := json.Unmarshal(wire.DelaySeconds, &secs); err != nil || secs < 0 || secs > MaxDelay.Seconds() {
			return RebootRequest{}, fmt.Errorf("%w: delaySeconds must be a number from 0 to %d", ErrBadPayload, int(MaxDelay.Seconds()))
		}
		req.Delay = time.Duration(secs * float64(time.Second))
	}
	return req, nil
}

// isSet reports whether a field was present and not null.
func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// RebootState is what the device reports under iothubDM.reboot. The device
// keeps it in memory and reports all of it on every connection, so a hub
// that lost a patch, or a device that lost its connection mid-patch, ends up
// with the full state again.
type RebootState struct {
	LastReboot time.Time
	Status     string
	RequestID  string // the reboot request this state is about; "" for none
	Reason     string // why the last reboot failed; "" unless Status is failed
}

// timeLayout is RFC 3339 in UTC with milliseconds, like JavaScript's
// toISOString: two reboots within a second still order correctly.
const timeLayout = "2006-01-02T15:04:05.000Z"

// Patch is the reported-properties patch for s. Empty fields are sent as
// null, which deletes them from the twin rather than leaving a stale
// requestId or reason behind.
func (s RebootState) Patch() []byte {
	type reboot struct {
		LastReboot string  `json:"lastReboot"`
		Status     string  `json:"status"`
		RequestID  *string `json:"requestId"`
		Reason     *string `json:"reason"`
	}
	b, err := json.Marshal(map[string]any{"iothubDM": map[string]any{"reboot": reboot{
		LastReboot: s.LastReboot.UTC().Format(timeLayout),
		Status:     s.Status,
		RequestID:  nullable(s.RequestID),
		Reason:     nullable(s.Reason),
	}}})
	if err != nil {
		panic(fmt.Sprintf("marshal reported state: %v", err)) // strings and a time cannot fail
	}
	return b
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Method replies. Each is a JSON object, the only payload shape every SDK
// can decode (amenzhinsky's MethodResult.Payload is a map).

func replyStarted(requestID string) []byte {
	return mustJSON(withRequestID(map[string]any{"result": "Reboot started"}, requestID))
}

func replyFailed(requestID, reason string) []byte {
	return mustJSON(withRequestID(map[string]any{"error": "Reboot failed", "reason": reason}, requestID))
}

func replyBusy(requestID, pending string) []byte {
	m := withRequestID(map[string]any{"error": "A reboot is already in progress"}, requestID)
	if pending != "" {
		m["pendingRequestId"] = pending
	}
	return mustJSON(m)
}

func replyError(msg string) []byte {
	return mustJSON(map[string]any{"error": msg})
}

func withRequestID(m map[string]any, requestID string) map[string]any {
	if requestID != "" {
		m["requestId"] = requestID
	}
	return m
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal reply: %v", err)) // maps of strings cannot fail
	}
	return b
}
