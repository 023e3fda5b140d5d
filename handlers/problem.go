package handlers

import (
	"net/http"
	"strconv"
)

// Error codes in problem responses (errorCode), documented with the API in
// docs/function-app.md and docs/openapi.json.
const (
	codeInvalidDeviceID       = "InvalidDeviceId"
	codeInvalidArgument       = "InvalidArgument"
	codeMalformedJSON         = "MalformedJson"
	codeBodyTooLarge          = "BodyTooLarge"
	codeInvalidContinuation   = "InvalidContinuationToken"
	codeDeviceNotFound        = "DeviceNotFound"
	codeDeviceNotOnline       = "DeviceNotOnline"
	codeDeviceError           = "DeviceError"
	codeDeviceTimeout         = "DeviceTimeout"
	codeThrottled             = "Throttled"
	codeHubTimeout            = "HubTimeout"
	codeInternal              = "InternalError"
	codeNotFound              = "NotFound"
	codeMalformedInvocation   = "MalformedInvocation"
	codeInvalidQuery          = "InvalidQuery"
	codeNoDevicesSelected     = "NoDevicesSelected"
	codeDevicesBusy           = "DevicesBusy"
	codeFleetRebootNotFound   = "FleetRebootNotFound"
	codeFleetRebootFinished   = "FleetRebootFinished"
	codeTooManyFleetReboots   = "TooManyFleetReboots"
	problemType               = "about:blank"
	problemContentType        = "application/problem+json"
	defaultThrottleRetryAfter = 10 // seconds, when the hub names none
)

// problem is an RFC 9457 problem details document of type about:blank
// (RFC 9457 §4.2.1), so title is the status phrase: a type URI must
// identify documentation that exists, and this app publishes none per
// problem. ErrorCode is the machine-readable code callers branch on
// (docs/function-app.md lists them); Extra holds code-specific members
// (deviceStatus, devicePayload, …).
type problem struct {
	Status    int
	ErrorCode string
	Detail    string
	Extra     map[string]any
	// RetryAfter, in seconds, is sent as the Retry-After header when > 0.
	RetryAfter int
}

func (p problem) body() map[string]any {
	m := make(map[string]any, 5+len(p.Extra))
	for k, v := range p.Extra {
		m[k] = v
	}
	m["type"] = problemType
	m["title"] = http.StatusText(p.Status)
	m["status"] = p.Status
	m["detail"] = p.Detail
	m["errorCode"] = p.ErrorCode
	return m
}

// writeProblem writes p as application/problem+json. The host's
// invocation id, when present, is included so a caller's report can be
// matched with the app's logs.
func writeProblem(w http.ResponseWriter, r *http.Request, p problem) {
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	body := p.body()
	if id := r.Header.Get(headerInvocationID); id != "" {
		body["invocationId"] = id
	}
	writeJSONAs(w, p.Status, problemContentType, body)
}

func badRequest(code, detail string) problem {
	return problem{Status: http.StatusBadRequest, ErrorCode: code, Detail: detail}
}

func internalError(detail string) problem {
	return problem{Status: http.StatusInternalServerError, ErrorCode: codeInternal, Detail: detail}
}
