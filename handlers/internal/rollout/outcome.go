package rollout

import (
	"fmt"

	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// Outcome is how a device's part in a wave ended, or where it is.
type Outcome string

const (
	OutcomePending   Outcome = "pending"
	OutcomeRunning   Outcome = "running"
	OutcomeSucceeded Outcome = "succeeded"
	// OutcomeRefused: the device answered the reboot method with a status
	// outside 2xx. IoT Hub's job counts it as succeeded (the call
	// succeeded); the rollout counts it as failed.
	OutcomeRefused   Outcome = "refused"
	OutcomeFailed    Outcome = "failed"
	OutcomeNotOnline Outcome = "notOnline"
	OutcomeTimedOut  Outcome = "timedOut"
	OutcomeCancelled Outcome = "cancelled"
	// OutcomeUnknown: the call was in flight when the hub stopped
	// (OutcomeUnknown in devices.jobs); the device may have rebooted.
	OutcomeUnknown Outcome = "unknown"
)

// DeviceOutcome is one device's outcome with what IoT Hub said about it.
type DeviceOutcome struct {
	Outcome Outcome
	// Code is IoT Hub's error code (DeviceNotOnline, GatewayTimeout, ...)
	// or, for a refusal, "DeviceError".
	Code string
	// Detail is the hub's description, or the device's status.
	Detail string
}

// Classify reads a device's item of devices.jobs.
func Classify(dj iothub.DeviceJob) DeviceOutcome {
	switch dj.Status {
	case iothub.DeviceJobStatusPending, iothub.DeviceJobStatusScheduled:
		return DeviceOutcome{Outcome: OutcomePending}
	case iothub.DeviceJobStatusRunning:
		return DeviceOutcome{Outcome: OutcomeRunning}
	case iothub.DeviceJobStatusCanceled:
		return DeviceOutcome{Outcome: OutcomeCancelled}
	case iothub.DeviceJobStatusCompleted:
		if r := dj.MethodResponse; r != nil && r.Status >= 200 && r.Status <= 299 {
			return DeviceOutcome{Outcome: OutcomeSucceeded}
		}
		status := 0
		if dj.MethodResponse != nil {
			status = dj.MethodResponse.Status
		}
		return DeviceOutcome{Outcome: OutcomeRefused, Code: "DeviceError", Detail: fmt.Sprintf("the device answered the reboot method with status %d", status)}
	}
	var code, detail string
	if dj.Error != nil {
		code, detail = string(dj.Error.Code), dj.Error.Description
	}
	switch iothub.ErrorCode(code) {
	case iothub.DeviceNotOnline:
		return DeviceOutcome{Outcome: OutcomeNotOnline, Code: code, Detail: detail}
	case iothub.GatewayTimeout:
		return DeviceOutcome{Outcome: OutcomeTimedOut, Code: code, Detail: detail}
	case "OutcomeUnknown":
		return DeviceOutcome{Outcome: OutcomeUnknown, Code: code, Detail: detail}
	}
	if code == "" {
		code = "Failed"
	}
	return DeviceOutcome{Outcome: OutcomeFailed, Code: code, Detail: detail}
}

// AskTwin reports whether the device's own twin settles the outcome: after
// a timeout or a call whose fate the hub lost, the device may have acted,
// and it says so by reporting the request id (the device contract: it
// reports iothubDM.reboot.requestId as soon as it starts rebooting).
func (o Outcome) AskTwin() bool { return o == OutcomeTimedOut || o == OutcomeUnknown }
