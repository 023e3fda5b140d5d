package handlers

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// writeJSON writes v as application/json with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONAs(w, status, "application/json; charset=utf-8", v)
}

// writeJSONSized is writeJSON for large bodies of about sizeHint bytes.
func writeJSONSized(w http.ResponseWriter, status int, v any, sizeHint int) {
	writeJSONAsSized(w, status, "application/json; charset=utf-8", v, sizeHint)
}

// encodeFailure is the problem written when a response cannot be encoded
// (a bug): still the problem+json the API promises, never plain text.
const encodeFailure = `{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"The response could not be encoded.","errorCode":"InternalError"}` + "\n"

// writeJSONAs encodes v before writing anything, so an encoding failure
// (a bug) still yields a well-formed 500 instead of a half-written body.
func writeJSONAs(w http.ResponseWriter, status int, contentType string, v any) {
	writeJSONAsSized(w, status, contentType, v, 512)
}

func writeJSONAsSized(w http.ResponseWriter, status int, contentType string, v any, sizeHint int) {
	var buf bytes.Buffer
	buf.Grow(sizeHint)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status, contentType = http.StatusInternalServerError, problemContentType
		buf.Reset()
		buf.WriteString(encodeFailure)
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// readBody reads r's body, at most limit bytes, into a buffer sized from
// Content-Length when the caller sent one (batches run to megabytes, and
// growing a buffer by doubling costs more than decoding them).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(nil, r.Body, limit)
	if n := r.ContentLength; n > 0 && n <= limit {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		// Content-Length is exact over HTTP/1.1; read on in case a caller
		// in-process set it short.
		rest, err := io.ReadAll(body)
		return append(buf, rest...), err
	}
	return io.ReadAll(body)
}
