package invocation

import (
	"encoding/json"
	"fmt"
	"time"
)

// Timer is a timer trigger's value, the host's TimerInfo as it renders it
// (JObject.FromObject): {"Schedule":{"AdjustForDST":…},
// "ScheduleStatus":{"Last","Next","LastUpdated"}|null, "IsPastDue":…}.
type Timer struct {
	// IsPastDue is set when the invocation runs an occurrence missed while
	// the host was down.
	IsPastDue bool
	// ScheduleStatus is nil when the schedule is not monitored
	// (useMonitor false, or a schedule firing more than once a minute).
	ScheduleStatus *ScheduleStatus
}

// ScheduleStatus is when the timer last fired and is next due.
type ScheduleStatus struct {
	Last, Next, LastUpdated time.Time
}

type wireTimer struct {
	IsPastDue      bool
	ScheduleStatus *struct {
		Last, Next, LastUpdated string
	}
}

// DecodeTimer decodes the invocation body of a timer trigger named name.
// The value may also arrive as a JSON string holding the object (the
// host's fallback serialisation); unreadable times are left zero.
func DecodeTimer(body []byte, name string) (Timer, error) {
	var env envelope[json.RawMessage]
	if err := json.Unmarshal(body, &env); err != nil {
		return Timer{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	raw, err := binding(env.Data, name)
	if err != nil {
		return Timer{}, err
	}
	var inner string
	if json.Unmarshal(raw, &inner) == nil {
		raw = json.RawMessage(inner)
	}
	var w wireTimer
	if err := json.Unmarshal(raw, &w); err != nil {
		return Timer{}, fmt.Errorf("%w: Data.%s: %v", ErrMalformed, name, err)
	}
	t := Timer{IsPastDue: w.IsPastDue}
	if s := w.ScheduleStatus; s != nil {
		t.ScheduleStatus = &ScheduleStatus{Last: hostTime(s.Last), Next: hostTime(s.Next), LastUpdated: hostTime(s.LastUpdated)}
	}
	return t, nil
}

// hostTime reads a DateTime as Newtonsoft writes it: with an offset, or
// without one for an unspecified kind (taken as UTC).
func hostTime(s string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC()
	}
	t, _ := time.Parse("2006-01-02T15:04:05.9999999", s)
	return t
}
