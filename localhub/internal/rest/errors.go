package rest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// hubError is an IoT Hub error as it goes on the wire: HTTP status, numeric
// code (404001), its name (DeviceNotFound, also the iothub-errorcode header)
// and a message.
type hubError struct {
	status int
	code   int
	name   string
	msg    string
	// info is the nested envelope's "info" object; nil leaves it out, as
	// IoT Hub does for argument errors.
	info map[string]any
}

func (e *hubError) Error() string { return fmt.Sprintf("%d %s: %s", e.code, e.name, e.msg) }

// envelope selects one of the two error bodies IoT Hub sends (reference §3.2).
type envelope int

const (
	// classic is the registry/twin body:
	// {"Message":"ErrorCode:Name;msg","ExceptionMessage":"Tracking ID:..."}.
	classic envelope = iota
	// nested is the direct-method body: a JSON document inside "Message".
	nested
)

// writeError is the only place that writes an error response: it owns the
// iothub-errorcode header, the content type and both envelopes.
func writeError(w http.ResponseWriter, now time.Time, form envelope, e *hubError) {
	now = now.UTC()
	tracking := trackingID(now)
	var body struct {
		Message          string `json:"Message"`
		ExceptionMessage string `json:"ExceptionMessage"`
	}
	switch form {
	case nested:
		var info any // a nil interface is omitted; an empty map is {}
		if e.info != nil {
			info = e.info
		}
		inner, err := json.Marshal(struct {
			ErrorCode    int    `json:"errorCode"`
			TrackingID   string `json:"trackingId"`
			Message      string `json:"message"`
			Info         any    `json:"info,omitempty"`
			TimestampUTC string `json:"timestampUtc"`
		}{e.code, tracking, e.msg, info, now.Format("2006-01-02T15:04:05.0000000Z")})
		if err != nil {
			// Only unencodable info values get here; keep the code, drop the info.
			inner = fmt.Appendf(nil, `{"errorCode":%d,"message":%q}`, e.code, e.msg)
		}
		body.Message = string(inner)
	default:
		body.Message = "ErrorCode:" + e.name + ";" + e.msg
		body.ExceptionMessage = "Tracking ID:" + tracking
	}
	w.Header().Set("iothub-errorcode", e.name)
	writeJSON(w, e.status, body)
}

// trackingID has IoT Hub's shape: <32 hex>-G:0-TimeStamp:MM/dd/yyyy HH:mm:ss.
func trackingID(now time.Time) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:]) + "-G:0-TimeStamp:" + now.Format("01/02/2006 15:04:05")
}

// Error constructors, one per IoT Hub error the API returns.

func errInvalidProtocolVersion() *hubError {
	return &hubError{http.StatusBadRequest, 400001, "InvalidProtocolVersion", "BadRequest", nil}
}

func errInvalidOperation(status int, msg string) *hubError {
	return &hubError{status, 400003, "InvalidOperation", msg, nil}
}

func errGenericBadRequest() *hubError {
	return &hubError{http.StatusBadRequest, 400000, "GenericBadRequest", "BadRequest", nil}
}

func errArgumentInvalid(msg string) *hubError {
	return &hubError{http.StatusBadRequest, 400004, "ArgumentInvalid", msg, nil}
}

func errArgumentNull(msg string) *hubError {
	return &hubError{http.StatusBadRequest, 400005, "ArgumentNull", msg, nil}
}

func errFormat(msg string) *hubError {
	return &hubError{http.StatusBadRequest, 400006, "IotHubFormatError", msg, nil}
}

func errUnauthorized(msg string) *hubError {
	return &hubError{http.StatusUnauthorized, 401002, "IotHubUnauthorizedAccess", msg, nil}
}

func errDeviceNotFound(id string) *hubError {
	return &hubError{http.StatusNotFound, 404001, "DeviceNotFound", id, nil}
}

func errDeviceNotOnline(connectTimeout time.Duration) *hubError {
	return &hubError{http.StatusNotFound, 404103, "DeviceNotOnline",
		"Timed out waiting for device to connect.", map[string]any{"timeout": timeSpan(connectTimeout)}}
}

