package invocation

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDecodeTimer(t *testing.T) {
	tm, err := DecodeTimer([]byte(`{"Data":{"tick":{"Schedule":{"AdjustForDST":true},
		"ScheduleStatus":{"Last":"2025-03-01T10:00:00+00:00","Next":"2025-03-01T10:05:00.5+00:00","LastUpdated":"2025-03-01T10:00:00"},
		"IsPastDue":true}},"Metadata":{"TimerTrigger":"\"3/1/2025 10:05:00 AM\"","sys":{"MethodName":"Tick"}}}`), "tick")
	require.NoError(t, err)
	require.True(t, tm.IsPastDue)
	require.Equal(t, &ScheduleStatus{
		Last:        time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		Next:        time.Date(2025, 3, 1, 10, 5, 0, 500_000_000, time.UTC),
		LastUpdated: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
	}, tm.ScheduleStatus)

	tm, err = DecodeTimer([]byte(`{"Data":{"tick":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}}}`), "tick")
	require.NoError(t, err)
	require.Equal(t, Timer{}, tm)

	tm, err = DecodeTimer([]byte(`{"Data":{"tick":"{\"IsPastDue\":true,\"ScheduleStatus\":null}"}}`), "tick")
	require.NoError(t, err, "the value as a string holding the object")
	require.True(t, tm.IsPastDue)

	for _, bad := range []string{`[]`, `{"Data":{}}`, `{"Data":{"a":1,"b":2}}`, `{"Data":{"tick":[1]}}`, `{"Data":{"tick":{"IsPastDue":"yes"}}}`} {
		_, err := DecodeTimer([]byte(bad), "tick")
		require.True(t, errors.Is(err, ErrMalformed), "%s: %v", bad, err)
	}
}

// FuzzDecodeTimer: any input decodes or fails with ErrMalformed, never
// panics. The seed corpus is testdata/fuzz/FuzzDecodeTimer.
func FuzzDecodeTimer(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := DecodeTimer(body, "tick"); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error not wrapping ErrMalformed: %v", err)
		}
	})
}
