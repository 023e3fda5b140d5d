package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/handlers/internal/invocation"
	"github.com/iothub-reboot/devmgmt/handlers/internal/jsonscan"
)

// processorBinding is TwinChangeProcessor's trigger binding name
// (functions/TwinChangeProcessor/function.json).
const processorBinding = "events"

// maxBatchBody bounds an invocation body: far above what host.json's
// maxEventBatchSize lets the host send, low enough to refuse garbage.
const maxBatchBody = 256 << 20

// maxWarningsPerBatch caps detailed warnings so a batch of garbage cannot
// flood the logs; the summary line still counts every malformed event.
const maxWarningsPerBatch = 20

// Routed twin-change notifications (iothub-protocols.md §4).
const (
	sourceTwinChange = "twinChangeEvents"
	schemaTwinChange = "twinChangeNotification"
	opReplaceTwin    = "replaceTwin"
)

// handleTwinChangeProcessor serves the TwinChangeProcessor invocation. It
// answers 200 to every body it could read, however malformed: the Event
// Hubs trigger checkpoints a batch whether or not the function succeeded,
// so failing cannot save an event, and a malformed event fails the same way
// on every retry. Problems are logged as warnings instead.
func handleTwinChangeProcessor(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r, maxBatchBody)
		if err != nil {
			if r.Context().Err() != nil {
				return
			}
			// Answering 200 would checkpoint a batch nobody read; a failure
			// at least triggers the function's retry policy.
			writeProblem(w, r, internalError("The invocation body could not be read: "+err.Error()))
			return
		}
		// The invocation id is formatted once per batch, not once per line.
		p := &batchProcessor{ctx: r.Context(), logger: d.Logger.With("invocationId", r.Header.Get(headerInvocationID))}
		resp := p.process(body)
		hint := 64
		for _, l := range resp.Logs {
			hint += len(l) + 8
		}
		writeJSONSized(w, http.StatusOK, resp, hint)
	})
}

// batchProcessor handles one batch; its counters feed the summary line.
type batchProcessor struct {
	ctx    context.Context
	logger *slog.Logger
	resp   invocation.Response

	events, twinChanges, reboots, duplicates, ignored, malformed, warnings int
}

// process logs one line per distinct lastReboot change in the batch and
// returns the invocation response carrying the same lines in Logs.
func (p *batchProcessor) process(body []byte) invocation.Response {
	p.resp = invocation.NewResponse()
	batch, err := invocation.DecodeEventHubBatch(body, processorBinding)
	if err != nil {
		p.warn("batch skipped: " + err.Error())
		p.summary("")
		return p.resp
	}
	for _, w := range batch.Warnings {
		p.warn(w)
	}
	p.events = len(batch.Events)
	seen := make(map[string]struct{}, len(batch.Events))
	for i := range batch.Events {
		ev := &batch.Events[i]
		change, err := parseTwinChange(ev)
		switch {
		case err != nil:
			p.malformed++
			p.warn(fmt.Sprintf("event skipped (sequenceNumber=%d): %v", ev.SequenceNumber, err))
			continue
		case change == nil:
			p.ignored++
			continue
		}
		p.twinChanges++
		if change.LastReboot == "" {
			continue // a twin change that does not touch lastReboot
		}
		key := change.DeviceID + "\x00" + change.LastReboot
		if _, dup := seen[key]; dup {
			p.duplicates++
			continue
		}
		seen[key] = struct{}{}
		p.reboots++
		p.logReboot(change, ev)
	}
	p.summary(partitionID(batch.PartitionContext))
	return p.resp
}

// twinChange is what the processor takes from one twin-change notification.
type twinChange struct {
	DeviceID string
	// LastReboot is the reported lastReboot, normalized to RFC 3339 UTC;
	// empty when the change did not set it.
	LastReboot string
	RequestID  string
	Status     string
	// Version is the reported properties' $version after the change.
	Version int64
}

// parseTwinChange returns nil for events that are not reported-property
// twin changes (telemetry, lifecycle, connection state, replaceTwin), and
// an error for a twin change it cannot read. It reads only the members it
// needs, with jsonscan: this runs for every event of every batch.
func parseTwinChange(ev *invocation.Event) (*twinChange, error) {
	var source, sysDevice string
	hasSource := false
	if ev.SystemProperties != nil {
		found := 0
		err := jsonscan.Members(ev.SystemProperties, func(k, v []byte) bool {
			switch string(k) {
			case "iothub-message-source":
				source, hasSource = jsonscan.String(v)
				found++
			case "iothub-connection-device-id":
				sysDevice, _ = jsonscan.String(v)
				found++
			}
			return found < 2 // the rest (a dozen x-opt-* entries) is not needed
		})
		if err != nil {
			return nil, fmt.Errorf("SystemProperties is not a JSON object")
		}
	}
	var schema, opType, propDevice string
	if ev.Properties != nil {
		found := 0
		err := jsonscan.Members(ev.Properties, func(k, v []byte) bool {
			switch string(k) {
			case "iothub-message-schema":
				schema, _ = jsonscan.String(v)
				found++
			case "opType":
				opType, _ = jsonscan.String(v)
				found++
			case "deviceId":
				propDevice, _ = jsonscan.String(v)
				found++
			}
			return found < 3
		})
		if err != nil {
			return nil, fmt.Errorf("Properties is not a JSON object")
		}
	}
	// The source annotation decides when present; the schema property is
	// the fallback for a routed copy that lost its annotations.
	isTwinChange := schema == schemaTwinChange
	if hasSource {
		isTwinChange = source == sourceTwinChange
	}
	if !isTwinChange || opType == opReplaceTwin {
		return nil, nil
	}
	change := &twinChange{DeviceID: firstNonEmpty(sysDevice, propDevice)}
	if change.DeviceID == "" {
		return nil, fmt.Errorf("twin change names no device")
	}
	if err := readReportedReboot(ev.Body, change); err != nil {
		return nil, fmt.Errorf("device %s: %w", change.DeviceID, err)
	}
	return change, nil
}

