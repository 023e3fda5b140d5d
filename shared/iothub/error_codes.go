package iothub

import (
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// ErrorCode is an IoT Hub error name as the hub sends it in the
// iothub-errorcode response header. A failed call returns an
// *azcore.ResponseError carrying it in ErrorCode:
//
//	var respErr *azcore.ResponseError
//	if errors.As(err, &respErr) && respErr.ErrorCode == string(iothub.DeviceNotFound) { ... }
type ErrorCode string

// Error codes the service API returns (IoT Hub's troubleshooting guide; the
// numeric code in the body is given for reference).
const (
	// ArgumentInvalid (400004): e.g. a method timeout out of range or an
	// invalid twin key.
	ArgumentInvalid ErrorCode = "ArgumentInvalid"
	// ArgumentNull (400005): a required argument is missing.
	ArgumentNull ErrorCode = "ArgumentNull"
	// IotHubFormatError (400006): the request body is not the JSON shape
	// expected (e.g. a job's startTime that is not an ISO 8601 time).
	IotHubFormatError ErrorCode = "IotHubFormatError"
	// GenericBadRequest: a request the hub cannot read at all, e.g. a job
	// whose type is not a job type.
	GenericBadRequest ErrorCode = "GenericBadRequest"
	// IotHubUnauthorizedAccess (401002): the credential lacks the permission
	// the operation needs.
	IotHubUnauthorizedAccess ErrorCode = "IotHubUnauthorizedAccess"
	// IotHubUnauthorized (401003): the credential is invalid or expired.
	IotHubUnauthorized ErrorCode = "IotHubUnauthorized"
	// IotHubQuotaExceeded (403002): the hub's daily message quota is used up.
	IotHubQuotaExceeded ErrorCode = "IotHubQuotaExceeded"
	// DeviceMaximumQueueDepthExceeded (403004): too many pending
	// cloud-to-device messages.
	DeviceMaximumQueueDepthExceeded ErrorCode = "DeviceMaximumQueueDepthExceeded"
	// DeviceNotFound (404001): no device with that id is registered.
	DeviceNotFound ErrorCode = "DeviceNotFound"
	// ModuleNotFound (404010): no module with that id is registered.
	ModuleNotFound ErrorCode = "ModuleNotFound"
	// JobNotFound (404002): no job with that id (or it is past the hub's
	// 30-day job history).
	JobNotFound ErrorCode = "JobNotFound"
	// DeviceNotOnline (404103): the device is not connected, or has not
	// subscribed to direct methods, within the connect timeout.
	DeviceNotOnline ErrorCode = "DeviceNotOnline"
	// DeviceAlreadyExists (409001): the device id is taken.
	DeviceAlreadyExists ErrorCode = "DeviceAlreadyExists"
	// OperationNotAllowedInCurrentState (405): e.g. cancelling a job that
	// already runs or has ended.
	OperationNotAllowedInCurrentState ErrorCode = "OperationNotAllowedInCurrentState"
	// JobAlreadyExists (409): a job with that id exists.
	JobAlreadyExists ErrorCode = "JobAlreadyExists"
	// PreconditionFailed (412001): the If-Match etag is stale.
	PreconditionFailed ErrorCode = "PreconditionFailed"
	// MessageTooLarge (413001): a payload exceeds the hub's size limit.
	MessageTooLarge ErrorCode = "MessageTooLarge"
	// ThrottlingException (429001): the hub is throttling the caller.
	ThrottlingException ErrorCode = "ThrottlingException"
	// ThrottlingMaxActiveJobCountExceeded (429004): the hub has as many
	// active jobs as its tier allows (one on Free and S1).
	ThrottlingMaxActiveJobCountExceeded ErrorCode = "ThrottlingMaxActiveJobCountExceeded"
	// ServerError (500001): an internal hub error.
	ServerError ErrorCode = "ServerError"
	// ServiceUnavailable (503001): the hub is temporarily unavailable.
	ServiceUnavailable ErrorCode = "ServiceUnavailable"
	// GatewayTimeout (504101): the device did not answer a direct method in
	// time. The device may still be running the method.
	GatewayTimeout ErrorCode = "GatewayTimeout"
)

// newResponseError builds the *azcore.ResponseError for a failed call; IoT
// Hub names its errors in iothub-errorcode rather than x-ms-error-code.
func newResponseError(resp *http.Response) error {
	return runtime.NewResponseErrorWithErrorCode(resp, resp.Header.Get("iothub-errorcode"))
}