func errDeviceExists(id string) *hubError {
	return &hubError{http.StatusConflict, 409001, "DeviceAlreadyExists",
		fmt.Sprintf("A device with ID '%s' is already registered.", id), nil}
}

func errPreconditionFailed(msg string) *hubError {
	return &hubError{http.StatusPreconditionFailed, 412001, "PreconditionFailed", msg, nil}
}

func errMessageTooLarge(msg string) *hubError {
	return &hubError{http.StatusRequestEntityTooLarge, 413001, "MessageTooLarge", msg, nil}
}

func errServer(msg string) *hubError {
	return &hubError{http.StatusInternalServerError, 500001, "ServerError", msg, nil}
}

func errThrottled() *hubError {
	return &hubError{http.StatusTooManyRequests, 429001, "ThrottlingException",
		"The request was throttled: the hub's quota for this operation is used up.", nil}
}

func errServiceUnavailable(msg string) *hubError {
	return &hubError{http.StatusServiceUnavailable, 503001, "ServiceUnavailable", msg, nil}
}

func errGatewayTimeout() *hubError {
	return &hubError{http.StatusGatewayTimeout, 504101, "GatewayTimeout",
		"Timed out waiting for the response from device.", map[string]any{}}
}

// fromRegistry maps a registry error for device id to IoT Hub's error: the
// one place where the registry's errors meet IoT Hub's codes.
func fromRegistry(err error, id string) *hubError {
	var invalid *registry.InvalidError
	switch {
	case errors.Is(err, registry.ErrDeviceNotFound):
		return errDeviceNotFound(id)
	case errors.Is(err, registry.ErrDeviceExists):
		return errDeviceExists(id)
	case errors.Is(err, registry.ErrPreconditionFailed):
		return errPreconditionFailed(fmt.Sprintf("Precondition failed: the etag given in If-Match does not match the current etag of '%s'.", id))
	case errors.As(err, &invalid) && invalid.Reason == registry.ReasonFormat:
		return errFormat(invalid.Msg)
	case errors.As(err, &invalid):
		// Invalid ids, twin keys and values, and twin limits: IoT Hub's
		// ArgumentInvalid (azure-iot-sdk-csharp ErrorCode.cs cites an
		// invalid twin property name as its example).
		return errArgumentInvalid(invalid.Msg)
	default:
		return errServer(err.Error())
	}
}

// fromJobs maps the job engine's errors to IoT Hub's: the one place where
// they meet. Names come from the service's ErrorCode enum (the swagger's
// DeviceRegistryOperationError, grouped by HTTP status): JobNotFound is a
// 404, JobAlreadyExists a 409, OperationNotAllowedInCurrentState a 405 and
// ThrottlingMaxActiveJobCountExceeded a 429 (Azure/azure-iot-sdk-csharp#361).
func fromJobs(err error, id string) *hubError {
	var (
		inv   *jobs.InvalidError
		state *jobs.StateError
	)
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return &hubError{http.StatusNotFound, 404002, "JobNotFound", fmt.Sprintf("Job with ID '%s' not found.", id), nil}
	case errors.Is(err, jobs.ErrExists):
		return &hubError{http.StatusConflict, 409104, "JobAlreadyExists", fmt.Sprintf("A job with ID '%s' already exists.", id), nil}
	case errors.Is(err, jobs.ErrTooManyActive):
		return &hubError{http.StatusTooManyRequests, 429004, "ThrottlingMaxActiveJobCountExceeded",
			"The maximum number of active jobs is reached; wait for a job to finish or cancel one.", nil}
	case errors.Is(err, jobs.ErrClosed):
		return errServiceUnavailable("The hub is shutting down.")
	case errors.As(err, &state):
		return &hubError{http.StatusMethodNotAllowed, 405001, "OperationNotAllowedInCurrentState", state.Error(), nil}
	case errors.As(err, &inv):
		return errArgumentInvalid(inv.Msg)
	default:
		return errServer(err.Error())
	}
}

// timeSpan formats d as a .NET TimeSpan ("00:00:30"), as IoT Hub's info does.
func timeSpan(d time.Duration) string {
	s := int64(d / time.Second)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}
