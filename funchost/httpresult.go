package funchost

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// httpResponse is what an HTTP function's result turns into for the
// caller.
type httpResponse struct {
	status int
	header http.Header
	body   []byte
}

// write sends the response. No Content-Type is invented: the host adds
// none, so Go's sniffing is switched off when the handler set none.
func (r httpResponse) write(w http.ResponseWriter) {
	for k, vs := range r.header {
		w.Header()[k] = vs
	}
	if _, ok := r.header["Content-Type"]; !ok {
		w.Header()["Content-Type"] = nil
	}
	w.WriteHeader(r.status)
	w.Write(r.body)
}

// httpResponseOf maps an invocation result to the caller's response
// (functions-custom-handler.md §2.2): Outputs.<http out name>, or
// ReturnValue for a "$return" http output.
func httpResponseOf(fn *function, res invocationResult) (httpResponse, error) {
	if fn.httpOut == nil {
		return httpResponse{status: http.StatusNoContent, header: http.Header{}}, nil
	}
	if fn.httpOut.Name == returnBinding {
		return responseFromValue(res.ReturnValue, true)
	}
	raw, ok := res.output(fn.httpOut.Name)
	if !ok {
		// Without a $return output, an object ReturnValue's properties are
		// merged into Outputs (HandleOutputDictionary).
		var merged map[string]json.RawMessage
		if json.Unmarshal(res.ReturnValue, &merged) == nil {
			raw, ok = invocationResult{Outputs: merged}.output(fn.httpOut.Name)
		}
	}
	if !ok {
		raw = nil
	}
	return responseFromValue(raw, false)
}

// responseFromValue reads {statusCode, headers, body} (keys in any case).
// isReturn selects the $return rules: "status" is an alias there, and a
// string that is not JSON becomes a 200 text body instead of a failure.
func responseFromValue(raw json.RawMessage, isReturn bool) (httpResponse, error) {
	raw = bytes.TrimSpace(raw)
	resp := httpResponse{status: http.StatusOK, header: http.Header{}}
	if len(raw) == 0 || string(raw) == "null" {
		// Nothing set: the host answers 200 with an empty JSON object.
		resp.body = []byte("{}")
		return resp, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return httpResponse{}, err
		}
		inner := bytes.TrimSpace([]byte(s))
		if len(inner) == 0 || inner[0] != '{' || !json.Valid(inner) {
			if isReturn {
				resp.body = []byte(s)
				return resp, nil
			}
			return httpResponse{}, errors.New("the http output is a string that is not a JSON object")
		}
		raw = inner
	}
	if raw[0] != '{' {
		if isReturn {
			resp.body = []byte(dotnetText(raw))
			return resp, nil
		}
		return httpResponse{}, fmt.Errorf("the http output is not an object: %.40s", raw)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return httpResponse{}, fmt.Errorf("the http output: %w", err)
	}
	get := func(name string) (json.RawMessage, bool) {
		for k, v := range fields {
			if strings.EqualFold(k, name) {
				return v, true
			}
		}
		return nil, false
	}
	code, _ := get("statusCode")
	if isNull(code) && isReturn {
		code, _ = get("status")
	}
	if n, ok := statusCode(code); ok {
		resp.status = n
	}
	if h, ok := get("headers"); ok && !isNull(h) {
		var hs map[string]json.RawMessage
		if err := json.Unmarshal(h, &hs); err != nil {
			return httpResponse{}, fmt.Errorf("the http output's headers are not an object: %w", err)
		}
		for k, v := range hs {
			if isNull(v) {
				return httpResponse{}, fmt.Errorf("the http output's header %q is null", k)
			}
			resp.header.Set(k, dotnetText(v))
		}
	}
	if b, ok := get("body"); ok && !isNull(b) {
		resp.body = []byte(dotnetText(b))
	}
	return resp, nil
}

// statusCode reads a status given as a number or a numeric string
// (int.TryParse); anything else leaves the default.
func statusCode(raw json.RawMessage) (int, bool) {
	if isNull(raw) {
		return 0, false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 100 || n > 999 {
		return 0, false
	}
	return n, true
}

// dotnetText renders a JSON value as JToken.ToString() does: a string's
// content, booleans as True/False, numbers as written, objects and arrays
// as indented JSON.
func dotnetText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return ""
	case raw[0] == '"':
		var s string
		json.Unmarshal(raw, &s)
		return s
	case string(raw) == "true":
		return "True"
	case string(raw) == "false":
		return "False"
	case raw[0] == '{' || raw[0] == '[':
		var b bytes.Buffer
		if json.Indent(&b, raw, "", "  ") == nil {
			return b.String()
		}
	}
	return string(raw)
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}
