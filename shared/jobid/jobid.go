// Package jobid holds IoT Hub's rule for the ids of scheduled jobs, so that
// the local hub and the service client accept exactly the same ids.
package jobid

import (
	"fmt"
	"unicode/utf8"
)

// MaxLength is IoT Hub's limit on job ids, in characters.
const MaxLength = 64

// Validate checks a job id against IoT Hub's rule: "The jobId field must
// be 64 characters or less and can only contain US-ASCII letters, numbers,
// and the dash (-) character" (iot-hub-devguide-jobs, "Job lifecycle").
// The SDKs' own samples and tests use GUIDs and "JOBSAMPLE"+GUID, which
// the rule admits.
func Validate(id string) error {
	if id == "" {
		return fmt.Errorf("job id is empty")
	}
	if len(id) > MaxLength {
		return fmt.Errorf("job id is %d characters long; the maximum is %d", len(id), MaxLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' {
			continue
		}
		r, _ := utf8.DecodeRuneInString(id[i:])
		return fmt.Errorf("job id contains %q at position %d; allowed are ASCII letters, digits and -", r, i)
	}
	return nil
}
