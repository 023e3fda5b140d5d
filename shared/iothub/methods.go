package iothub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
)

const (
	// defaultResponseTimeout is what the hub applies when none is sent.
	defaultResponseTimeout = 30 * time.Second
	// invokeTryMargin is added to the hub-side timeouts for the HTTP try
	// timeout, so the hub's own 404103/504101 answer reaches us instead of
	// a client-side cancellation.
	invokeTryMargin = 30 * time.Second
)

// MethodRequest is a direct method call.
type MethodRequest struct {
	// MethodName is the method the device registered, e.g. "reboot".
	MethodName string
	// Payload is the JSON the device receives. nil sends JSON null, which
	// the device receives as null (an absent payload would reach it as an
	// empty body, which some device SDKs cannot parse).
	Payload json.RawMessage
	// ResponseTimeout is how long the hub waits for the device's answer
	// (the hub allows 5 s to 300 s); 0 means the hub's default of 30 s.
	// Fractions of a second are rounded up.
	ResponseTimeout time.Duration
	// ConnectTimeout is how long the hub waits for an offline device to
	// connect (at most 300 s); 0 means the device must already be online.
	ConnectTimeout time.Duration
}

// InvokeMethodOptions contains the optional parameters for
// Client.InvokeMethod.
type InvokeMethodOptions struct {
	// for future expansion
}

// InvokeMethodResponse is the device's answer to a direct method.
type InvokeMethodResponse struct {
	// Status is the status code the device replied with; a device-level
	// failure still arrives as a successful call carrying the device status.
	Status int
	// Payload is the JSON the device replied with (JSON null when it sent
	// none).
	Payload json.RawMessage
}

// invokeMethodBody is the hub's CloudToDeviceMethod document.
type invokeMethodBody struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int64           `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int64           `json:"connectTimeoutInSeconds"`
}

// invokeMethodResult is the hub's CloudToDeviceMethodResult document.
type invokeMethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

// InvokeMethod calls a direct method on a device and waits for its answer.
//
// The call is never retried, whatever the client's retry options: after a
// timeout the device may already be acting on the first request (a reboot,
// say), and running it twice is worse than reporting the failure. The HTTP
// try timeout is set above ResponseTimeout + ConnectTimeout so that the hub
// answers first; a ctx deadline shorter than that cuts the call short.
//
// Typical failures: 404 DeviceNotOnline, 504 GatewayTimeout, 404
// DeviceNotFound, 400 ArgumentInvalid (timeouts out of range).
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) InvokeMethod(ctx context.Context, deviceID string, req MethodRequest, opts *InvokeMethodOptions) (InvokeMethodResponse, error) {
	if err := deviceid.Validate(deviceID); err != nil {
		return InvokeMethodResponse{}, fmt.Errorf("iothub: InvokeMethod: %w", err)
	}
	if req.MethodName == "" {
		return InvokeMethodResponse{}, errors.New("iothub: InvokeMethod: MethodName is empty")
	}
	responseTimeout := req.ResponseTimeout
	if responseTimeout == 0 {
		responseTimeout = defaultResponseTimeout
	}
	body := invokeMethodBody{
		MethodName:               req.MethodName,
		Payload:                  req.Payload,
		ResponseTimeoutInSeconds: ceilSeconds(responseTimeout),
		ConnectTimeoutInSeconds:  ceilSeconds(req.ConnectTimeout),
	}
	if body.Payload == nil {
		body.Payload = json.RawMessage("null")
	}

	ctx = policy.WithRetryOptions(ctx, policy.RetryOptions{
		MaxRetries: -1,
		TryTimeout: max(responseTimeout, 0) + max(req.ConnectTimeout, 0) + invokeTryMargin,
	})
	httpReq, err := c.newRequest(ctx, http.MethodPost, "twins", deviceID, "methods")
	if err != nil {
		return InvokeMethodResponse{}, err
	}
	if err := runtime.MarshalAsJSON(httpReq, body); err != nil {
		return InvokeMethodResponse{}, fmt.Errorf("iothub: InvokeMethod: encoding request (is Payload valid JSON?): %w", err)
	}
	resp, err := c.do(httpReq, http.StatusOK)
	if err != nil {
		return InvokeMethodResponse{}, err
	}
	raw, err := runtime.Payload(resp)
	if err != nil {
		return InvokeMethodResponse{}, fmt.Errorf("iothub: InvokeMethod: reading response: %w", err)
	}
	var result invokeMethodResult
	if err := json.Unmarshal(raw, &result); err != nil {
		return InvokeMethodResponse{}, &DevicePayloadError{Body: raw, err: err}
	}
	if result.Payload == nil {
		result.Payload = json.RawMessage("null")
	}
	return InvokeMethodResponse(result), nil
}

// ceilSeconds converts d to whole seconds, rounding up so that a timeout is
// never shortened.
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// DevicePayloadError is InvokeMethod's error when the device answered with
// a payload that is not JSON. IoT Hub copies the device's reply into the
// response's "payload" as it is, so the whole response is then unreadable;
// Body holds it as received. The device did answer: callers that map
// errors to statuses should treat this as a bad device reply, not as a
// failure of the hub.
type DevicePayloadError struct {
	Body []byte
	err  error
}

func (e *DevicePayloadError) Error() string {
	return "iothub: InvokeMethod: the device's reply is not JSON: " + e.err.Error()
}

func (e *DevicePayloadError) Unwrap() error { return e.err }
