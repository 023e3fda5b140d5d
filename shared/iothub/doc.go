// Package iothub is a client for the Azure IoT Hub service (data-plane)
// REST API: direct methods, device twins, twin queries, scheduled jobs and
// the identity registry. It is built on azcore and follows the Azure SDK
// for Go client shape, so retries, logging, tracing and transports are
// configured through azcore.ClientOptions.
//
// The client talks to the real IoT Hub and to the local hub (package
// localhub) alike: set ClientOptions.Endpoint to the local hub's HTTPS URL and
// ClientOptions.Transport to an HTTP client trusting its CA.
//
// # Errors
//
// A failed operation returns an *azcore.ResponseError whose ErrorCode is the
// hub's iothub-errorcode header. Compare it with the ErrorCode constants:
//
//	var respErr *azcore.ResponseError
//	if errors.As(err, &respErr) && respErr.ErrorCode == string(iothub.DeviceNotOnline) {
//		// the device is not connected or has not subscribed to methods
//	}
package iothub
