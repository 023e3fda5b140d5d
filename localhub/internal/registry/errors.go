package registry

import (
	"errors"
	"fmt"
)

// Errors the store returns; callers map them to IoT Hub error codes.
var (
	ErrDeviceNotFound     = errors.New("device not found")      // 404001 DeviceNotFound
	ErrDeviceExists       = errors.New("device already exists") // 409001 DeviceAlreadyExists
	ErrPreconditionFailed = errors.New("precondition failed")   // 412001 PreconditionFailed
)

// InvalidError is bad input. Code is the IoT Hub numeric error code
// (e.g. 400004 ArgumentInvalid) and Name its name ("ArgumentInvalid").
type InvalidError struct {
	Code int
	Name string
	Msg  string
}

func (e *InvalidError) Error() string { return e.Msg }

// IoT Hub's codes for bad input (azure-iot-sdk-csharp ErrorCode.cs).
const (
	// CodeArgumentInvalid is what IoT Hub returns for an invalid device id,
	// twin key or value, and (here) for exceeding a twin limit.
	CodeArgumentInvalid = 400004
	// CodeIotHubFormatError is IoT Hub's code for a body that is not JSON.
	CodeIotHubFormatError = 400006
)

func argumentInvalid(format string, args ...any) *InvalidError {
	return &InvalidError{Code: CodeArgumentInvalid, Name: "ArgumentInvalid", Msg: fmt.Sprintf(format, args...)}
}

func formatError(format string, args ...any) *InvalidError {
	return &InvalidError{Code: CodeIotHubFormatError, Name: "IotHubFormatError", Msg: fmt.Sprintf(format, args...)}
}
