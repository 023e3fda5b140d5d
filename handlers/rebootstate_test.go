package handlers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJudgeReboot(t *testing.T) {
	requestedAt := time.Date(2025, 1, 31, 8, 0, 0, 0, time.UTC)
	const deadline = 10 * time.Minute
	before := requestedAt.Add(-time.Hour).Format(time.RFC3339)
	after := requestedAt.Add(30 * time.Second).Format(time.RFC3339Nano)
	soon := requestedAt.Add(time.Minute)
	late := requestedAt.Add(deadline + time.Second)

	tests := []struct {
		name string
		rep  rebootReport
		now  time.Time
		want rebootOutcome
	}{
		{"nothing reported yet", rebootReport{}, soon, rebootOutcome{State: statePending}},
		{"nothing reported after the deadline", rebootReport{}, late, rebootOutcome{State: stateTimedOut}},
		{"echoing device is rebooting", rebootReport{LastReboot: before, Status: "rebooting", RequestID: "r1"}, soon, rebootOutcome{State: statePending}},
		{"echoing device is back", rebootReport{LastReboot: after, Status: "running", RequestID: "r1"}, soon, rebootOutcome{State: stateCompleted, MatchedBy: "requestId"}},
		{"echoing device is back, its clock behind ours", rebootReport{LastReboot: before, Status: "running", RequestID: "r1"}, soon, rebootOutcome{State: stateCompleted, MatchedBy: "requestId"}},
		{"echoing device with no status", rebootReport{LastReboot: after, RequestID: "r1"}, soon, rebootOutcome{State: stateCompleted, MatchedBy: "requestId"}},
		{"echoing device failed", rebootReport{Status: "failed", RequestID: "r1", Reason: "disk"}, soon, rebootOutcome{State: stateFailed, MatchedBy: "requestId"}},
		{"echoing device failed, status case differs", rebootReport{Status: "Failed", RequestID: "r1"}, late, rebootOutcome{State: stateFailed, MatchedBy: "requestId"}},
		{"still on an earlier request", rebootReport{LastReboot: before, Status: "running", RequestID: "r0"}, soon, rebootOutcome{State: statePending}},
		{"rebooted after us for another request", rebootReport{LastReboot: after, Status: "running", RequestID: "r2"}, soon, rebootOutcome{State: stateCompleted, MatchedBy: "lastReboot"}},
		{"silent device rebooted after the request", rebootReport{LastReboot: after}, soon, rebootOutcome{State: stateCompleted, MatchedBy: "lastReboot"}},
		{"silent device last rebooted before it", rebootReport{LastReboot: before}, soon, rebootOutcome{State: statePending}},
		{"silent device still rebooting", rebootReport{LastReboot: after, Status: "rebooting"}, soon, rebootOutcome{State: statePending}},
		{"silent device reports an unreadable time", rebootReport{LastReboot: "yesterday"}, late, rebootOutcome{State: stateTimedOut}},
		{"silent device failed after the request", rebootReport{Status: "failed", StatusUpdated: requestedAt.Add(time.Second)}, soon, rebootOutcome{State: stateFailed, MatchedBy: "statusUpdated"}},
		{"silent device failed long before", rebootReport{Status: "failed", StatusUpdated: requestedAt.Add(-time.Hour)}, soon, rebootOutcome{State: statePending}},
		{"another request failed", rebootReport{Status: "failed", RequestID: "r0", StatusUpdated: requestedAt.Add(time.Second)}, soon, rebootOutcome{State: statePending}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := judgeReboot(tt.rep, "r1", requestedAt, tt.now, deadline)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestRebootReportFromTwin(t *testing.T) {
	reported := map[string]any{
		"iothubDM": map[string]any{"reboot": map[string]any{
			"lastReboot": "2025-01-31T08:00:05Z", "status": "failed", "requestId": "r1", "reason": "disk full",
		}},
		"$metadata": map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{
			"status": map[string]any{"$lastUpdated": "2025-01-31T08:00:06.5Z"},
		}}},
	}
	got := rebootReportFromTwin(reported)
	require.Equal(t, rebootReport{
		LastReboot: "2025-01-31T08:00:05Z", Status: "failed", RequestID: "r1", Reason: "disk full",
		StatusUpdated: time.Date(2025, 1, 31, 8, 0, 6, 500_000_000, time.UTC),
	}, got)

	require.Equal(t, rebootReport{}, rebootReportFromTwin(nil))
	require.Equal(t, rebootReport{}, rebootReportFromTwin(map[string]any{"iothubDM": "not an object"}))
	require.Equal(t, rebootReport{}, rebootReportFromTwin(map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"lastReboot": 42}}}))
}

func TestParseDeviceTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2025-01-31T08:00:05Z", time.Date(2025, 1, 31, 8, 0, 5, 0, time.UTC), true},
		{"2025-01-31T09:00:05.25+01:00", time.Date(2025, 1, 31, 8, 0, 5, 250_000_000, time.UTC), true},
		{"2025-01-31T08:00:05.1234567", time.Date(2025, 1, 31, 8, 0, 5, 123_456_700, time.UTC), true},
		{"2025-01-31", time.Time{}, false},
		{"", time.Time{}, false},
		{"soon", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := parseDeviceTime(tt.in)
		require.Equal(t, tt.ok, ok, "parseDeviceTime(%q)", tt.in)
		require.True(t, tt.want.Equal(got), "parseDeviceTime(%q) = %v, want %v", tt.in, got, tt.want)
	}
}
