// Package sas parses, signs and verifies Azure IoT Hub shared access
// signatures and parses IoT Hub connection strings. The local hub and the
// service client share it so that one implementation defines the format.
//
// Validation follows the hub, not any one client: the SDKs encode the sr
// field differently (Go query-escapes it, Node service clients leave it raw,
// Node device clients percent-encode it strictly), and only a signature
// computed over sr exactly as sent verifies all of them.
package sas

import (
	"errors"
	"time"
)

// MaxClockSkew is how far past its expiry IoT Hub still accepts a token.
const MaxClockSkew = 5 * time.Minute

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("sas: malformed")

// scheme is the first word of every token.
const scheme = "SharedAccessSignature"
