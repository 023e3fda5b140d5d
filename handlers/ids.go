package handlers

import (
	"fmt"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
)

// maxRequestIDLength bounds the request id in status URLs (ours are 36).
const maxRequestIDLength = 128

// validateDeviceID checks a device id taken from the caller's path: IoT
// Hub's device-id rules (shared/deviceid), and no dot-segment. "." and ".." fit the
// rules' characters, but URL normalisation removes them from any REST
// path, so no IoT Hub request can address such a device; sent on, they
// would name another resource (/twins/../methods is /methods).
func validateDeviceID(id string) error {
	if err := deviceid.Validate(id); err != nil {
		return err
	}
	if isDotSegment(id) {
		return fmt.Errorf("device id %q is a dot-segment, which no IoT Hub REST path can address", id)
	}
	return nil
}

// validateRequestID checks a request id taken from a status URL. Ours are
// UUIDs; the rules are the device-id ones, so that any id the app could
// make, or a caller could echo, is accepted, and nothing that could change
// a URL built from it is.
func validateRequestID(id string) error {
	if id == "" || len(id) > maxRequestIDLength {
		return fmt.Errorf("requestId must be 1..%d characters", maxRequestIDLength)
	}
	if err := deviceid.Validate(id); err != nil || isDotSegment(id) {
		return fmt.Errorf("requestId must be the one in the statusUrl RebootDevice returned (ASCII letters, digits and - . + %% _ # * ? ! ( ) , = @ $ ', not . or ..)")
	}
	return nil
}

func isDotSegment(s string) bool { return s == "." || s == ".." }
