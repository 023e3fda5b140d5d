package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/iothub-reboot/devmgmt/handlers/internal/rollout"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// maxFailedDevices bounds the failed devices a status lists.
const maxFailedDevices = 50

// fleetStatus is the body of a fleet reboot's status (and of the answers
// that create or cancel one).
type fleetStatus struct {
	ID                string         `json:"id"`
	State             rollout.State  `json:"state"`
	CreatedAt         string         `json:"createdAt"`
	EndedAt           string         `json:"endedAt,omitempty"`
	Reason            string         `json:"reason,omitempty"`
	CancelRequestedAt string         `json:"cancelRequestedAt,omitempty"`
	Selection         fleetSelection `json:"selection"`
	Rollout           fleetRollout   `json:"rollout"`
	Abort             *fleetAbort    `json:"abort,omitempty"`
	// Devices is the number of devices in the fleet reboot's waves.
	Devices     int          `json:"devices"`
	CurrentWave int          `json:"currentWave"`
	Totals      waveCounts   `json:"totals"`
	Waves       []waveStatus `json:"waves"`
	// Rebooted counts the devices whose twin reports the new lastReboot
	// for this fleet reboot (they echo its id as their requestId).
	Rebooted               rebootedShare  `json:"rebooted"`
	FailedDevices          []failedDevice `json:"failedDevices"`
	FailedDevicesTruncated bool           `json:"failedDevicesTruncated,omitempty"`
	StatusURL              string         `json:"statusUrl"`
	Replayed               bool           `json:"replayed,omitempty"`
}

type fleetSelection struct {
	// Query is the twin query condition ("*" for every device); absent
	// when devices were listed, whose number DeviceIDs gives.
	Query     string `json:"query,omitempty"`
	DeviceIDs int    `json:"deviceIds,omitempty"`
	// Selected devices matched when the fleet reboot was created;
	// Excluded of them belonged to another unfinished fleet reboot.
	Selected int `json:"selected"`
	Excluded int `json:"excluded"`
}

type fleetRollout struct {
	Waves           int `json:"waves"`
	IntervalSeconds int `json:"intervalSeconds,omitempty"`
}

type fleetAbort struct {
	MaxFailedPercent float64 `json:"maxFailedPercent"`
	MinDevices       int     `json:"minDevices"`
}

// waveCounts are devices by outcome. Skipped devices are in waves that
// never started because the fleet reboot ended first.
type waveCounts struct {
	Devices   int `json:"devices"`
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	NotOnline int `json:"notOnline"`
	TimedOut  int `json:"timedOut"`
	Cancelled int `json:"cancelled"`
	Skipped   int `json:"skipped"`
}

func (c *waveCounts) add(o waveCounts) {
	c.Devices += o.Devices
	c.Pending += o.Pending
	c.Running += o.Running
	c.Succeeded += o.Succeeded
	c.Failed += o.Failed
	c.NotOnline += o.NotOnline
	c.TimedOut += o.TimedOut
	c.Cancelled += o.Cancelled
	c.Skipped += o.Skipped
}

func countsOf(c rollout.Counts) waveCounts {
	return waveCounts{Devices: c.Devices, Pending: c.Pending, Running: c.Running, Succeeded: c.Succeeded, Failed: c.Failed,
		NotOnline: c.NotOnline, TimedOut: c.TimedOut, Cancelled: c.Cancelled}
}

// Wave states.
const (
	waveNotStarted = "notStarted"
	waveRunning    = "running"
	waveFinished   = "finished"
	waveSkipped    = "skipped"
)

type waveStatus struct {
	Wave  int    `json:"wave"`
	State string `json:"state"`
	JobID string `json:"jobId,omitempty"`
	waveCounts
	Rebooted int `json:"rebooted"`
}

type rebootedShare struct {
	Devices int     `json:"devices"`
	Percent float64 `json:"percent"`
}

