package registry

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

// IoT Hub's twin limits (docs: iot-hub-devguide-device-twins; the same
// numbers are in Azure/iotedge's ReportedPropertiesValidator, which mirrors
// the hub).
const (
	maxTagsBytes       = 8 * 1024
	maxPropertiesBytes = 32 * 1024
	// maxDepth: objects nest at most 10 deep below a section's root. The
	// root's keys are level 1, and a key at level 10 may still hold an
	// object whose keys (level 11) hold primitives or arrays.
	maxDepth        = 10
	maxKeyNameBytes = 1024
	maxStringBytes  = 4 * 1024
	maxSafeInteger  = 1<<52 - 1
	minSafeInteger  = -(1 << 52)
)

// section names a part of the twin a patch addresses.
type section int

const (
	sectionTags section = iota
	sectionDesired
	sectionReported
)

// String is the section's name in IoT Hub's messages.
func (s section) String() string {
	switch s {
	case sectionTags:
		return "Tags"
	case sectionDesired:
		return "Properties.Desired"
	default:
		return "Properties.Reported"
	}
}

func (s section) maxBytes() int {
	if s == sectionTags {
		return maxTagsBytes
	}
	return maxPropertiesBytes
}

// hasMetadata: tags carry no $metadata; desired adds $lastUpdatedVersion.
func (s section) hasMetadata() bool   { return s != sectionTags }
func (s section) stampsVersion() bool { return s == sectionDesired }

// parsePatch decodes a device's reported-properties patch.
func parsePatch(raw []byte) (map[string]any, error) {
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, formatError("The patch is not valid JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, argumentInvalid("The patch must be a JSON object")
	}
	return m, nil
}

// normalizePatch checks a section patch against IoT Hub's key, value and
// depth limits and returns it in the form merge takes: objects as
// map[string]any, leaves as string, json.Number, bool or []any, and nil for
// "delete" when nullDeletes (a replace drops nulls instead).
//
// Clients that send back a twin they read (the Go SDK's UpdateDeviceTwin
// does) include "$metadata" and "$version" in the section: those read-only
// keys are ignored at the section root.
func normalizePatch(sec section, patch map[string]any, nullDeletes bool) (map[string]any, error) {
	if sec.hasMetadata() {
		if _, ok := patch["$metadata"]; ok {
			patch = withoutReadOnly(patch)
		} else if _, ok := patch["$version"]; ok {
			patch = withoutReadOnly(patch)
		}
	}
	return normalizeObject(sec, patch, 1, nullDeletes)
}

func withoutReadOnly(patch map[string]any) map[string]any {
	out := make(map[string]any, len(patch))
	for k, v := range patch {
		if k != "$metadata" && k != "$version" {
			out[k] = v
		}
	}
	return out
}

// normalizeObject checks the keys of an object whose keys are at level.
func normalizeObject(sec section, m map[string]any, level int, nullDeletes bool) (map[string]any, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if err := checkKey(sec, k); err != nil {
			return nil, err
		}
		switch tv := v.(type) {
		case nil:
			if nullDeletes {
				out[k] = nil
			}
		case map[string]any:
			if level > maxDepth {
				return nil, argumentInvalid("%s: nesting depth of property '%s' exceeds %d", sec, k, maxDepth)
			}
			kid, err := normalizeObject(sec, tv, level+1, nullDeletes)
			if err != nil {
				return nil, err
			}
			out[k] = kid
		default:
			leaf, err := normalizeLeaf(sec, k, v)
			if err != nil {
				return nil, err
			}
			out[k] = leaf
		}
	}
	return out, nil
}

// normalizeLeaf checks a primitive or array value of key.
func normalizeLeaf(sec section, key string, v any) (any, error) {
	switch tv := v.(type) {
	case string:
		if len(tv) > maxStringBytes {
			return nil, argumentInvalid("%s: value of property '%s' is %d bytes long; the maximum is %d", sec, key, len(tv), maxStringBytes)
		}
		d, _ := normalizeDate(tv)
		return d, nil
	case bool:
		return tv, nil
	case []any:
		return normalizeArray(sec, key, tv)
	case map[string]any:
		// An object inside an array: a value, so null stays null.
		out := make(map[string]any, len(tv))
		for k, kv := range tv {
			if err := checkKey(sec, k); err != nil {
				return nil, err
			}
			if kv == nil {
				out[k] = nil
				continue
			}
			leaf, err := normalizeLeaf(sec, k, kv)
			if err != nil {
				return nil, err
			}
			out[k] = leaf
		}
		return out, nil
	}
	n, err := toNumber(v)
	if err != nil {
		return nil, argumentInvalid("%s: property '%s' has a value of unsupported type: %v", sec, key, err)
	}
	if err := checkInteger(n); err != nil {
		return nil, argumentInvalid("%s: property '%s' %v", sec, key, err)
	}
	return n, nil
}

