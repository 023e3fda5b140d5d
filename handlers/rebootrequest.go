package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"time"
)

// RebootDevice's body limits and defaults (IoT Hub's own ranges for the
// method timeouts, iothub-protocols.md §3.3).
const (
	maxRequestBody         = 16 << 10
	defaultResponseTimeout = 30
	minResponseTimeout     = 5
	maxResponseTimeout     = 300
	maxConnectTimeout      = 300
	maxDelay               = 24 * 60 * 60
)

// rebootRequest is RebootDevice's optional JSON body. Absent and null
// fields take the defaults.
type rebootRequest struct {
	ResponseTimeoutSeconds *int `json:"responseTimeoutSeconds"`
	ConnectTimeoutSeconds  *int `json:"connectTimeoutSeconds"`
	DelaySeconds           *int `json:"delaySeconds"`
}

// rebootParams are the validated parameters of one reboot.
type rebootParams struct {
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
	DelaySeconds    int
}

// parseRebootRequest reads and validates the body: at most 16 KiB of one
// JSON object (or nothing), known fields only, whole numbers in range.
func parseRebootRequest(w http.ResponseWriter, r *http.Request) (rebootParams, *problem) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			p := badRequest(codeBodyTooLarge, fmt.Sprintf("The request body exceeds %d bytes.", maxRequestBody))
			return rebootParams{}, &p
		}
		p := badRequest(codeMalformedJSON, "The request body could not be read.")
		return rebootParams{}, &p
	}
	var req rebootRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if p := decodeStrict(body, &req, "responseTimeoutSeconds, connectTimeoutSeconds and delaySeconds"); p != nil {
			return rebootParams{}, p
		}
	}
	return req.validate()
}

// decodeStrict decodes exactly one JSON value into v, rejecting unknown
// fields (a misspelt "delay" must not silently mean 0); allowed lists the
// fields for the error message.
func decodeStrict(body []byte, v any, allowed string) *problem {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, tokErr := dec.Token(); tokErr != io.EOF {
			err = errors.New("data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field != "":
		what := "a whole number"
		switch typeErr.Type.Kind() {
		case reflect.Float64:
			what = "a number"
		case reflect.String:
			what = "a string"
		case reflect.Slice:
			what = "an array"
		case reflect.Struct:
			what = "an object"
		}
		p := badRequest(codeInvalidArgument, fmt.Sprintf("%s must be %s.", typeErr.Field, what))
		return &p
	case errors.As(err, &typeErr):
		p := badRequest(codeMalformedJSON, "The request body must be a JSON object.")
		return &p
	case bytes.HasPrefix([]byte(err.Error()), []byte("json: unknown field")):
		p := badRequest(codeInvalidArgument, fmt.Sprintf("The request body has an %s; allowed are %s.", err.Error()[len("json: "):], allowed))
		return &p
	}
	p := badRequest(codeMalformedJSON, "The request body is not valid JSON: "+err.Error())
	return &p
}

func (req rebootRequest) validate() (rebootParams, *problem) {
	response := orDefault(req.ResponseTimeoutSeconds, defaultResponseTimeout)
	connect := orDefault(req.ConnectTimeoutSeconds, 0)
	delay := orDefault(req.DelaySeconds, 0)
	var msg string
	switch {
	case response < minResponseTimeout || response > maxResponseTimeout:
		msg = fmt.Sprintf("responseTimeoutSeconds must be within %d..%d.", minResponseTimeout, maxResponseTimeout)
	case connect < 0 || connect > maxConnectTimeout:
		msg = fmt.Sprintf("connectTimeoutSeconds must be within 0..%d.", maxConnectTimeout)
	case delay < 0 || delay > maxDelay:
		msg = fmt.Sprintf("delaySeconds must be within 0..%d.", maxDelay)
	}
	if msg != "" {
		p := badRequest(codeInvalidArgument, msg)
		return rebootParams{}, &p
	}
	return rebootParams{
		ResponseTimeout: time.Duration(response) * time.Second,
		ConnectTimeout:  time.Duration(connect) * time.Second,
		DelaySeconds:    delay,
	}, nil
}

func orDefault(v *int, def int) int {
	if v == nil {
		return def
	}
	return *v
}
