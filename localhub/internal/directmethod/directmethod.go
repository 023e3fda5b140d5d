// Package directmethod holds what the two sides of a direct method agree
// on: the device endpoint that delivers the call (mqttgw) and the service
// API that takes it (rest). It is a leaf, so neither imports the other.
package directmethod

import "errors"

// MaxPayload is the largest request or response payload IoT Hub accepts
// (128 KB).
const MaxPayload = 128 * 1024

// Outcomes of a call other than the device's answer. The service API maps
// each to IoT Hub's status and error code.
var (
	// ErrDeviceNotOnline: the device was not connected and subscribed to
	// direct methods within the connect timeout, or its connection ended
	// before the request could be written to it (404 / 404103).
	ErrDeviceNotOnline = errors.New("device not online")
	// ErrTimeout: no answer within the response timeout (504 / 504101).
	ErrTimeout = errors.New("timed out waiting for the response from device")
	// ErrPayloadTooLarge: the request payload exceeds MaxPayload
	// (413 / 413001 MessageTooLarge).
	ErrPayloadTooLarge = errors.New("direct method payload exceeds 128 KB")
	// ErrInvalidMethodName: the name cannot be put in a topic level
	// (400 / 400004 ArgumentInvalid).
	ErrInvalidMethodName = errors.New("invalid direct method name")
	// ErrTooManyCalls: the device already has as many calls pending as the
	// hub holds for one device (429 / 429001 ThrottlingException).
	ErrTooManyCalls = errors.New("too many direct method calls pending for the device")
	// ErrClosed: the hub was shut down while the call waited (503).
	ErrClosed = errors.New("device endpoint closed")
)
