package query

import "strings"

// expr is a node of a WHERE expression.
type expr interface {
	// eval returns a JSON value (nil, bool, float64, string, map, slice) or undefined{}.
	eval(doc map[string]any) any
	format(b *strings.Builder)
}

// undefined is the value of a missing property and of operations that have
// no meaning (comparing a string with a number, arithmetic on a string).
type undefined struct{}

type literal struct{ v any } // nil, bool, float64, string or undefined{}

type pathExpr struct{ p path }

type binaryExpr struct {
	op   binOp
	l, r expr
}

type notExpr struct{ x expr }

type negExpr struct{ x expr }

// inExpr is x IN [...] or, with negate, x NIN [...].
type inExpr struct {
	x      expr
	list   []any
	negate bool
}

type isDefinedExpr struct{ x expr }

// stringFuncExpr is STARTSWITH(x, y), or ENDSWITH(x, y) when suffix is set.
type stringFuncExpr struct {
	suffix bool
	x, y   expr
}

type binOp uint8

const (
	opEq binOp = iota
	opNe
	opLt
	opGt
	opLe
	opGe
	opAnd
	opOr
	opAdd
	opSub
	opMul
	opDiv
	opMod
)

// String is the canonical spelling; "<>" is read as opNe.
func (op binOp) String() string {
	return [...]string{"=", "!=", "<", ">", "<=", ">=", "AND", "OR", "+", "-", "*", "/", "%"}[op]
}

type aggFunc uint8

const (
	aggNone aggFunc = iota
	aggCount
	aggAvg
	aggSum
	aggMin
	aggMax
)

func (a aggFunc) String() string {
	return [...]string{"", "COUNT", "AVG", "SUM", "MIN", "MAX"}[a]
}

// path is a property path with any "devices." prefix already stripped and the
// first segment in canonical twin casing when it names a twin field.
type path []string

func (p path) equal(o path) bool {
	if len(p) != len(o) || len(p) == 0 {
		return false
	}
	if !strings.EqualFold(p[0], o[0]) {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] != o[i] {
			return false
		}
	}
	return true
}

// twinFields are the top-level twin properties in the casing the hub returns.
// The hub matches them case-insensitively (SELECT DeviceId yields "deviceId").
var twinFields = [...]string{
	"deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason",
	"statusUpdateTime", "connectionState", "lastActivityTime",
	"cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint",
	"modelId", "version", "tags", "properties", "capabilities",
	"deviceScope", "parentScopes",
}

func canonicalField(name string) string {
	for _, f := range twinFields {
		if strings.EqualFold(f, name) {
			return f
		}
	}
	return name
}

// jobFields are the top-level properties of a devices.jobs item
// (iot-hub-devguide-query-language, "Queries for IoT Hub jobs"; "error" from
// azure-iot-sdk-csharp DeviceJob); the docs' own example also filters on
// createdTimeUtc, which no item has.
var jobFields = [...]string{
	"deviceId", "jobId", "jobType", "status", "startTimeUtc", "endTimeUtc",
	"createdDateTimeUtc", "lastUpdatedDateTimeUtc", "createdTimeUtc", "outcome", "error",
}

// canonicalJobField spells a devices.jobs property as items carry it; like
// twin fields, job fields are matched case-insensitively.
func canonicalJobField(name string) string {
	for _, f := range jobFields {
		if strings.EqualFold(f, name) {
			return f
		}
	}
	return name
}

// isTwinOnlyField reports whether name is a twin field no job item has, so
// that a devices.jobs condition on it refers to the device twin.
func isTwinOnlyField(name string) bool {
	for _, f := range jobFields {
		if strings.EqualFold(f, name) {
			return false
		}
	}
	for _, f := range twinFields {
		if strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}
