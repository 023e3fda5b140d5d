package iothub

import "fmt"

// MaxDeviceIDLength is IoT Hub's limit on device and module ids.
const MaxDeviceIDLength = 128

// ValidateDeviceID checks IoT Hub's device-id rules: 1..128 ASCII
// alphanumerics and - . + % _ # * ? ! ( ) , = @ $ '.
// Both the local hub and the function app use it, so a device id the app
// accepts is one the hub accepts.
func ValidateDeviceID(id string) error {
	if id == "" {
		return fmt.Errorf("device id is empty")
	}
	if len(id) > MaxDeviceIDLength {
		return fmt.Errorf("device id is %d characters long; the maximum is %d", len(id), MaxDeviceIDLength)
	}
	for i := 0; i < len(id); i++ {
		if !deviceIDChar(id[i]) {
			return fmt.Errorf("device id contains %q at position %d; allowed are ASCII letters, digits and - . + %% _ # * ? ! ( ) , = @ $ '", id[i], i)
		}
	}
	return nil
}

func deviceIDChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '+', '%', '_', '#', '*', '?', '!', '(', ')', ',', '=', '@', '$', '\'':
		return true
	}
	return false
}
