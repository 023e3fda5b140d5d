package rollout

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

func TestSizes(t *testing.T) {
	tests := []struct {
		name    string
		w       Waves
		n       int
		want    []int
		wantErr string
	}{
		{"size", Waves{Size: 4}, 10, []int{4, 4, 2}, ""},
		{"size above n", Waves{Size: 50}, 10, []int{10}, ""},
		{"percent rounds up", Waves{Percent: 30}, 10, []int{3, 3, 3, 1}, ""},
		{"percent of few devices", Waves{Percent: 10}, 3, []int{1, 1, 1}, ""},
		{"rate", Waves{DevicesPerMinute: 100}, 250, []int{100, 100, 50}, ""},
		{"exponential", Waves{Size: 1, GrowthFactor: 2}, 20, []int{1, 2, 4, 8, 5}, ""},
		{"exponential rounds up", Waves{Size: 10, GrowthFactor: 1.5}, 100, []int{10, 15, 23, 34, 18}, ""},
		{"exponential, a whole product in decimals", Waves{Size: 100, GrowthFactor: 1.1}, 400, []int{100, 110, 121, 69}, ""}, // 100 × 1.1 is 110.00000000000001 in float64
		{"too many waves", Waves{Size: 1}, 51, nil, "more than 50 waves"},
		{"fifty waves", Waves{Size: 1}, 50, nil, ""},
		{"no devices", Waves{Size: 1}, 0, nil, "no devices"},
		{"no size", Waves{}, 5, nil, "not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.w.Sizes(tt.n)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.want != nil {
				require.Equal(t, tt.want, got)
			}
			sum := 0
			for _, s := range got {
				require.Positive(t, s)
				sum += s
			}
			require.Equal(t, tt.n, sum, "every device is in a wave")
		})
	}
	require.Equal(t, time.Minute, Waves{DevicesPerMinute: 5}.Interval())
	require.Zero(t, Waves{Size: 5}.Interval())
}

func TestWaveFor(t *testing.T) {
	sizes := []int{2, 3}
	require.Equal(t, 1, WaveFor(map[int]int{}, sizes))
	require.Equal(t, 1, WaveFor(map[int]int{1: 1}, sizes))
	require.Equal(t, 2, WaveFor(map[int]int{1: 2}, sizes))
	require.Equal(t, 2, WaveFor(map[int]int{1: 2, 2: 3}, sizes), "the last wave takes the devices beyond the plan")
}

func TestAbort(t *testing.T) {
	rule := Abort{MaxFailedPercent: 20, MinDevices: 10}
	require.False(t, rule.Triggered(Counts{Succeeded: 5, Failed: 4}), "9 outcomes: below minDevices")
	require.True(t, rule.Triggered(Counts{Succeeded: 7, NotOnline: 2, TimedOut: 1}), "30% of 10")
	require.False(t, rule.Triggered(Counts{Succeeded: 8, Failed: 2}), "exactly 20% is not above it")
	require.False(t, rule.Triggered(Counts{Pending: 100, Cancelled: 5}), "no outcome yet")
	require.True(t, Abort{MaxFailedPercent: 0}.Triggered(Counts{Succeeded: 99, Failed: 1}), "0%: any failure")
	require.False(t, Abort{MaxFailedPercent: 100}.Triggered(Counts{Failed: 9}), "100%: never")
}

func TestCancelRest(t *testing.T) {
	var none Counts
	none.CancelRest(5)
	require.Equal(t, Counts{Devices: 5, Cancelled: 5}, none, "a job never created or cancelled before it started")
	some := Counts{Devices: 2, Succeeded: 2}
	some.CancelRest(5)
	require.Equal(t, Counts{Devices: 5, Succeeded: 2, Cancelled: 3}, some)
	all := Counts{Devices: 5, Succeeded: 5}
	all.CancelRest(3)
	require.Equal(t, Counts{Devices: 5, Succeeded: 5}, all, "more rows than the planned size: nothing to add")
}

