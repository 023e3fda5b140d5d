package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
)

// Direct-method limits (reference §3.3).
const (
	maxMethodPayload      = directmethod.MaxPayload
	defaultResponseSecs   = 30
	minResponseSecs       = 5
	maxResponseSecs       = 300
	maxConnectTimeoutSecs = 300
)

// methodRequest is a validated direct-method invocation.
type methodRequest struct {
	Method string
	// Payload is the device's MQTT body: the request's payload JSON as
	// sent, "null" included, or nil (an empty body) when the request has no
	// payload member. See docs/architecture.md, "Direct-method payloads as
	// devices receive them".
	Payload         []byte
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
}

// parseMethodRequest decodes and validates the body of POST
// /twins/{id}/methods. The legacy timeoutInSeconds is ignored, as IoT Hub
// ignores it.
func parseMethodRequest(body []byte) (methodRequest, *hubError) {
	wire, herr := decodeMethodWire(body)
	if herr != nil {
		return methodRequest{}, herr
	}
	if wire.MethodName == nil || *wire.MethodName == "" {
		return methodRequest{}, errArgumentInvalid("methodName is null or empty.")
	}
	if err := validateMethodName(*wire.MethodName); err != nil {
		return methodRequest{}, errArgumentInvalid(err.Error() + ".")
	}
	m := methodRequest{Method: *wire.MethodName}

	m.ResponseTimeout, herr = seconds(wire.ResponseTimeoutInSeconds, "responseTimeoutInSeconds", defaultResponseSecs, minResponseSecs, maxResponseSecs)
	if herr != nil {
		return methodRequest{}, herr
	}
	m.ConnectTimeout, herr = seconds(wire.ConnectTimeoutInSeconds, "connectTimeoutInSeconds", 0, 0, maxConnectTimeoutSecs)
	if herr != nil {
		return methodRequest{}, herr
	}

	// encoding/json hands a RawMessage the literal null, so an explicit
	// null and an absent member stay apart here.
	if p := bytes.TrimSpace(wire.Payload); len(p) > 0 {
		if len(p) > maxMethodPayload {
			return methodRequest{}, errMessageTooLarge(
				fmt.Sprintf("The method payload is %d bytes; the maximum is %d bytes.", len(p), maxMethodPayload))
		}
		m.Payload = p
	}
	return m, nil
}

// methodWire is the body of POST /twins/{id}/methods.
type methodWire struct {
	MethodName               *string         `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *json.Number    `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *json.Number    `json:"connectTimeoutInSeconds"`
}

// decodeMethodWire decodes as unmarshal does, in half its time:
// json.Unmarshal accepts and refuses the same bodies as unmarshal's
// Decoder (one value, nothing after it but space), and methodWire holds no
// untyped value for UseNumber to matter. A refused body goes through
// unmarshal for the error message clients have always had.
func decodeMethodWire(body []byte) (methodWire, *hubError) {
	var wire methodWire
	if err := json.Unmarshal(body, &wire); err == nil {
		return wire, nil
	}
	wire = methodWire{}
	if herr := unmarshal(body, &wire); herr != nil {
		return methodWire{}, herr
	}
	return wire, nil
}

// seconds reads an optional timeout in whole seconds within [lo; hi]. The
// wire type is an integer; a fractional value is truncated.
func seconds(n *json.Number, name string, def, lo, hi int) (time.Duration, *hubError) {
	if n == nil {
		return time.Duration(def) * time.Second, nil
	}
	f, err := n.Float64()
	if err != nil || f < float64(lo) || f > float64(hi) {
		return 0, errArgumentInvalid(fmt.Sprintf("%s must be within [%d; %d].", name, lo, hi))
	}
	return time.Duration(f) * time.Second, nil
}

// validateMethodName applies IoT Hub's rule: US-ASCII printable characters
// except $ ( ) < > @ , ; : \ " / [ ] ? = { } space and tab.
func validateMethodName(name string) error {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`$()<>@,;:\"/[]?={}`, c) >= 0 {
			return fmt.Errorf("methodName contains the invalid character %q at position %d", c, i)
		}
	}
	return nil
}

// handleInvokeMethod calls a direct method and waits for the device. Errors
// use the nested envelope IoT Hub uses for methods, except DeviceNotFound.
// The call runs on the request's context: it ends early only if the client
// goes away.
func handleInvokeMethod(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		body, herr := readBody(w, r)
		if herr != nil {
			writeError(w, d.Now(), nested, herr)
			return
		}
		m, herr := parseMethodRequest(body)
		if herr != nil {
			writeError(w, d.Now(), nested, herr)
			return
		}
		extendResponseDeadline(w, m.ConnectTimeout+m.ResponseTimeout)
		// The registry's in-memory view answers, not the file: a call
		// needs only to know that the device exists.
		if !d.Registry.DeviceExists(id) {
			writeError(w, d.Now(), classic, errDeviceNotFound(id))
			return
		}

		status, reply, err := d.Devices.InvokeMethod(r.Context(), id, m.Method, m.Payload, m.ResponseTimeout, m.ConnectTimeout)
		switch {
		case err == nil:
			writeRaw(w, http.StatusOK, methodResponseBody(status, reply))
		case errors.Is(err, directmethod.ErrDeviceNotOnline):
			writeError(w, d.Now(), nested, errDeviceNotOnline(m.ConnectTimeout))
		case errors.Is(err, directmethod.ErrTimeout):
			writeError(w, d.Now(), nested, errGatewayTimeout())
		case errors.Is(err, directmethod.ErrPayloadTooLarge):
			writeError(w, d.Now(), nested, errMessageTooLarge(
				fmt.Sprintf("The method payload exceeds the maximum of %d bytes.", maxMethodPayload)))
		case errors.Is(err, directmethod.ErrInvalidMethodName):
			// Names IoT Hub's rule allows but MQTT topics cannot carry ('+', '#').
			writeError(w, d.Now(), nested, errArgumentInvalid("methodName cannot be delivered to the device."))
		case errors.Is(err, directmethod.ErrTooManyCalls):
			writeError(w, d.Now(), nested, &hubError{http.StatusTooManyRequests, 429001, "ThrottlingException",
				fmt.Sprintf("Too many direct method calls are in progress for device '%s'.", id), nil})
		case errors.Is(err, directmethod.ErrClosed):
			writeError(w, d.Now(), nested, errServiceUnavailable("The hub is shutting down."))
		case r.Context().Err() != nil:
			// The client went away; nobody is left to answer.
			d.Logger.LogAttrs(r.Context(), slog.LevelDebug, "direct method abandoned by client",
				slog.String("deviceId", id), slog.String("method", m.Method))
		default:
			writeError(w, d.Now(), nested, errServer(fmt.Sprintf("invoke %s on %s: %v", m.Method, id, err)))
		}
	})
}

// methodResponseBody is {"status":N,"payload":<device reply>}. Like IoT Hub,
// it splices the device's reply in verbatim (so a device that answers with
// non-JSON yields a body clients cannot parse, exactly as on the real hub);
// an empty reply becomes null.
func methodResponseBody(status int, reply []byte) []byte {
	const head, mid = `{"status":`, `,"payload":`
	if len(bytes.TrimSpace(reply)) == 0 {
		reply = []byte("null")
	}
	// One allocation: the int takes at most 20 bytes.
	b := make([]byte, 0, len(head)+20+len(mid)+len(reply)+1)
	b = append(b, head...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, mid...)
	b = append(b, reply...)
	return append(b, '}')
}
