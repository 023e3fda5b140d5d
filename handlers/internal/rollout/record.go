package rollout

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is a fleet reboot's state.
type State string

const (
	// StateScheduled: created; its devices are being tagged with their
	// waves. No device has been called.
	StateScheduled State = "scheduled"
	// StateRunning: waves are being run, one IoT Hub job at a time.
	StateRunning   State = "running"
	StateCompleted State = "completed"
	// StateAborted: the abort rule stopped it; later waves never started.
	StateAborted State = "aborted"
	// StateCancelled: cancelled; waves that had not started never will.
	StateCancelled State = "cancelled"
	// StateFailed: it could not go on (a wave's job could not be created).
	StateFailed State = "failed"
)

// Finished reports whether the state is final.
func (s State) Finished() bool {
	switch s {
	case StateCompleted, StateAborted, StateCancelled, StateFailed:
		return true
	}
	return false
}

// Open lists the states of fleet reboots that hold their devices.
var Open = []State{StateScheduled, StateRunning}

// Record is a fleet reboot's definition and progress, kept in the tags of
// one of its devices (the head: tags.fleetRebootRecord). Everything else
// is recoverable from IoT Hub: the members carry tags.fleetReboot = {id,
// wave}, each wave is job WaveJobID(id, wave), each device's outcome is in
// devices.jobs, and each device reports its reboot in its twin.
//
// Updates are JSON merge patches on the twin (conditional on its etag), so
// a field once set is never removed, only changed: every field keeps its
// meaning as the record grows. A new record replaces whatever ended fleet
// reboot's record its head kept before, field by field (the handlers'
// writeHead).
type Record struct {
	ID        string `json:"id"`
	State     State  `json:"state"`
	CreatedAt string `json:"createdAt"`
	// Selection is the twin query condition the devices were selected by
	// ("" selects every device); ByDeviceIDs is the number of ids when the
	// caller listed them.
	Selection   string `json:"selection"`
	ByDeviceIDs int    `json:"byDeviceIds,omitempty"`
	// Selected and Excluded: the devices the selection matched when the
	// fleet reboot was created, and those of them that belonged to
	// another unfinished fleet reboot.
	Selected int `json:"selected"`
	Excluded int `json:"excluded,omitempty"`
	// Sizes are the waves' sizes by wave number: planned while scheduled,
	// the tagged devices once running.
	Sizes           map[string]int `json:"sizes"`
	IntervalSeconds int            `json:"intervalSeconds,omitempty"`
	// Abort is the abort rule; nil for none.
	Abort *Abort `json:"abort,omitempty"`
	// The reboot method's parameters, as RebootDevice takes them.
	ResponseTimeoutSeconds int `json:"responseTimeoutSeconds"`
	ConnectTimeoutSeconds  int `json:"connectTimeoutSeconds,omitempty"`
	DelaySeconds           int `json:"delaySeconds,omitempty"`
	// Wave is the last wave started (0: none yet); WaveStartedAt when.
	Wave          int    `json:"wave"`
	WaveStartedAt string `json:"waveStartedAt,omitempty"`
	// Results are each finished wave's counts, by wave number.
	Results           map[string]Counts `json:"results,omitempty"`
	CancelRequestedAt string            `json:"cancelRequestedAt,omitempty"`
	// TaggingUntil is a lease: one timer run tags the devices of a
	// scheduled fleet reboot until then, others leave them alone.
	TaggingUntil string `json:"taggingUntil,omitempty"`
	EndedAt      string `json:"endedAt,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// TimeLayout renders the record's times: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// WaveJobID is the IoT Hub job of a fleet reboot's wave (job ids are 1-64
// letters, digits and '-': a UUID fleet id leaves room for 100 waves).
func WaveJobID(fleetID string, wave int) string {
	return "fleetreboot-" + fleetID + "-w" + strconv.Itoa(wave)
}

// SizeList returns the waves' sizes in wave order, 1 to the last (at most
// MaxWaves: a record is read from a twin anyone may write).
func (r *Record) SizeList() []int {
	n := 0
	for k := range r.Sizes {
		if w, err := strconv.Atoi(k); err == nil && w > n && w <= MaxWaves {
			n = w
		}
	}
	out := make([]int, n)
	for i := range out {
		out[i] = r.Sizes[WaveKey(i+1)]
	}
	return out
}

// Waves is the number of waves.
func (r *Record) Waves() int { return len(r.SizeList()) }

// Devices is the number of devices in all waves (SizeList's, so that it
// is the sum of the waves a status shows).
func (r *Record) Devices() int {
	n := 0
	for _, s := range r.SizeList() {
		n += s
	}
	return n
}

// Totals adds up the finished waves' results.
func (r *Record) Totals() Counts {
	var c Counts
	for _, res := range r.Results {
		c.Add(res)
	}
	return c
}

// Result returns a finished wave's counts.
func (r *Record) Result(wave int) (Counts, bool) {
	c, ok := r.Results[WaveKey(wave)]
	return c, ok
}

// NextWave is the first wave after wave with devices; 0 when none is left.
func (r *Record) NextWave(wave int) int {
	sizes := r.SizeList()
	for w := wave + 1; w <= len(sizes); w++ {
		if sizes[w-1] > 0 {
			return w
		}
	}
	return 0
}

// Step is what a fleet reboot does once its last started wave is over.
type Step struct {
	// Final is set when the fleet reboot ends, with Reason.
	Final  State
	Reason string
	// Wave is the wave to start (when Final is empty); 0 with Wait set
	// means "not yet": a rate's minute between waves has not passed.
	Wave int
	Wait time.Duration
}

// AfterWave decides what follows the end of the last started wave, whose
// results are in the record: a cancel request ends it, then the abort
// rule, then the end of the waves; otherwise the next wave starts once the
// interval since the last start has passed.
func (r *Record) AfterWave(now time.Time) Step {
	if r.CancelRequestedAt != "" {
		return Step{Final: StateCancelled, Reason: "cancelled on request"}
	}
	total := r.Totals()
	if r.Abort != nil && r.Abort.Triggered(total) {
		return Step{Final: StateAborted, Reason: fmt.Sprintf("%d of %d devices with an outcome failed (%.1f%%), above the abort threshold of %g%%",
			total.Failures(), total.Outcomes(), 100*float64(total.Failures())/float64(total.Outcomes()), r.Abort.MaxFailedPercent)}
	}
	next := r.NextWave(r.Wave)
	if next == 0 {
		return Step{Final: StateCompleted}
	}
	if r.IntervalSeconds > 0 && r.WaveStartedAt != "" {
		if started, err := time.Parse(time.RFC3339Nano, r.WaveStartedAt); err == nil {
			if due := started.Add(time.Duration(r.IntervalSeconds) * time.Second); now.Before(due) {
				return Step{Wait: due.Sub(now)}
			}
		}
	}
	return Step{Wave: next}
}

// WaveOfJob is the wave whose job jobID is, or 0 when it is no wave job of
// fleet reboot fleetID.
func WaveOfJob(fleetID, jobID string) int {
	rest, ok := strings.CutPrefix(jobID, "fleetreboot-"+fleetID+"-w")
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 {
		return 0
	}
	return n
}