func TestClassify(t *testing.T) {
	ok := &iothub.InvokeMethodResponse{Status: 200, Payload: json.RawMessage(`{}`)}
	refused := &iothub.InvokeMethodResponse{Status: 500, Payload: json.RawMessage(`{}`)}
	errOf := func(code string) *iothub.DeviceJobError {
		return &iothub.DeviceJobError{Code: iothub.ErrorCode(code), Description: code + " description"}
	}
	tests := []struct {
		dj   iothub.DeviceJob
		want DeviceOutcome
	}{
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusPending}, DeviceOutcome{Outcome: OutcomePending}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusScheduled}, DeviceOutcome{Outcome: OutcomePending}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusRunning}, DeviceOutcome{Outcome: OutcomeRunning}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusCanceled}, DeviceOutcome{Outcome: OutcomeCancelled}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusCompleted, MethodResponse: ok}, DeviceOutcome{Outcome: OutcomeSucceeded}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusCompleted, MethodResponse: refused},
			DeviceOutcome{Outcome: OutcomeRefused, Code: "DeviceError", Detail: "the device answered the reboot method with status 500"}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusFailed, Error: errOf("DeviceNotOnline")},
			DeviceOutcome{Outcome: OutcomeNotOnline, Code: "DeviceNotOnline", Detail: "DeviceNotOnline description"}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusFailed, Error: errOf("GatewayTimeout")},
			DeviceOutcome{Outcome: OutcomeTimedOut, Code: "GatewayTimeout", Detail: "GatewayTimeout description"}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusFailed, Error: errOf("OutcomeUnknown")},
			DeviceOutcome{Outcome: OutcomeUnknown, Code: "OutcomeUnknown", Detail: "OutcomeUnknown description"}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusFailed, Error: errOf("JobExecutionTimeExceeded")},
			DeviceOutcome{Outcome: OutcomeFailed, Code: "JobExecutionTimeExceeded", Detail: "JobExecutionTimeExceeded description"}},
		{iothub.DeviceJob{Status: iothub.DeviceJobStatusFailed}, DeviceOutcome{Outcome: OutcomeFailed, Code: "Failed"}},
	}
	for _, tt := range tests {
		got := Classify(tt.dj)
		require.Equal(t, tt.want, got, "%+v", tt.dj)
	}
	require.True(t, OutcomeTimedOut.AskTwin())
	require.True(t, OutcomeUnknown.AskTwin())
	require.False(t, OutcomeNotOnline.AskTwin(), "a device that was not online was not called")

	var c Counts
	for _, o := range []Outcome{OutcomeSucceeded, OutcomeRefused, OutcomeFailed, OutcomeNotOnline, OutcomeTimedOut, OutcomeUnknown, OutcomeCancelled, OutcomePending, OutcomeRunning} {
		c.Count(o)
	}
	require.Equal(t, Counts{Devices: 9, Pending: 1, Running: 1, Succeeded: 1, Failed: 3, NotOnline: 1, TimedOut: 1, Cancelled: 1}, c)
	require.Equal(t, 6, c.Outcomes())
	require.Equal(t, 5, c.Failures())
}

func TestAfterWave(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	rec := func() *Record {
		return &Record{Sizes: map[string]int{"1": 2, "2": 0, "3": 2}, Wave: 1, WaveStartedAt: now.Add(-10 * time.Second).Format(TimeLayout),
			Results: map[string]Counts{"1": {Devices: 2, Succeeded: 1, Failed: 1}}}
	}
	require.Equal(t, []int{2, 0, 2}, rec().SizeList())
	require.Equal(t, 4, rec().Devices())

	r := rec()
	require.Equal(t, Step{Wave: 3}, r.AfterWave(now), "an empty wave is skipped")

	r = rec()
	r.Abort = &Abort{MaxFailedPercent: 40, MinDevices: 2}
	step := r.AfterWave(now)
	require.Equal(t, StateAborted, step.Final)
	require.Contains(t, step.Reason, "1 of 2 devices with an outcome failed (50.0%)")

	r = rec()
	r.Abort = &Abort{MaxFailedPercent: 40, MinDevices: 3}
	require.Equal(t, Step{Wave: 3}, r.AfterWave(now), "too few outcomes for the rule")

	r = rec()
	r.CancelRequestedAt = now.Format(TimeLayout)
	r.Abort = &Abort{MaxFailedPercent: 0}
	require.Equal(t, StateCancelled, r.AfterWave(now).Final, "a cancel request wins over the rule")

	r = rec()
	r.IntervalSeconds = 60
	require.Equal(t, Step{Wait: 50 * time.Second}, r.AfterWave(now))
	require.Equal(t, Step{Wave: 3}, r.AfterWave(now.Add(50*time.Second)))

	r = rec()
	r.Wave = 3
	require.Equal(t, Step{Final: StateCompleted}, r.AfterWave(now))

	require.Equal(t, "fleetreboot-0f8fad5b-d9cb-469f-a165-70867728950e-w12", WaveJobID("0f8fad5b-d9cb-469f-a165-70867728950e", 12))
	require.LessOrEqual(t, len(WaveJobID("0f8fad5b-d9cb-469f-a165-70867728950e", MaxWaves)), 64, "IoT Hub's job id limit")
}

