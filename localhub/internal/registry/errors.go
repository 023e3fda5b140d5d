package registry

import (
	"errors"
	"fmt"
)

// Errors the store returns. The packages that speak to clients (the REST
// API, the MQTT gateway) map them to their wire's codes; the store knows
// none of them.
var (
	ErrDeviceNotFound     = errors.New("device not found")
	ErrDeviceExists       = errors.New("device already exists")
	ErrPreconditionFailed = errors.New("precondition failed")
	ErrJobNotFound        = errors.New("job not found")
	ErrJobExists          = errors.New("job already exists")
	// ErrInUse: another process holds the registry file. Open fails with
	// it at once rather than waiting for the lock.
	ErrInUse = errors.New("in use by another process: another local hub (or make run) is serving this data dir; stop it or use another data dir")
)

// InvalidError is input the store refuses. Msg is written for the caller
// of the API and goes on the wire as is.
type InvalidError struct {
	Reason Reason
	Msg    string
}

func (e *InvalidError) Error() string { return e.Msg }

// Reason says what is wrong with refused input.
type Reason int

const (
	// ReasonArgument: a value breaks a rule: an id, a key, a value's type
	// or size, a twin limit.
	ReasonArgument Reason = iota + 1
	// ReasonFormat: the input is not JSON, or not the JSON shape expected.
	ReasonFormat
)

func argumentInvalid(format string, args ...any) *InvalidError {
	return &InvalidError{Reason: ReasonArgument, Msg: fmt.Sprintf(format, args...)}
}

func formatError(format string, args ...any) *InvalidError {
	return &InvalidError{Reason: ReasonFormat, Msg: fmt.Sprintf(format, args...)}
}
