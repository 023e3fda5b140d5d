package iothub

import (
	"encoding/json"
	"fmt"
	"time"
)

// wireTime decodes the hub's timestamps: RFC 3339 with a zone, or the
// zone-less form ("0001-01-01T00:00:00", "2020-07-17T06:12:26.8402249")
// that the registry uses, which is UTC. null and "" are the zero time.
type wireTime time.Time

// zonelessLayout parses a time without a zone; time.Parse accepts any
// fractional seconds after the seconds field.
const zonelessLayout = "2006-01-02T15:04:05"

func (t *wireTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("time %s is not a JSON string", b)
	}
	if s == "" {
		*t = wireTime{}
		return nil
	}
	if parsed, err := time.Parse(time.RFC3339Nano, s); err == nil {
		*t = wireTime(parsed)
		return nil
	}
	parsed, err := time.ParseInLocation(zonelessLayout, s, time.UTC)
	if err != nil {
		return fmt.Errorf("time %q is neither RFC 3339 nor zone-less ISO 8601", s)
	}
	*t = wireTime(parsed)
	return nil
}
