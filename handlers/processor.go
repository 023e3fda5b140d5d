package handlers

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/iothub-reboot/devmgmt/handlers/internal/invocation"
)

// maxBatchBody bounds an invocation body: far above what host.json's
// maxEventBatchSize lets the host send, low enough to refuse garbage.
const maxBatchBody = 256 << 20

// DefaultMaxConcurrentBatches caps the TwinChangeProcessor invocations
// processed at once. A batch costs about its own size in memory (it is
// decoded in place), so two of the largest accepted (maxBatchBody) fit an
// instance of 2 GB with the garbage collector's headroom.
const DefaultMaxConcurrentBatches = 2

// maxWarningsPerBatch caps detailed warnings so a batch of garbage cannot
// flood the logs; the summary line still counts every malformed event.
const maxWarningsPerBatch = 20

// twinProcessor serves TwinChangeProcessor invocations: one per server,
// holding what outlives a batch (the reboot memory, the concurrency cap).
type twinProcessor struct {
	decode batchDecoder
	logger *slog.Logger
	memory *rebootMemory
	// slots holds a token per batch being processed.
	slots chan struct{}
}

func newTwinProcessor(d Deps) *twinProcessor {
	return &twinProcessor{
		decode: d.decodeBatch,
		logger: d.Logger,
		memory: newRebootMemory(d.RebootMemory),
		slots:  make(chan struct{}, d.MaxConcurrentBatches),
	}
}

// ServeHTTP answers 200 to every body it could read, however malformed:
// the Event Hubs trigger checkpoints a batch whether or not the function
// succeeded, so failing cannot save an event, and a malformed event fails
// the same way on every retry. Problems are logged as warnings instead.
//
// A batch waits for a slot before its body is read, so the batches in
// memory are bounded by the cap whatever the host sends at once (the host
// runs one invocation per partition at a time; waiting ones hold only a
// connection).
func (tp *twinProcessor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case tp.slots <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-tp.slots }()
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
	run := &batchRun{memory: tp.memory}
	resp := run.process(tp.decode, body)
	body = nil // the events point into it; let it go before encoding
	hint := 64
	for _, l := range resp.Logs {
		hint += len(l) + 8
	}
	writeJSONSized(w, http.StatusOK, resp, hint)
}

// batchRun handles one batch; its counters feed the summary line.
type batchRun struct {
	memory *rebootMemory
	resp   invocation.Response

	events, twinChanges, reboots, stateChanges, repeats, ignored, malformed, warnings int
}

// process logs one line per new lastReboot of a device and one per other
// change of its reboot state, and returns the invocation response
// carrying the same lines in Logs.
func (p *batchRun) process(decode batchDecoder, body []byte) invocation.Response {
	p.resp = invocation.NewResponse()
	batch, err := decode(body)
	if err != nil {
		p.warn("batch skipped: " + err.Error())
		p.summary("")
		return p.resp
	}
	for _, w := range batch.Warnings {
		p.warn(w)
	}
	p.events = len(batch.Events)
	for i := range batch.Events {
		ev := &batch.Events[i]
		switch {
		case ev.Err != nil:
			p.malformed++
			p.warn(fmt.Sprintf("event skipped (sequenceNumber=%d): %v", ev.SequenceNumber, ev.Err))
		case ev.Change == nil:
			p.ignored++
		default:
			p.twinChanges++
			p.apply(ev)
		}
	}
	p.summary(batch.Partition)
	return p.resp
}

