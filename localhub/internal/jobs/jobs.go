// Package jobs runs IoT Hub's scheduled jobs (the service API's jobs v2):
// a direct method or a twin update applied to every device a twin query
// selects, at a start time, within a maximum execution time, with each
// device's outcome recorded so that it can be queried as devices.jobs.
//
// The engine keeps every job and every device's outcome in the registry's
// bbolt file and commits each before acting on it: a device's record says
// "running" (durably) before the device is called, and says how the call
// ended once it has. A hub that stops in the middle of a job resumes it on
// start: devices not yet called are called, and devices whose call was in
// flight are never called again; their outcome is recorded as unknown
// (ErrorOutcomeUnknown), because the device may have acted on the call.
//
// The package knows nothing of the service API's JSON: package rest owns
// the wire and maps this package's types and errors to IoT Hub's.
package jobs

import (
	"errors"
	"fmt"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// Type is a job's type, as the service API spells it.
type Type string

const (
	// TypeDeviceMethod calls a direct method on each device.
	TypeDeviceMethod Type = "scheduleDeviceMethod"
	// TypeUpdateTwin patches each device's twin (tags, desired properties).
	TypeUpdateTwin Type = "scheduleUpdateTwin"
)

// Status is a job's status. IoT Hub answers a new job with "queued",
// reports "scheduled" while its start time is ahead, "running" from then
// on, and ends it "completed", "failed" or "cancelled".
type Status string

const (
	StatusQueued    Status = "queued"
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Finished reports whether s is final.
func (s Status) Finished() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// DeviceStatus is one device's status within a job. IoT Hub spells the
// device status "canceled" but the job status "cancelled"
// (azure-iot-sdk-csharp DeviceJobStatus and JobStatus).
type DeviceStatus string

const (
	DevicePending   DeviceStatus = "pending"
	DeviceRunning   DeviceStatus = "running"
	DeviceCompleted DeviceStatus = "completed"
	DeviceFailed    DeviceStatus = "failed"
	DeviceCanceled  DeviceStatus = "canceled"
)

// Defaults and bounds.
const (
	// DefaultMaxExecutionTime is a job's maximum execution time when the
	// request gives none (or 0): the one Microsoft's Node.js SDK sends when
	// its caller gives none (azure-iothub job_client,
	// defaultMaxExecutionTimeInSeconds).
	DefaultMaxExecutionTime = time.Hour
	// MaxExecutionTimeLimit bounds maxExecutionTimeInSeconds so that a
	// deadline can always be computed; IoT Hub documents no maximum.
	MaxExecutionTimeLimit = 10 * 365 * 24 * time.Hour
	// DefaultRetention is how long a finished job and its devices'
	// outcomes are kept: "Job history is retained up to 30 days"
	// (iot-hub-devguide-quotas-throttling, "Other limits").
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultMaxActiveJobs bounds the jobs queued, scheduled or running at
	// once when no quota is set (S3's ten concurrent jobs, ten times over):
	// each holds its definition in memory.
	DefaultMaxActiveJobs = 100
	// DefaultMaxRunningJobs is how many jobs run at once; further due jobs
	// wait, queued, for one to end.
	DefaultMaxRunningJobs = 10
	// DefaultConcurrency is how many device operations one job has in
	// flight at once.
	DefaultConcurrency = 32
)

// Method is the direct method a job calls on each device; its fields mean
// what they mean for a direct call (POST /twins/{id}/methods).
type Method struct {
	Name string
	// Payload is the body the device receives: the request's payload JSON
	// as sent, "null" included, or nil (an empty body) when the request had
	// no payload member.
	Payload         []byte
	ResponseTimeout time.Duration
	ConnectTimeout  time.Duration
}

// TwinUpdate is the patch a job applies to each device's twin.
type TwinUpdate struct {
	Patch registry.TwinPatch
	// Document is the request's updateTwin JSON as sent, which the job
	// reports back.
	Document []byte
}

// Spec is a job as requested.
type Spec struct {
	ID   string
	Type Type
	// QueryCondition selects the devices: a twin query's WHERE condition
	// ("deviceId IN ['a','b']", "tags.site = 'x'") or "*" for all devices.
	QueryCondition string
	// StartTime is when the job starts; a zero or past time starts it as
	// soon as it can run.
	StartTime time.Time
	// MaxExecutionTime bounds the job from its start; 0 is
	// DefaultMaxExecutionTime.
	MaxExecutionTime time.Duration
	Method           *Method     // TypeDeviceMethod
	UpdateTwin       *TwinUpdate // TypeUpdateTwin
}

// Statistics count a job's devices by status. Devices that answered a
// direct method count as succeeded whatever status they answered with: the
// hub delivered the call and recorded the answer (see DeviceJob.Response).
type Statistics struct {
	DeviceCount    int
	FailedCount    int
	SucceededCount int
	RunningCount   int
	PendingCount   int
}

// Job is a job and where it stands.
type Job struct {
	Spec
	Status      Status
	CreatedTime time.Time
	// StartTime in Spec is the requested start, never before CreatedTime.
	// RunStartTime is when the job started running (zero before).
	RunStartTime time.Time
	// EndTime is when the job finished (zero before).
	EndTime       time.Time
	FailureReason string
	Statistics    Statistics
}

// MethodResponse is a device's answer to a job's direct method.
type MethodResponse struct {
	Status int
	// Payload is the device's reply as JSON: its body when that is JSON,
	// null when empty, and the body as a JSON string otherwise.
	Payload []byte
}

// DeviceError is why a device's part of a job failed: Code is the error
// name a direct call would have been answered with (DeviceNotOnline,
// GatewayTimeout, DeviceNotFound, ...), or one of the Error* codes below.
type DeviceError struct {
	Code        string
	Description string
}

// Codes of device failures that have no direct-call equivalent.
const (
	// ErrorOutcomeUnknown: the hub stopped while the device's call or twin
	// update was in progress. The device may have received it, so the job
	// does not send it again.
	ErrorOutcomeUnknown = "OutcomeUnknown"
	// ErrorJobExpired: the job's maximum execution time passed before the
	// device's turn came; the device was not called.
	ErrorJobExpired = "JobExecutionTimeExceeded"
)

// DeviceJob is one device's part in a job, as devices.jobs reports it.
type DeviceJob struct {
	JobID    string
	DeviceID string
	Type     Type
	Status   DeviceStatus
	// StartTime and EndTime are the job's execution window: when it
	// started running and that plus its maximum execution time.
	StartTime time.Time
	EndTime   time.Time
	// CreatedTime is when the device joined the job (the job's start);
	// LastUpdatedTime when its record last changed.
	CreatedTime     time.Time
	LastUpdatedTime time.Time
	Response        *MethodResponse // method jobs, once the device answered
	Error           *DeviceError    // failed devices
}

// Errors of the engine's operations.
var (
	// ErrNotFound: no job has this id (or its history has expired).
	ErrNotFound = errors.New("job not found")
	// ErrExists: a job with this id exists (or existed within the
	// retention period).
	ErrExists = errors.New("a job with this id already exists")
	// ErrTooManyActive: as many jobs as allowed are queued, scheduled or
	// running.
	ErrTooManyActive = errors.New("the maximum number of active jobs is reached")
	// ErrClosed: the engine is shutting down.
	ErrClosed = errors.New("job engine closed")
)

// InvalidError is a job definition the engine refuses. Msg is written for
// the caller of the API.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func invalid(format string, args ...any) *InvalidError {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}

// StateError is an operation the job's status does not allow: IoT Hub
// cannot cancel a job once it runs ("Job cannot be cancelled in 'Running'
// status.", Azure/azure-iot-sdk-node#464).
type StateError struct {
	Op     string
	Status Status
}

func (e *StateError) Error() string {
	s := string(e.Status)
	if s != "" {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return fmt.Sprintf("Job cannot be %s in '%s' status.", e.Op, s)
}
