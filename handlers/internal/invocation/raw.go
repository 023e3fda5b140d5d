package invocation

import (
	"bytes"
	"encoding/json"
)

// Unwrap decodes raw into v, first removing one layer of JSON string
// encoding if raw is a JSON string: `"[1,2]"` and `[1,2]` decode alike.
// A string whose content is not itself JSON is an error, so use it only for
// values the host double-encodes.
func Unwrap(raw json.RawMessage, v any) error {
	inner, err := unquote(raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(inner, v)
}

// unquote returns the content of raw if it is a JSON string, else raw.
func unquote(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 || raw[0] != '"' {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return json.RawMessage(s), nil
}

// isNull reports whether raw is absent or the JSON literal null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || bytes.Equal(raw, []byte("null"))
}