// apply logs what a device's twin change means for its reboot:
//
//   - "reboot reported" for a lastReboot that differs from the one last
//     seen for the device (or the first one this instance sees), unless
//     the device reports its reboot in progress or failed: a device
//     reporting status rebooting still carries the lastReboot of its
//     previous boot;
//   - "reboot state changed" for another change of status or requestId
//     (rebooting, failed, …): when the device's state is known, or the new
//     status is in progress or failed;
//   - nothing when the device repeats what it reported before, as devices
//     do after reconnecting, nor for an event older than the last one seen
//     of the device (the host delivering a batch again).
func (p *batchRun) apply(ev *decodedEvent) {
	c := ev.Change
	if c.LastReboot == "" && c.Status == "" {
		return // a twin change that does not touch the reboot state
	}
	notBooted := oneOf(c.Status, inProgressStatuses) || oneOf(c.Status, failedStatuses)
	var line string
	prev, _ := p.memory.update(c.DeviceID, func(prev rebootState, known bool) rebootState {
		if known && prev.seen(ev.SequenceNumber, ev.EnqueuedTimeUTC) {
			return prev // delivered again: no line
		}
		next := prev
		next.SequenceNumber, next.Enqueued = ev.SequenceNumber, ev.EnqueuedTimeUTC
		switch {
		case c.LastReboot != "" && !notBooted && (!known || c.LastReboot != prev.LastReboot):
			line = lineReboot
			next.LastReboot, next.Status, next.RequestID = c.LastReboot, c.Status, c.RequestID
		case c.Status != "" && (known && (c.Status != prev.Status || c.RequestID != prev.RequestID) || !known && notBooted):
			line = lineStateChange
			next.Status, next.RequestID = c.Status, c.RequestID
		case c.Status != "":
			next.Status, next.RequestID = c.Status, c.RequestID
		}
		if next.LastReboot == "" {
			// The boot a device in progress or failed still runs: its
			// next, different lastReboot is the new boot.
			next.LastReboot = c.LastReboot
		}
		return next
	})
	switch line {
	case lineReboot:
		p.reboots++
		p.logReboot(c, ev, prev.LastReboot)
	case lineStateChange:
		p.stateChanges++
		p.logStateChange(c, ev)
	default: // a repeat, or a redelivered event
		p.repeats++
	}
}

// The processor's lines; users grep for them.
const (
	lineReboot      = "reboot reported"
	lineStateChange = "reboot state changed"
)

// logReboot writes the reboot line to the invocation's Logs only. The host
// logs each Logs entry against the invocation (Function.<name>.User), and
// it also logs the handler's stdout (Host.Function.Console): writing the
// line to both would print it twice under every host, Azure's included.
func (p *batchRun) logReboot(c *twinChange, ev *decodedEvent, previous string) {
	enqueued := enqueuedRFC3339(ev.EnqueuedTimeUTC)
	var b strings.Builder
	b.Grow(192)
	b.WriteString(lineReboot)
	field(&b, "deviceId", c.DeviceID)
	field(&b, "lastReboot", c.LastReboot)
	field(&b, "requestId", c.RequestID)
	field(&b, "status", c.Status)
	field(&b, "version", strconv.FormatInt(c.Version, 10))
	field(&b, "enqueuedTime", enqueued)
	field(&b, "sequenceNumber", strconv.FormatInt(ev.SequenceNumber, 10))
	field(&b, "previousLastReboot", previous)
	p.resp.Logs = append(p.resp.Logs, b.String())
}

// logStateChange writes the line for a reboot-state change that is not a
// new boot (rebooting, failed, …).
func (p *batchRun) logStateChange(c *twinChange, ev *decodedEvent) {
	enqueued := enqueuedRFC3339(ev.EnqueuedTimeUTC)
	var b strings.Builder
	b.Grow(192)
	b.WriteString(lineStateChange)
	field(&b, "deviceId", c.DeviceID)
	field(&b, "status", c.Status)
	field(&b, "requestId", c.RequestID)
	field(&b, "reason", c.Reason)
	field(&b, "lastReboot", c.LastReboot)
	field(&b, "version", strconv.FormatInt(c.Version, 10))
	field(&b, "enqueuedTime", enqueued)
	field(&b, "sequenceNumber", strconv.FormatInt(ev.SequenceNumber, 10))
	p.resp.Logs = append(p.resp.Logs, b.String())
}

func (p *batchRun) warn(msg string) {
	p.warnings++
	if p.warnings > maxWarningsPerBatch {
		return
	}
	p.resp.Logs = append(p.resp.Logs, "warning: "+msg)
}

func (p *batchRun) summary(partition string) {
	var b strings.Builder
	b.WriteString("batch processed")
	field(&b, "partition", partition)
	for _, kv := range []struct {
		k string
		v int
	}{{"events", p.events}, {"twinChanges", p.twinChanges}, {"reboots", p.reboots}, {"stateChanges", p.stateChanges}, {"repeats", p.repeats},
		{"ignored", p.ignored}, {"malformed", p.malformed}, {"warnings", p.warnings}} {
		field(&b, kv.k, strconv.Itoa(kv.v))
	}
	p.resp.Logs = append(p.resp.Logs, b.String())
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
