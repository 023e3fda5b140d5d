package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxBodyBytes caps request bodies. IoT Hub's largest documented bodies are
// twins (tags 8 KB + desired 32 KB) and method payloads (128 KB).
const maxBodyBytes = 256 << 10

const contentTypeJSON = "application/json; charset=utf-8"

// writeJSON writes v as the response body with IoT Hub's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own response types always encode; reaching this is a bug.
		status = http.StatusInternalServerError
		b = []byte(`{"Message":"ErrorCode:ServerError;response encoding failed","ExceptionMessage":""}`)
	}
	writeRaw(w, status, b)
}

// writeRaw writes an already encoded JSON body.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readBody reads a capped request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *hubError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errMessageTooLarge(fmt.Sprintf("The request body exceeds the maximum size of %d bytes.", tooLarge.Limit))
	case err != nil:
		return nil, errFormat("The request body could not be read.")
	}
	return b, nil
}

// decode reads a capped JSON request body into a T. An empty body is an error.
func decode[T any](w http.ResponseWriter, r *http.Request) (T, *hubError) {
	var v T
	b, herr := readBody(w, r)
	if herr != nil {
		return v, herr
	}
	if err := unmarshal(b, &v); err != nil {
		return v, err
	}
	return v, nil
}

// unmarshal decodes one JSON value, rejecting trailing data.
func unmarshal(b []byte, v any) *hubError {
	if len(bytes.TrimSpace(b)) == 0 {
		return errFormat("The request body is empty.")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return errFormat("The request body is not valid JSON: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return errFormat("The request body has data after the JSON value.")
	}
	return nil
}