func normalizeArray(sec section, key string, a []any) ([]any, error) {
	out := make([]any, len(a))
	for i, e := range a {
		if e == nil {
			return nil, argumentInvalid("%s: array in property '%s' contains null; arrays cannot contain null", sec, key)
		}
		v, err := normalizeLeaf(sec, key, e)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// checkKey applies IoT Hub's key rules: not empty, at most 1 KB, and no
// '.', '$', space or control character (C0 and C1).
func checkKey(sec section, k string) error {
	if k == "" {
		return argumentInvalid("%s: a property name is empty", sec)
	}
	if len(k) > maxKeyNameBytes {
		return argumentInvalid("%s: property name '%.16s...' is %d bytes long; the maximum is %d", sec, k, len(k), maxKeyNameBytes)
	}
	for _, r := range k {
		if r == '.' || r == '$' || r == ' ' || unicode.IsControl(r) {
			return argumentInvalid("%s: property name %q contains the invalid character %q", sec, k, r)
		}
	}
	return nil
}

// toNumber turns the numbers a decoder may produce into json.Number,
// keeping the text of json.Number as is so nothing is rounded.
func toNumber(v any) (json.Number, error) {
	switch tv := v.(type) {
	case json.Number:
		if !isJSONNumber(string(tv)) {
			return "", fmt.Errorf("%q is not a JSON number", string(tv))
		}
		return tv, nil
	case float64:
		if math.IsNaN(tv) || math.IsInf(tv, 0) {
			return "", fmt.Errorf("%v is not a JSON number", tv)
		}
		if tv == math.Trunc(tv) && math.Abs(tv) < 1e21 {
			return json.Number(strconv.FormatFloat(tv, 'f', -1, 64)), nil
		}
		return json.Number(strconv.FormatFloat(tv, 'g', -1, 64)), nil
	case float32:
		return toNumber(float64(tv))
	case int:
		return json.Number(strconv.FormatInt(int64(tv), 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(tv, 10)), nil
	case int32:
		return json.Number(strconv.FormatInt(int64(tv), 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(tv, 10)), nil
	case uint32:
		return json.Number(strconv.FormatUint(uint64(tv), 10)), nil
	case uint:
		return json.Number(strconv.FormatUint(uint64(tv), 10)), nil
	}
	return "", fmt.Errorf("%T", v)
}

// isJSONNumber reports whether s is exactly one JSON number: a valid JSON
// text that starts and ends like a number can be nothing else.
func isJSONNumber(s string) bool {
	if s == "" || !json.Valid([]byte(s)) {
		return false
	}
	first, last := s[0], s[len(s)-1]
	return (first == '-' || '0' <= first && first <= '9') && '0' <= last && last <= '9'
}

// checkInteger enforces IoT Hub's integer range, [-2^52, 2^52-1]: what a
// double holds exactly. Numbers with a fraction or exponent are not integers.
func checkInteger(n json.Number) error {
	s := string(n)
	if strings.ContainsAny(s, ".eE") {
		return nil
	}
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil || i > maxSafeInteger || i < minSafeInteger {
		return fmt.Errorf("has an out of bound value %s; valid integers are between %d and %d", s, int64(minSafeInteger), int64(maxSafeInteger))
	}
	return nil
}

// checkSize enforces a section's size limit on its merged content,
// measured as compact JSON without $metadata and $version.
func checkSize(sec section, root *node) error {
	b, err := marshalJSON(root.value())
	if err != nil {
		return argumentInvalid("%s: %v", sec, err)
	}
	if len(b) > sec.maxBytes() {
		return argumentInvalid("'%s' size should be less than %d bytes", sec, sec.maxBytes())
	}
	return nil
}
