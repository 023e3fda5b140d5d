// Package query implements the IoT Hub query language over device twins, as
// served by POST /devices/query: SELECT [TOP n] ... FROM devices [WHERE ...]
// [GROUP BY ...]. Semantics follow the IoT Hub docs
// (iot-hub-devguide-query-language.md, query-twins.md); where they are silent
// the package follows the Cosmos DB SQL dialect the language descends from,
// notably its three-valued logic: a comparison with an undefined or
// mismatched operand is undefined, NOT undefined is undefined, and only a
// WHERE that evaluates to true keeps a document.
package query

import (
	"fmt"
	"unicode/utf8"
)

// MaxLength is the longest query text, in characters, IoT Hub accepts.
const MaxLength = 8192

// Collections a query can range over.
const (
	CollectionDevices = "devices"
	CollectionModules = "devices.modules"
	CollectionJobs    = "devices.jobs"
)

// Item types reported in the x-ms-item-type response header.
const (
	ItemTypeTwin      = "Twin"
	ItemTypeDeviceJob = "DeviceJob"
	ItemTypeRaw       = "Raw"
)

// Query is a parsed statement. It is immutable and safe for concurrent use.
type Query struct {
	top     int // 0 when there is no TOP
	star    bool
	proj    []projection
	from    string
	where   expr // nil when there is no WHERE
	groupBy path // nil when there is no GROUP BY
}

// projection is one element of the SELECT list: a property path or an aggregate.
type projection struct {
	agg   aggFunc
	path  path   // nil for COUNT()
	name  string // key in the result object
	alias bool   // name was given with AS
}

// Result is what Run returns: items in output order and their item type.
type Result struct {
	Items    []any  // never nil, so it encodes as a JSON array even when empty
	ItemType string // ItemTypeTwin for SELECT *, ItemTypeRaw for projections and aggregates
}

// Parse parses an IoT Hub query. Errors are *SyntaxError.
func Parse(text string) (*Query, error) {
	if n := utf8.RuneCountInString(text); n > MaxLength {
		return nil, newSyntaxError(text, runeOffset(text, MaxLength),
			fmt.Sprintf("query is %d characters long; the maximum is %d", n, MaxLength))
	}
	return parse(text)
}

func runeOffset(text string, n int) int {
	for i := range text {
		if n == 0 {
			return i
		}
		n--
	}
	return len(text)
}

// From returns the collection: "devices", "devices.modules" or "devices.jobs".
func (q *Query) From() string { return q.from }

// ItemType is the x-ms-item-type the hub reports for this query's results.
func (q *Query) ItemType() string {
	switch {
	case !q.star:
		return ItemTypeRaw
	case q.from == CollectionJobs:
		return ItemTypeDeviceJob
	default:
		return ItemTypeTwin
	}
}