// readReportedReboot fills change from a notification body
// {"version":N,"properties":{"reported":{"iothubDM":{"reboot":{…}},
// "$metadata":{…},"$version":M}}}; a body that is itself a JSON string
// holding the notification is unwrapped first.
func readReportedReboot(body []byte, change *twinChange) error {
	body = jsonscan.Trim(body)
	if len(body) > 0 && body[0] == '"' {
		inner, err := jsonscan.Unquote(body)
		if err != nil {
			return fmt.Errorf("twin change body is not JSON")
		}
		body = inner
	}
	var reported, reboot []byte
	if err := jsonscan.Members(body, func(k, v []byte) bool {
		if string(k) == "properties" {
			reported = member(v, "reported")
		}
		return true
	}); err != nil {
		return fmt.Errorf("twin change body is not a JSON object")
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
		return fmt.Errorf("properties.reported is not a JSON object")
	}
	if reboot == nil {
		return nil
	}
	var lastReboot []byte
	if err := jsonscan.Members(reboot, func(k, v []byte) bool {
		switch string(k) {
		case "lastReboot":
			lastReboot = v
		case "requestId":
			change.RequestID, _ = jsonscan.String(v)
		case "status":
			change.Status, _ = jsonscan.String(v)
		}
		return true
	}); err != nil {
		return fmt.Errorf("iothubDM.reboot is not a JSON object")
	}
	if lastReboot == nil || jsonscan.IsNull(lastReboot) {
		return nil // not set, or deleted
	}
	s, _ := jsonscan.String(lastReboot)
	t, ok := parseDeviceTime(s)
	if !ok {
		return fmt.Errorf("lastReboot %s is not an RFC 3339 time", truncate(string(lastReboot), 64))
	}
	change.LastReboot = t.UTC().Format(time.RFC3339Nano)
	return nil
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

// logReboot writes the reboot line to the invocation's Logs and to slog.
func (p *batchProcessor) logReboot(c *twinChange, ev *invocation.Event) {
	enqueued := enqueuedRFC3339(ev.EnqueuedTimeUTC)
	var b strings.Builder
	b.Grow(160)
	b.WriteString("reboot reported")
	field(&b, "deviceId", c.DeviceID)
	field(&b, "lastReboot", c.LastReboot)
	field(&b, "requestId", c.RequestID)
	field(&b, "status", c.Status)
	field(&b, "version", strconv.FormatInt(c.Version, 10))
	field(&b, "enqueuedTime", enqueued)
	field(&b, "sequenceNumber", strconv.FormatInt(ev.SequenceNumber, 10))
	p.resp.Logs = append(p.resp.Logs, b.String())
	p.logger.LogAttrs(p.ctx, slog.LevelInfo, "reboot reported",
		slog.String("deviceId", c.DeviceID),
		slog.String("lastReboot", c.LastReboot),
		slog.String("requestId", c.RequestID),
		slog.String("status", c.Status),
		slog.Int64("version", c.Version),
		slog.String("enqueuedTime", enqueued),
		slog.Int64("sequenceNumber", ev.SequenceNumber))
}

func (p *batchProcessor) warn(msg string) {
	p.warnings++
	if p.warnings > maxWarningsPerBatch {
		return
	}
	p.resp.Logs = append(p.resp.Logs, "warning: "+msg)
	p.logger.LogAttrs(p.ctx, slog.LevelWarn, msg)
}

func (p *batchProcessor) summary(partition string) {
	var b strings.Builder
	b.WriteString("batch processed")
	field(&b, "partition", partition)
	for _, kv := range []struct {
		k string
		v int
	}{{"events", p.events}, {"twinChanges", p.twinChanges}, {"reboots", p.reboots}, {"duplicates", p.duplicates}, {"ignored", p.ignored}, {"malformed", p.malformed}, {"warnings", p.warnings}} {
		field(&b, kv.k, strconv.Itoa(kv.v))
	}
	p.resp.Logs = append(p.resp.Logs, b.String())
	p.logger.LogAttrs(p.ctx, slog.LevelInfo, "batch processed",
		slog.String("partition", partition), slog.Int("events", p.events), slog.Int("reboots", p.reboots),
		slog.Int("duplicates", p.duplicates), slog.Int("malformed", p.malformed))
}

// enqueuedRFC3339 renders the host's EnqueuedTimeUtc, UTC without a zone
// designator ("2025-01-31T08:00:05.123"), as RFC 3339. It is only logged,
// so a cheap shape check stands in for parsing, which would cost more than
// the rest of the line for large batches.
func enqueuedRFC3339(s string) string {
	if len(s) < len("2006-01-02T15:04:05") || s[4] != '-' || s[10] != 'T' {
		return ""
	}
	if last := s[len(s)-1]; last == 'Z' || strings.ContainsAny(s[19:], "+-") {
		return s
	}
	return s + "Z"
}

// field appends " key=value", quoting the value as slog's text handler
// does when it is empty or holds spaces, quotes or '='.
func field(b *strings.Builder, key, value string) {
	b.WriteByte(' ')
	b.WriteString(key)
	b.WriteByte('=')
	if value == "" || strings.ContainsFunc(value, func(r rune) bool {
		return r <= ' ' || r == '"' || r == '=' || r == 0x7f
	}) {
		b.WriteString(strconv.Quote(value))
		return
	}
	b.WriteString(value)
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
