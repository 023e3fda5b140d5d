package handlers

import (
	"strings"
	"time"
)

// Reboot states RebootStatus reports.
const (
	statePending   = "pending"
	stateCompleted = "completed"
	stateFailed    = "failed"
	stateTimedOut  = "timedOut"
)

// Device-reported iothubDM.reboot.status values with a meaning here; any
// other value (the simulator's "running", say) means the device is up.
var (
	inProgressStatuses = []string{"rebooting", "scheduled", "pending", "started"}
	failedStatuses     = []string{"failed", "error"}
)

// rebootReport is what a device reports under
// properties.reported.iothubDM.reboot, plus the hub's record of when the
// status last changed.
type rebootReport struct {
	LastReboot string
	Status     string
	RequestID  string
	Reason     string
	// StatusUpdated is the hub's $metadata.$lastUpdated for status: the
	// hub's clock, unlike LastReboot, which is the device's.
	StatusUpdated time.Time
}

// rebootReportFromTwin extracts the reboot section from a twin's reported
// properties (as decoded JSON). Values that are not strings are ignored.
func rebootReportFromTwin(reported map[string]any) rebootReport {
	reboot := object(object(reported["iothubDM"])["reboot"])
	rep := rebootReport{
		LastReboot: str(reboot["lastReboot"]),
		Status:     str(reboot["status"]),
		RequestID:  str(reboot["requestId"]),
		Reason:     firstNonEmpty(str(reboot["reason"]), str(reboot["error"])),
	}
	meta := object(object(object(object(reported["$metadata"])["iothubDM"])["reboot"])["status"])
	if t, ok := parseDeviceTime(str(meta["$lastUpdated"])); ok {
		rep.StatusUpdated = t
	}
	return rep
}

// rebootOutcome is the verdict on one reboot request.
type rebootOutcome struct {
	State string
	// MatchedBy says how the twin was tied to the request: "requestId"
	// (the device echoed it) or "lastReboot" (it rebooted after the
	// request but does not echo ids).
	MatchedBy string
}

// judgeReboot decides the state of request requestID, made at requestedAt,
// from what the device reports:
//   - the device echoes our requestId: failed if it says so, pending while
//     it says it is rebooting, else completed once it reports lastReboot;
//   - it does not (no requestId, or another one): completed once lastReboot
//     is later than requestedAt and it is not rebooting; failed when it
//     reports failure, echoes no id at all, and the hub recorded that status
//     after requestedAt;
//   - still pending after the deadline: timed out.
func judgeReboot(rep rebootReport, requestID string, requestedAt, now time.Time, deadline time.Duration) rebootOutcome {
	inProgress := oneOf(rep.Status, inProgressStatuses)
	failed := oneOf(rep.Status, failedStatuses)
	if rep.RequestID == requestID {
		switch {
		case failed:
			return rebootOutcome{State: stateFailed, MatchedBy: "requestId"}
		case !inProgress && rep.LastReboot != "":
			return rebootOutcome{State: stateCompleted, MatchedBy: "requestId"}
		}
	} else {
		if failed && rep.RequestID == "" && rep.StatusUpdated.After(requestedAt) {
			return rebootOutcome{State: stateFailed, MatchedBy: "statusUpdated"}
		}
		if last, ok := parseDeviceTime(rep.LastReboot); ok && !inProgress && !failed && last.After(requestedAt) {
			return rebootOutcome{State: stateCompleted, MatchedBy: "lastReboot"}
		}
	}
	if now.After(requestedAt.Add(deadline)) {
		return rebootOutcome{State: stateTimedOut}
	}
	return rebootOutcome{State: statePending}
}

// parseDeviceTime reads a timestamp as devices report it: RFC 3339, or ISO
// 8601 without a zone (taken as UTC, as IoT Hub's own zone-less times are).
func parseDeviceTime(s string) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05") {
		return time.Time{}, false
	}
	layout := "2006-01-02T15:04:05.999999999" // no zone: UTC
	if last := s[len(s)-1]; last == 'Z' || last == 'z' || (len(s) > 6 && (s[len(s)-6] == '+' || s[len(s)-6] == '-')) {
		layout = time.RFC3339Nano
	}
	t, err := time.Parse(layout, s)
	return t, err == nil
}

func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
