package invocation

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"strings"
)

// HTTPRequest is an HTTP trigger's value in the default (envelope) mode:
// Data.<name> = {Url, Method, Query, Headers, Params, Identities, Body}.
type HTTPRequest struct {
	// URL is scheme://host/path?query as the host received it. It includes
	// ?code=<function key> when the caller used one: never log it.
	URL    string
	Method string
	// Query holds the query parameters; repeated keys are comma-joined.
	Query map[string]string
	// Headers holds every request header, including x-functions-key.
	Headers map[string][]string
	// Params holds the route values, e.g. {"deviceId":"dev-42"}.
	Params map[string]string
	// Body is the request body; nil when the request had none (the host
	// sends Body only when Content-Length > 0).
	Body []byte
}

type wireHTTPRequest struct {
	URL     string `json:"Url"`
	Method  string
	Query   map[string]json.RawMessage
	Headers map[string]json.RawMessage
	Params  map[string]json.RawMessage
	Body    json.RawMessage
}

// DecodeHTTPRequest decodes the invocation body the host POSTs for an HTTP
// trigger named name ("req") when forwarding is off.
func DecodeHTTPRequest(body []byte, name string) (HTTPRequest, error) {
	var env envelope[json.RawMessage]
	if err := json.Unmarshal(body, &env); err != nil {
		return HTTPRequest{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	raw, err := binding(env.Data, name)
	if err != nil {
		return HTTPRequest{}, err
	}
	var w wireHTTPRequest
	if err := json.Unmarshal(raw, &w); err != nil {
		return HTTPRequest{}, fmt.Errorf("%w: Data.%s: %v", ErrMalformed, name, err)
	}
	req := HTTPRequest{
		URL:     w.URL,
		Method:  w.Method,
		Query:   stringMap(w.Query),
		Params:  stringMap(w.Params),
		Headers: make(map[string][]string, len(w.Headers)),
	}
	for k, v := range w.Headers {
		req.Headers[k] = stringList(v)
	}
	req.Body, err = requestBody(w.Body, req.header("Content-Type"))
	if err != nil {
		return HTTPRequest{}, fmt.Errorf("%w: Data.%s.Body: %v", ErrMalformed, name, err)
	}
	return req, nil
}

func (r HTTPRequest) header(name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// requestBody undoes the host's Body encoding: a string for text bodies,
// base64 for application/octet-stream and multipart/*.
func requestBody(raw json.RawMessage, contentType string) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	if raw[0] != '"' {
		return raw, nil // an object or array: keep its JSON text
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	if binaryMediaType(contentType) {
		return base64.StdEncoding.DecodeString(s)
	}
	return []byte(s), nil
}

func binaryMediaType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/")
}

// stringMap reads {name: value} where values are strings (other JSON kept
// as text).
func stringMap(m map[string]json.RawMessage) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = scalarText(v)
	}
	return out
}

// stringList reads a header value: an array of strings as the host sends
// it, or a single string.
func stringList(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	if s := scalarText(raw); s != "" {
		return []string{s}
	}
	return nil
}

// HTTPResponse is an http output binding's value: Outputs.<name>. Header
// values must be strings, and the host adds no Content-Type; Body is sent
// as a string so the caller receives exactly these bytes.
type HTTPResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}