type failedDevice struct {
	DeviceID string `json:"deviceId"`
	Wave     int    `json:"wave,omitempty"`
	// Outcome is refused, failed, notOnline, timedOut or unknown.
	Outcome string `json:"outcome"`
	Code    string `json:"code,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// fleetStatusOf builds the status from the record alone (live is false:
// what the answers to creation and cancellation carry) or with what IoT
// Hub says now: the running wave's job, the devices that rebooted, the
// devices that failed. A live part the hub cannot answer is left out and
// logged; the record's part is always there.
func (d Deps) fleetStatusOf(ctx context.Context, r *http.Request, rec *fleetRecord, live bool) fleetStatus {
	st := fleetStatus{
		ID: rec.ID, State: rec.State, CreatedAt: rec.CreatedAt, EndedAt: rec.EndedAt, Reason: rec.Reason,
		CancelRequestedAt: rec.CancelRequestedAt,
		Selection:         fleetSelection{Query: rec.Selection, Selected: rec.Selected, Excluded: rec.Excluded},
		Rollout:           fleetRollout{Waves: rec.Waves(), IntervalSeconds: rec.IntervalSeconds},
		Devices:           rec.Devices(),
		CurrentWave:       rec.Wave,
		FailedDevices:     []failedDevice{},
		StatusURL:         fleetStatusURL(r, rec.ID),
	}
	if rec.ByDeviceIDs > 0 {
		st.Selection = fleetSelection{DeviceIDs: rec.ByDeviceIDs, Selected: rec.Selected, Excluded: rec.Excluded}
	} else if rec.Selection == "" {
		st.Selection.Query = "*"
	}
	if rec.Abort != nil {
		st.Abort = &fleetAbort{MaxFailedPercent: rec.Abort.MaxFailedPercent, MinDevices: rec.Abort.MinDevices}
	}

	var rebooted map[int]int
	if live && rec.State != rollout.StateScheduled {
		var err error
		rebooted, err = countByWave(ctx, d.Hub, and(memberCondition(rec.ID, 0), rebootedCondition(rec.ID)))
		if err != nil {
			d.logFleet(ctx, slog.LevelWarn, "fleet reboot status: counting rebooted devices failed", rec.ID, hubErrorAttrs(err)...)
		}
	}
	for i, size := range rec.SizeList() {
		wave := i + 1
		ws := waveStatus{Wave: wave, waveCounts: waveCounts{Devices: size}, Rebooted: rebooted[wave]}
		if wave <= rec.Wave {
			ws.JobID = rollout.WaveJobID(rec.ID, wave)
		}
		switch res, done := rec.Result(wave); {
		case done:
			ws.State, ws.waveCounts = waveFinished, countsOf(res)
		case wave == rec.Wave && !rec.State.Finished():
			ws.State, ws.Pending = waveRunning, size
			if live {
				d.liveWaveCounts(ctx, rec, wave, &ws)
			}
		case rec.State.Finished() && rec.State != rollout.StateCompleted, size == 0 && (rec.State.Finished() || wave < rec.Wave):
			// Never started: the fleet reboot ended first, or the wave
			// had no devices left when the others were tagged.
			ws.State, ws.Skipped = waveSkipped, size
		default:
			ws.State, ws.Pending = waveNotStarted, size
		}
		st.Totals.add(ws.waveCounts)
		st.Rebooted.Devices += ws.Rebooted
		st.Waves = append(st.Waves, ws)
	}
	if st.Devices > 0 {
		st.Rebooted.Percent = math.Round(1000*float64(st.Rebooted.Devices)/float64(st.Devices)) / 10
	}
	if live && rec.Wave > 0 {
		st.FailedDevices, st.FailedDevicesTruncated = d.failedDevices(ctx, rec)
	}
	return st
}

// rebootedCondition selects devices reporting that they rebooted for
// fleet reboot id: its id as requestId, a lastReboot, and a status that is
// not "rebooting" or a failure (the device contract, docs/function-app.md).
func rebootedCondition(id string) string {
	return and(rebootReported+"requestId = "+quoteLiteral(id), "IS_DEFINED("+rebootReported+"lastReboot)",
		statusNotIn(slices.Concat(inProgressStatuses, failedStatuses)))
}

// rebootReported is the prefix of the reboot's reported properties.
const rebootReported = "properties.reported.iothubDM.reboot."

// statusNotIn selects devices whose reported reboot status is none of
// statuses, or that report none.
func statusNotIn(statuses []string) string {
	return "NOT IS_DEFINED(" + rebootReported + "status) OR " + rebootReported + "status NIN " + literalList(statuses)
}

// liveWaveCounts fills the running wave's counts from its job's statistics:
// IoT Hub's, in which a device that answered counts as succeeded whatever
// it answered; the wave's own counts, once it ends, judge the answers.
func (d Deps) liveWaveCounts(ctx context.Context, rec *fleetRecord, wave int, ws *waveStatus) {
	job, err := d.Hub.GetJob(ctx, rollout.WaveJobID(rec.ID, wave), nil)
	if err != nil {
		if !isHubError(err, iothub.JobNotFound) {
			d.logFleet(ctx, slog.LevelWarn, "fleet reboot status: reading the wave's job failed", rec.ID, hubErrorAttrs(err)...)
		}
		return // not created yet: all pending
	}
	s := job.Statistics
	ws.Pending = s.PendingCount + max(0, ws.Devices-s.DeviceCount)
	ws.Running = s.RunningCount
	ws.Succeeded = s.SucceededCount
	ws.Failed = s.FailedCount
}

// failedDevices lists devices of the started waves that failed: those
// whose part in a wave's job failed (not online, timed out, ...) and those
// that report the reboot failed. A device that timed out or whose call's
// fate the hub lost, but whose twin shows it acted, did not fail.
func (d Deps) failedDevices(ctx context.Context, rec *fleetRecord) ([]failedDevice, bool) {
	out := []failedDevice{}
	truncated := false
	jobs := make([]string, 0, rec.Wave)
	for w := 1; w <= rec.Wave; w++ {
		jobs = append(jobs, rollout.WaveJobID(rec.ID, w))
	}
	pager := d.Hub.NewDeviceJobsPager("SELECT * FROM devices.jobs WHERE devices.jobs.jobId IN "+literalList(jobs)+" AND devices.jobs.status = 'failed'",
		&iothub.QueryOptions{PageSize: maxFailedDevices})
	page, err := pager.NextPage(ctx)
	if err != nil {
		d.logFleet(ctx, slog.LevelWarn, "fleet reboot status: listing failed devices failed", rec.ID, hubErrorAttrs(err)...)
		return out, true
	}
	truncated = pager.More()
	var ask []string
	for _, dj := range page.DeviceJobs {
		o := rollout.Classify(dj)
		if o.Outcome.AskTwin() {
			ask = append(ask, dj.DeviceID)
		}
		out = append(out, failedDevice{DeviceID: dj.DeviceID, Wave: rollout.WaveOfJob(rec.ID, dj.JobID), Outcome: string(o.Outcome), Code: o.Code, Detail: o.Detail})
	}
	if len(ask) > 0 {
		acted, err := devicesThatActed(ctx, d.Hub, rec.ID, ask)
		if err != nil {
			d.logFleet(ctx, slog.LevelWarn, "fleet reboot status: reading the twins of devices that timed out failed", rec.ID, hubErrorAttrs(err)...)
		}
		kept := out[:0]
		for _, f := range out {
			if !acted[f.DeviceID] {
				kept = append(kept, f)
			}
		}
		out = kept
	}

	// Devices that answered the method but report the reboot failed (or
	// refused it with a status outside 2xx and said why in their twin).
	query := "SELECT TOP " + strconv.Itoa(maxFailedDevices) + " deviceId, tags." + memberTag + ".wave AS wave, " +
		strings.TrimSuffix(rebootReported, ".") + " AS reboot FROM devices WHERE " +
		and(memberCondition(rec.ID, 0), rebootReported+"requestId = "+quoteLiteral(rec.ID), rebootReported+"status IN "+literalList(failedStatuses))
	twins, err := d.Hub.NewQueryPager(query, nil).NextPage(ctx)
	if err != nil {
		d.logFleet(ctx, slog.LevelWarn, "fleet reboot status: listing devices reporting a failed reboot failed", rec.ID, hubErrorAttrs(err)...)
		return out, true
	}
	listed := map[string]bool{}
	for _, f := range out {
		listed[f.DeviceID] = true
	}
	for _, raw := range twins.Items {
		var row struct {
			DeviceID string  `json:"deviceId"`
			Wave     float64 `json:"wave"`
			Reboot   struct {
				Reason string `json:"reason"`
				Error  string `json:"error"`
			} `json:"reboot"`
		}
		if json.Unmarshal(raw, &row) != nil || listed[row.DeviceID] {
			continue
		}
		out = append(out, failedDevice{DeviceID: row.DeviceID, Wave: int(row.Wave), Outcome: string(rollout.OutcomeRefused),
			Code: "RebootFailed", Detail: firstNonEmpty(row.Reboot.Reason, row.Reboot.Error, "the device reports the reboot failed")})
	}
	if len(out) > maxFailedDevices {
		out, truncated = out[:maxFailedDevices], true
	}
	return out, truncated || len(twins.Items) == maxFailedDevices
}

// devicesThatActed returns which of ids report fleet reboot id as their
// reboot's requestId without reporting it failed: they received the call
// and rebooted, or are rebooting, whatever the hub recorded.
func devicesThatActed(ctx context.Context, hub *iothub.Client, id string, ids []string) (map[string]bool, error) {
	acted := map[string]bool{}
	for chunk := range slices.Chunk(ids, maxFleetDeviceIDs) {
		query := "SELECT deviceId FROM devices WHERE " +
			and("deviceId IN "+literalList(chunk), rebootReported+"requestId = "+quoteLiteral(id), statusNotIn(failedStatuses))
		pager := hub.NewQueryPager(query, &iothub.QueryOptions{PageSize: 100})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return acted, err
			}
			for _, raw := range page.Items {
				var row struct {
					DeviceID string `json:"deviceId"`
				}
				if json.Unmarshal(raw, &row) == nil {
					acted[row.DeviceID] = true
				}
			}
		}
	}
	return acted, nil
}

// handleFleetRebootStatus serves GET /api/reboots/{fleetId}: 202 with
// Location and Retry-After while the fleet reboot is scheduled or running
// (Logic Apps keep polling), 200 once it has ended.
func handleFleetRebootStatus(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := d.lookupFleet(w, r)
		if !ok {
			return
		}
		d.writeFleetStatus(w, r, d.fleetStatusOf(r.Context(), r, rec, true))
	})
}

// lookupFleet reads the record of the request's {fleetId}, answering 400
// or 404 itself when there is none.
func (d Deps) lookupFleet(w http.ResponseWriter, r *http.Request) (*fleetRecord, bool) {
	id := r.PathValue("fleetId")
	if !validFleetID(id) {
		writeProblem(w, r, badRequest(codeInvalidArgument, "The fleet reboot id must be the id POST /api/reboots returned, a lower-case UUID."))
		return nil, false
	}
	rec, err := findRecord(r.Context(), d.Hub, id)
	if err != nil {
		if r.Context().Err() == nil {
			d.logFleet(r.Context(), slog.LevelWarn, "reading the fleet reboot's record failed", id, hubErrorAttrs(err)...)
			writeProblem(w, r, hubProblem(r.Context(), err, callQuery, ""))
		}
		return nil, false
	}
	if rec == nil {
		writeProblem(w, r, fleetNotFound(id))
		return nil, false
	}
	return rec, true
}

func fleetNotFound(id string) problem {
	return problem{Status: http.StatusNotFound, ErrorCode: codeFleetRebootNotFound,
		Detail: "No fleet reboot " + id + " is recorded in the IoT Hub: it never existed, or the device that kept its record (its first device) was deleted or now keeps the record of a later fleet reboot."}
}

// writeFleetStatus answers with st: 202 + Location + Retry-After while the
// fleet reboot is open, else 200.
func (d Deps) writeFleetStatus(w http.ResponseWriter, r *http.Request, st fleetStatus) {
	if !st.State.Finished() {
		w.Header().Set("Location", st.StatusURL)
		w.Header().Set("Retry-After", strconv.Itoa(fleetRetryAfter))
		writeJSON(w, http.StatusAccepted, st)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// logFleet logs a line about fleet reboot id.
func (d Deps) logFleet(ctx context.Context, level slog.Level, msg, id string, attrs ...slog.Attr) {
	d.Logger.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.String("fleetRebootId", id)}, attrs...)...)
}
