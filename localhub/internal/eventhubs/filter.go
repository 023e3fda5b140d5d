package eventhubs

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// selectorFilter is the filter-set key every Event Hubs client puts its
// start position under. Its descriptor differs by client (Go and JS send
// 0x0000468C00000004, .NET 0x000000137000000A), so only the key counts.
const selectorFilter codec.Symbol = "apache.org:selector-filter:string"

// maxSelector bounds the expressions we parse; real ones are under 80
// bytes.
const maxSelector = 256

var errSelector = errors.New("selector filter")

// startPosition reads a consumer's start position from its source's
// filter set. With no selector filter the consumer starts at the earliest
// retained event, as Event Hubs does for a receiver without one.
func startPosition(filter codec.Map) (eventlog.Position, error) {
	v, ok := filter.Get(selectorFilter)
	if !ok {
		return eventlog.Position{Earliest: true}, nil
	}
	if d, ok := v.(codec.Described); ok {
		v = d.Value
	}
	expr, ok := v.(string)
	if !ok {
		return eventlog.Position{}, fmt.Errorf("%w: the value of %s is %T, not a string", errSelector, selectorFilter, v)
	}
	return parseSelector(expr)
}

// parseSelector parses the one form of selector the Event Hubs clients
// send,
//
//	amqp.annotation.<annotation> <op> <value>
//
// where annotation is x-opt-offset, x-opt-sequence-number or
// x-opt-enqueued-time (or x-opt-enqueuedtimeutc, amenzhinsky's alias), op
// is > or >=, and value is quoted ('12', as Go and JS send it) or not (12,
// as .NET does). Offset -1 is the start of the partition and @latest its
// end when the link attaches; enqueued times are Unix milliseconds.
// Anything else is an error: a filter we misread would deliver the wrong
// events silently.
func parseSelector(expr string) (eventlog.Position, error) {
	fail := func(format string, a ...any) (eventlog.Position, error) {
		return eventlog.Position{}, fmt.Errorf("%w %q: %s", errSelector, truncate(expr), fmt.Sprintf(format, a...))
	}
	if len(expr) > maxSelector {
		return fail("longer than %d bytes", maxSelector)
	}
	rest := strings.TrimSpace(expr)
	const prefix = "amqp.annotation."
	if len(rest) < len(prefix) || !strings.EqualFold(rest[:len(prefix)], prefix) {
		return fail("want amqp.annotation.<x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time> > value")
	}
	rest = rest[len(prefix):]
	end := strings.IndexAny(rest, " \t><=")
	if end < 0 {
		return fail("no comparison")
	}
	name := rest[:end]
	rest = strings.TrimLeft(rest[end:], " \t")
	var inclusive bool
	switch {
	case strings.HasPrefix(rest, ">="):
		inclusive, rest = true, rest[2:]
	case strings.HasPrefix(rest, ">"):
		rest = rest[1:]
	default:
		return fail("the comparison must be > or >=")
	}
	value := strings.TrimSpace(rest)
	if len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'' {
		value = value[1 : len(value)-1]
	}
	if value == "" || strings.ContainsAny(value, "' \t") {
		return fail("the value must be one word, quoted or not")
	}
	pos := eventlog.Position{Inclusive: inclusive}
	switch strings.ToLower(name) {
	case "x-opt-offset":
		switch {
		case value == eventlog.OffsetLatest:
			pos.Latest = true
		case strings.HasPrefix(value, "-"):
			if _, err := strconv.ParseInt(value, 10, 64); err != nil {
				return fail("offset %q is not a number", value)
			}
			pos.Earliest = true // -1, and any offset before the first
		default:
			if _, err := strconv.ParseUint(value, 10, 63); err != nil {
				return fail("offset %q is not a number or @latest", value)
			}
			pos.Offset = &value
		}
	case "x-opt-sequence-number":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fail("sequence number %q is not a number", value)
		}
		pos.SequenceNumber = &n
	case "x-opt-enqueued-time", "x-opt-enqueuedtimeutc":
		ms, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fail("enqueued time %q is not Unix milliseconds", value)
		}
		t := time.UnixMilli(ms).UTC()
		pos.EnqueuedTime = &t
	default:
		return fail("unknown annotation %q", truncate(name))
	}
	return pos, nil
}

// truncate keeps what a client sent short in errors and logs.
func truncate(s string) string {
	const limit = 96
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