func TestRecordJSON(t *testing.T) {
	r := Record{ID: "f", State: StateRunning, Sizes: map[string]int{"1": 3}, Results: map[string]Counts{"1": {Devices: 3, Succeeded: 2, NotOnline: 1}}}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"f","state":"running","createdAt":"","selection":"","selected":0,"sizes":{"1":3},
		"responseTimeoutSeconds":0,"wave":0,"results":{"1":"3,0,0,2,0,1,0,0"}}`, string(b))
	var back Record
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, r, back)
	// A record is read from a twin anyone with RegistryWrite may change:
	// sizes beyond MaxWaves or under other keys count nowhere.
	odd := Record{Sizes: map[string]int{"1": 3, "2": 4, "x": 100, WaveKey(MaxWaves + 1): 100}}
	require.Equal(t, []int{3, 4}, odd.SizeList())
	require.Equal(t, 7, odd.Devices(), "the sum of the waves the status shows")
	for _, bad := range []string{`"1,2"`, `"a,0,0,0,0,0,0,0"`, `"-1,0,0,0,0,0,0,0"`, `{"n":1}`, `"9999999999999999999,0,0,0,0,0,0,0"`} {
		var c Counts
		require.Error(t, json.Unmarshal([]byte(bad), &c), bad)
	}
}

// FuzzRecordJSON: a record read from a twin either fails to decode or
// survives a round trip unchanged; nothing panics. The seed corpus is
// testdata/fuzz/FuzzRecordJSON.
func FuzzRecordJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if json.Unmarshal(b, &r) != nil {
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		var back Record
		if err := json.Unmarshal(again, &back); err != nil {
			t.Fatalf("an encoded record does not decode: %v", err)
		}
		a, _ := json.Marshal(back)
		if string(a) != string(again) {
			t.Fatalf("round trip changed the record:\n%s\n%s", again, a)
		}
		_ = r.SizeList()
		_ = r.Totals()
		_ = r.AfterWave(time.Now())
	})
}

func TestCheckCondition(t *testing.T) {
	for _, ok := range []string{
		"tags.site = 'plant-7'",
		"tags.site = 'plant-7' AND (properties.reported.fw < '2.0' OR tags.ring = 0)",
		"deviceId IN ['a', 'b)', 'c']",
		`tags.note = 'it\'s (fine'`,
		`tags.note = "a ) b"`,
		"[[tags.odd name)]] = 1",
		"IS_DEFINED(tags.x)\n AND\ttags.y = 1",
	} {
		require.NoError(t, CheckCondition(ok), ok)
	}
	for _, bad := range []string{
		"",
		"   ",
		"a = 1) OR (1 = 1",
		"(a = 1",
		"a = 'open",
		`a = "open`,
		"a IN ['x')",
		"[[unclosed = 1",
		"a = 1 \x00",
		string(make([]byte, MaxCondition+1)),
	} {
		require.Error(t, CheckCondition(bad), "%q", bad)
	}
}

// FuzzCheckCondition: whatever the checker accepts cannot break out of the
// parentheses the app wraps it in. The seed corpus is
// testdata/fuzz/FuzzCheckCondition.
func FuzzCheckCondition(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if CheckCondition(s) != nil {
			return
		}
		if err := checkStructure("(" + s + ") AND (" + s + ")"); err != nil {
			t.Fatalf("%q is accepted but not once wrapped: %v", s, err)
		}
		if checkStructure(s+")") == nil || checkStructure(s+"]") == nil {
			t.Fatalf("%q accepts a closing bracket after it", s)
		}
	})
}
