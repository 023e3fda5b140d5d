package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// hubCall names the IoT Hub operation a handler made, so that a failure is
// described as what it was: a reboot call has an unknown outcome after a
// timeout; a twin read or a query changes nothing and can simply be
// retried.
type hubCall int

const (
	callReboot   hubCall = iota // the reboot direct method
	callReadTwin                // a twin read (RebootStatus, Idempotency-Key checks)
	callQuery                   // a twin query (RebootReport)
	callClaim                   // the twin tag update recording an Idempotency-Key request
)

func (c hubCall) String() string {
	switch c {
	case callReboot:
		return "the reboot method call"
	case callReadTwin:
		return "the twin read"
	case callClaim:
		return "the twin update recording the request"
	default:
		return "the twin query"
	}
}

// hubProblem maps a failed IoT Hub call to the caller's problem. The
// detail never carries the hub's raw error text (it can quote request
// URLs); the hub's error code, a name, is safe and helps support.
func hubProblem(ctx context.Context, err error, call hubCall, deviceID string) problem {
	var payloadErr *iothub.DevicePayloadError
	if call == callReboot && errors.As(err, &payloadErr) {
		// The device answered, but with something that is not JSON.
		return problem{Status: http.StatusBadGateway, ErrorCode: codeDeviceError,
			Detail: fmt.Sprintf("Device %q answered the reboot method with a payload that is not JSON. Whether it reboots is unknown; check its twin before retrying.", deviceID),
			Extra:  map[string]any{"deviceId": deviceID}}
	}
	var respErr *azcore.ResponseError
	if !errors.As(err, &respErr) {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// The client's try timeout fired: the hub never answered.
			return hubTimeout(call, deviceID)
		}
		return internalError(fmt.Sprintf("The IoT Hub could not be reached for %s.", call))
	}
	extra := map[string]any{"hubErrorCode": respErr.ErrorCode, "hubStatus": respErr.StatusCode}
	switch {
	case respErr.ErrorCode == string(iothub.DeviceNotFound) && deviceID != "":
		return problem{Status: http.StatusNotFound, ErrorCode: codeDeviceNotFound,
			Detail: fmt.Sprintf("No device %q is registered in the IoT Hub.", deviceID)}
	case respErr.ErrorCode == string(iothub.DeviceNotOnline) && call == callReboot:
		return problem{Status: http.StatusConflict, ErrorCode: codeDeviceNotOnline,
			Detail: fmt.Sprintf("Device %q is not connected, or has not subscribed to direct methods, within the connect timeout. Nothing was sent to it; retry when it is online or pass a longer connectTimeoutSeconds.", deviceID)}
	case respErr.ErrorCode == string(iothub.GatewayTimeout) || respErr.StatusCode == http.StatusGatewayTimeout:
		return hubTimeout(call, deviceID)
	case respErr.StatusCode == http.StatusTooManyRequests || respErr.ErrorCode == string(iothub.ThrottlingException):
		return problem{Status: http.StatusTooManyRequests, ErrorCode: codeThrottled,
			Detail:     fmt.Sprintf("The IoT Hub refused %s because its quota for the operation is exhausted. Retry after the indicated delay.", call),
			RetryAfter: retryAfterSeconds(respErr.RawResponse), Extra: extra}
	}
	detail := fmt.Sprintf("The IoT Hub failed %s with HTTP %d %s.", call, respErr.StatusCode, respErr.ErrorCode)
	if call == callClaim && (respErr.StatusCode == http.StatusUnauthorized || respErr.StatusCode == http.StatusForbidden) {
		detail += " An Idempotency-Key request records itself in the twin's tags: the app's identity needs twin write access (the twins/write data action, or a policy with ServiceConnect). Nothing was sent to the device."
	}
	p := internalError(detail)
	p.Extra = extra
	return p
}

// hubTimeout is the problem for a call the hub did not complete in time.
// Only for the reboot method is the outcome unknown.
func hubTimeout(call hubCall, deviceID string) problem {
	if call == callReboot {
		return problem{Status: http.StatusGatewayTimeout, ErrorCode: codeDeviceTimeout,
			Detail: fmt.Sprintf("Device %q did not answer the reboot method in time. The outcome is unknown: the device may have received the request and may still reboot. Check the twin (GET /api/reboots) before retrying, or retry with the same Idempotency-Key.", deviceID)}
	}
	return problem{Status: http.StatusGatewayTimeout, ErrorCode: codeHubTimeout,
		Detail: fmt.Sprintf("The IoT Hub did not complete %s in time. Nothing was changed; retry.", call)}
}

// retryAfterSeconds reads the hub's Retry-After (seconds or an HTTP date),
// defaulting when absent.
func retryAfterSeconds(resp *http.Response) int {
	if resp == nil {
		return defaultThrottleRetryAfter
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return n
	}
	if t, err := http.ParseTime(v); err == nil {
		if s := int(time.Until(t).Seconds() + 0.999); s > 0 {
			return s
		}
	}
	return defaultThrottleRetryAfter
}

// hubErrorAttrs describes a failed hub call for a log line: the HTTP
// status and IoT Hub error code of a hub answer (its multi-line dump adds
// nothing), or the error text otherwise (a network failure, say). Neither
// can carry a credential: SAS tokens travel in a header azcore never
// prints.
func hubErrorAttrs(err error) []slog.Attr {
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) {
		return []slog.Attr{slog.Int("hubStatus", respErr.StatusCode), slog.String("hubErrorCode", respErr.ErrorCode)}
	}
	return []slog.Attr{slog.String("err", err.Error())}
}
