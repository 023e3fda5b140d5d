// Package deviceid holds IoT Hub's rules for device and module ids, so that
// the local hub and the service client accept exactly the same ids.
package deviceid

import (
	"fmt"
	"unicode/utf8"
)

// MaxLength is IoT Hub's limit on device and module ids, in characters
// (all allowed characters are ASCII, so also in bytes).
const MaxLength = 128

// Special lists the characters other than ASCII letters and digits that
// IoT Hub accepts in device and module ids.
//
// It is the set Microsoft's service SDK checks before calling the hub
// (azure-iot-sdk-csharp, HttpRegistryManager DeviceIdRegex
// ^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$, used for device and module ids
// alike) and the Event Grid schema documents for deviceId and moduleId. The
// identity-registry page lists fewer (':' and ';' were dropped in 2018 and
// ':' restored later) and calls '+' and '#' unsupported: the hub still
// registers them, but MQTT topics cannot carry them, so such devices can
// only use AMQP or HTTPS.
const Special = `-:.+%_#*?!(),=@;$'`

// Validate checks a device or module id against IoT Hub's rules: 1 to 128
// characters, each an ASCII letter, digit or one of [Special]. Ids are
// case-sensitive.
func Validate(id string) error {
	if id == "" {
		return fmt.Errorf("device id is empty")
	}
	if len(id) > MaxLength {
		return fmt.Errorf("device id is %d characters long; the maximum is %d", len(id), MaxLength)
	}
	for i := 0; i < len(id); i++ {
		if !allowed(id[i]) {
			// Name the character, not its first byte.
			r, _ := utf8.DecodeRuneInString(id[i:])
			return fmt.Errorf("device id contains %q at position %d; allowed are ASCII letters, digits and %s", r, i, spaced)
		}
	}
	return nil
}

// spaced is Special as the error message lists it.
var spaced = func() string {
	b := make([]byte, 0, 2*len(Special))
	for i := 0; i < len(Special); i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, Special[i])
	}
	return string(b)
}()

// table marks the allowed bytes; a lookup keeps Validate cheap on the
// paths that check every request.
var table = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(Special); i++ {
		t[Special[i]] = true
	}
	return t
}()

func allowed(c byte) bool { return table[c] }
