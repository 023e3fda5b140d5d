package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/handlers/internal/invocation"
	"github.com/iothub-reboot/devmgmt/handlers/internal/rollout"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// FleetRebootTimer moves every open fleet reboot on, from what IoT Hub
// holds and nothing else: it tags a scheduled fleet reboot's devices with
// their waves, starts each wave's job when the previous one has ended (on
// S1 only one job may be active, a scheduled one included), judges each
// finished wave's devices and applies the abort rule. Every step is
// idempotent and every write conditional (the record on its twin's etag,
// each job by its id), so runs that overlap, or a run cut short by a
// restart, leave nothing half done that the next run does not finish.
const (
	// timerBinding is FleetRebootTimer's trigger binding name.
	timerBinding = "timer"
	// tagBudget bounds the devices one run tags per fleet reboot (each a
	// twin update: S1 allows 50 a second per unit), tagPage the devices
	// listed per query, tagConcurrency the updates in flight.
	tagBudget      = 2000
	tagPage        = 100
	tagConcurrency = 16
	// taggingLease is how long a run owns a fleet reboot's tagging.
	taggingLease = 2 * time.Minute
	// runBudget: a run starts no work on another fleet reboot after this
	// (the host's functionTimeout is 10 minutes).
	runBudget = 4 * time.Minute
)

// waveMaxExecution bounds a wave's job: an hour, plus a second per device
// (S1 runs 10 device operations a second per hub, and a device that does
// not answer holds a slot for its timeouts).
func waveMaxExecution(devices int) time.Duration {
	return time.Hour + time.Duration(devices)*time.Second
}

// runLog collects a run's lines. Each goes to one channel, so the host
// logs it once (docs/local-host.md): progress to the invocation's Logs,
// which the host logs at Information against the invocation; warnings to
// stderr, which it logs at Warning.
type runLog struct {
	d     Deps
	mu    sync.Mutex
	lines []string
}

func (l *runLog) log(ctx context.Context, level slog.Level, msg, id string, attrs ...slog.Attr) {
	if level >= slog.LevelWarn {
		l.d.logFleet(ctx, level, msg, id, attrs...)
		return
	}
	var b strings.Builder
	b.WriteString(msg)
	b.WriteString(" fleetRebootId=" + id)
	for _, a := range attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
}

// handleFleetRebootTimer serves POST /FleetRebootTimer, the timer
// trigger's invocation.
func handleFleetRebootTimer(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r, maxInvocationBody)
		if err != nil {
			writeProblem(w, r, badRequest(codeMalformedInvocation, "The invocation body could not be read: "+err.Error()))
			return
		}
		timer, err := invocation.DecodeTimer(body, timerBinding)
		if err != nil {
			writeProblem(w, r, badRequest(codeMalformedInvocation, err.Error()))
			return
		}
		l := &runLog{d: d}
		if timer.IsPastDue {
			l.log(r.Context(), slog.LevelInfo, "fleet reboot timer is past due: catching up", "-")
		}
		if err := d.advanceFleets(r.Context(), l); err != nil {
			if r.Context().Err() != nil {
				return
			}
			// A failed invocation: the host logs it, the next run retries.
			d.Logger.LogAttrs(r.Context(), slog.LevelError, "fleet reboot timer: listing the open fleet reboots failed", hubErrorAttrs(err)...)
			writeProblem(w, r, hubProblem(r.Context(), err, callQuery, ""))
			return
		}
		resp := invocation.NewResponse()
		resp.Logs = append(resp.Logs, l.lines...)
		writeJSON(w, http.StatusOK, resp)
	})
}

// advanceFleets moves each open fleet reboot on, oldest first. Only
// listing them can fail the run; a fleet reboot that cannot move now is
// logged and tried again next run.
func (d Deps) advanceFleets(ctx context.Context, l *runLog) error {
	start := time.Now()
	open, dups, err := openRecords(ctx, d.Hub)
	if err != nil {
		return err
	}
	for _, dup := range dups {
		// A request that lost a race stopped before taking its record back.
		if err := removeRecord(ctx, d.Hub, dup, false); err != nil {
			l.log(ctx, slog.LevelWarn, "removing a duplicate fleet reboot record failed", dup.ID, append([]slog.Attr{slog.String("deviceId", dup.HeadID)}, hubErrorAttrs(err)...)...)
		}
	}
	ids := make([]string, len(open))
	for i, rec := range open {
		ids[i] = rec.ID
	}
	// Fleet reboots take their devices in the order they were created: a
	// scheduled one tags its devices only once every older one has.
	olderTagging := false
	for _, rec := range open {
		if time.Since(start) > runBudget || ctx.Err() != nil {
			break
		}
		var err error
		switch rec.State {
		case rollout.StateScheduled:
			if olderTagging {
				l.log(ctx, slog.LevelInfo, "fleet reboot waits for an older one to tag its devices", rec.ID)
				continue
			}
			err = d.prepareFleet(ctx, rec, ids, l)
			olderTagging = rec.State == rollout.StateScheduled
		case rollout.StateRunning:
			err = d.runFleet(ctx, rec, l)
		}
		switch {
		case err == nil:
		case errors.Is(err, errRecordChanged):
			// Another run, or a cancel request, wrote first: the next run
			// reads what it wrote.
		case ctx.Err() != nil:
			return nil
		default:
			l.log(ctx, slog.LevelWarn, "fleet reboot could not move on; trying again next run", rec.ID, hubErrorAttrs(err)...)
		}
	}
	return nil
}

// finish ends a fleet reboot.
func (d Deps) finish(ctx context.Context, rec *fleetRecord, state rollout.State, reason string, l *runLog) error {
	err := rec.save(ctx, d.Hub, func(r *rollout.Record) {
		r.State, r.Reason, r.EndedAt = state, reason, recordTime(d.Now())
	})
	if err != nil {
		return err
	}
	total := rec.Totals()
	level := slog.LevelInfo
	if state != rollout.StateCompleted {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{slog.Int("devices", rec.Devices()), slog.Int("succeeded", total.Succeeded), slog.Int("failed", total.Failures()), slog.Int("cancelled", total.Cancelled)}
	if reason != "" { // a completed one has none
		attrs = append([]slog.Attr{slog.String("reason", reason)}, attrs...)
	}
	l.log(ctx, level, "fleet reboot "+string(state), rec.ID, attrs...)
	return nil
}

// prepareFleet tags a scheduled fleet reboot's devices with their waves,
// then starts it. The selection is run again for each page, without the
// devices already tagged (they now belong to an open fleet reboot, this
// one): the query itself is the cursor, so a run that stops anywhere
// leaves the next one exactly the devices still to tag.
func (d Deps) prepareFleet(ctx context.Context, rec *fleetRecord, openIDs []string, l *runLog) error {
	now := d.Now()
	if rec.CancelRequestedAt != "" {
		return d.finish(ctx, rec, rollout.StateCancelled, "cancelled before any device was called", l)
	}
	if until, err := time.Parse(time.RFC3339Nano, rec.TaggingUntil); err == nil && now.Before(until) {
		return nil // another run is tagging
	}
	if err := rec.save(ctx, d.Hub, func(r *rollout.Record) { r.TaggingUntil = recordTime(now.Add(taggingLease)) }); err != nil {
		return err
	}
	counts, err := countByWave(ctx, d.Hub, memberCondition(rec.ID, 0))
	if err != nil {
		return err
	}
	sizes := rec.SizeList()
	cond := and(rec.Selection, freeCondition(openIDs))
	query := fmt.Sprintf("SELECT TOP %d deviceId, etag FROM devices%s", tagPage, where(cond))
	tagged := 0
	// The run gives the lease back when it stops short of the end, so the
	// next run (seconds later) goes on instead of waiting out the lease.
	defer func() {
		if rec.State == rollout.StateScheduled {
			_ = rec.save(ctx, d.Hub, func(r *rollout.Record) { r.TaggingUntil = recordTime(d.Now()) })
		}
	}()
	// No tag is written once half the lease has passed: a run whose
	// writes outlived the lease would tag devices next to a run that took
	// the lease over, or after the waves were frozen.
	tagCtx, cancel := context.WithTimeout(ctx, taggingLease/2)
	defer cancel()
	untaggable := map[string]bool{} // by the last page's writes
	for tagged < tagBudget && tagCtx.Err() == nil {
		page, err := d.Hub.NewQueryPager(query, nil).NextPage(tagCtx)
		if err != nil {
			if tagCtx.Err() != nil && ctx.Err() == nil {
				break
			}
			return err
		}
		if left := untaggedLeft(page.Items, untaggable); left == 0 && len(page.Items) < tagPage {
			// Nothing is left but devices IoT Hub refuses to tag: the
			// fleet reboot goes on without them rather than wait forever.
			if len(untaggable) > 0 {
				l.log(ctx, slog.LevelWarn, "fleet reboot leaves out devices whose tags cannot be written", rec.ID,
					slog.Int("devices", len(untaggable)), slog.String("deviceIds", strings.Join(slices.Sorted(maps.Keys(untaggable)), ",")))
			}
			return d.startFleet(ctx, rec, l)
		} else if left == 0 {
			l.log(ctx, slog.LevelWarn, "fleet reboot cannot tag a whole page of its devices; trying again next run", rec.ID)
			break
		}
		clear(untaggable)
		rows := make([]deviceRow, 0, len(page.Items))
		waves := make([]int, 0, len(page.Items))
		for _, raw := range page.Items {
			var row deviceRow
			if json.Unmarshal(raw, &row) != nil || row.DeviceID == "" {
				continue
			}
			w := rollout.WaveFor(counts, sizes)
			counts[w]++
			rows, waves = append(rows, row), append(waves, w)
		}
		done, err := d.tagMembers(tagCtx, rec.ID, openIDs, rows, waves)
		for i, ok := range done {
			if !ok {
				counts[waves[i]]--
			} else {
				tagged++
			}
		}
		var refused *untaggableError
		for _, e := range flatten(err) {
			if errors.As(e, &refused) {
				untaggable[refused.deviceID] = true
			} else if tagCtx.Err() == nil || ctx.Err() != nil {
				return err
			}
		}
		if !anyTrue(done) && len(untaggable) < len(rows) {
			// Every device listed changed, went or was refused: list again
			// next run rather than spin on them. A page refused whole is
			// listed once more, to see whether anything else is left.
			break
		}
	}
	l.log(ctx, slog.LevelInfo, "fleet reboot devices tagged", rec.ID, slog.Int("tagged", tagged))
	return nil
}

// untaggedLeft counts the rows of a listing that are not in refused.
func untaggedLeft(items []json.RawMessage, refused map[string]bool) int {
	n := 0
	for _, raw := range items {
		var row deviceRow
		if json.Unmarshal(raw, &row) == nil && !refused[row.DeviceID] {
			n++
		}
	}
	return n
}

// untaggableError is a device IoT Hub refuses to tag (400: its tags are
// full, say): the same write would fail every run.
type untaggableError struct {
	deviceID string
	err      error
}

func (e *untaggableError) Error() string { return e.deviceID + ": " + e.err.Error() }
func (e *untaggableError) Unwrap() error { return e.err }

// flatten lists the errors errors.Join joined; nil for none.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

func anyTrue(bs []bool) bool {
	for _, b := range bs {
		if b {
			return true
		}
	}
	return false
}

// tagMembers writes each device's membership, conditional on the etag it
// was listed with. A device whose twin changed since is read again and
// tagged if it is still free; one taken by another fleet reboot, or
// deleted, is left out (done[i] false).
func (d Deps) tagMembers(ctx context.Context, id string, openIDs []string, rows []deviceRow, waves []int) ([]bool, error) {
	done := make([]bool, len(rows))
	errs := make([]error, len(rows))
	sem := make(chan struct{}, tagConcurrency)
	var wg sync.WaitGroup
	for i := range rows {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			done[i], errs[i] = d.tagMember(ctx, id, openIDs, rows[i], waves[i])
		})
	}
	wg.Wait()
	return done, errors.Join(errs...)
}

func (d Deps) tagMember(ctx context.Context, id string, openIDs []string, row deviceRow, wave int) (bool, error) {
	patch := iothub.TwinPatch{Tags: map[string]any{memberTag: map[string]any{"id": id, "wave": wave}}}
	for attempt := 0; attempt < 2; attempt++ {
		etag := azcore.ETag(row.ETag)
		_, err := d.Hub.UpdateTwin(ctx, row.DeviceID, patch, &iothub.UpdateTwinOptions{IfMatch: &etag})
		switch {
		case err == nil:
			return true, nil
		case isHubError(err, iothub.DeviceNotFound):
			return false, nil
		case hubStatus(err) == http.StatusBadRequest:
			return false, &untaggableError{deviceID: row.DeviceID, err: err}
		case !isHubError(err, iothub.PreconditionFailed):
			return false, err
		}
		// The twin changed (a device's report changes it too): still free?
		twin, err := d.Hub.GetTwin(ctx, row.DeviceID, nil)
		if isHubError(err, iothub.DeviceNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		owner := str(object(twin.Tags[memberTag])["id"])
		if owner == id || slices.Contains(openIDs, owner) {
			return false, nil // tagged by an overlapping run, or taken
		}
		if state := rollout.State(str(object(twin.Tags[recordTag])["state"])); state != "" && !state.Finished() {
			return false, nil // the head of a fleet reboot created since openIDs was read (freeCondition)
		}
		row.ETag = string(twin.ETag)
	}
	return false, nil
}

// startFleet freezes the waves as tagged and starts the first.
func (d Deps) startFleet(ctx context.Context, rec *fleetRecord, l *runLog) error {
	counts, err := countByWave(ctx, d.Hub, memberCondition(rec.ID, 0))
	if err != nil {
		return err
	}
	sizes := map[string]int{}
	total := 0
	for k := range rec.Sizes { // every planned wave, so the merge patch replaces each
		sizes[k] = 0
	}
	for w, n := range counts {
		sizes[rollout.WaveKey(w)] = n
		total += n
	}
	// The selection as it stood when the devices were tagged.
	selected, err := countDevices(ctx, d.Hub, rec.Selection)
	if err != nil {
		return err
	}
	excluded := max(0, selected-total)
	if total == 0 {
		if err := rec.save(ctx, d.Hub, func(r *rollout.Record) { r.Selected, r.Excluded = selected, excluded }); err != nil {
			return err
		}
		return d.finish(ctx, rec, rollout.StateFailed, "no selected device was left to reboot: they were deleted or taken by other fleet reboots before they could be tagged", l)
	}
	if err := rec.save(ctx, d.Hub, func(r *rollout.Record) {
		r.State, r.Sizes, r.Selected, r.Excluded = rollout.StateRunning, sizes, selected, excluded
	}); err != nil {
		return err
	}
	l.log(ctx, slog.LevelInfo, "fleet reboot running", rec.ID, slog.Int("devices", total), slog.Int("waves", rec.Waves()))
	return d.runFleet(ctx, rec, l)
}

// runFleet moves a running fleet reboot on from its current wave.
func (d Deps) runFleet(ctx context.Context, rec *fleetRecord, l *runLog) error {
	wave := rec.Wave
	if wave == 0 {
		return d.afterWave(ctx, rec, l)
	}
	if _, done := rec.Result(wave); done {
		return d.afterWave(ctx, rec, l) // waiting for a rate's interval
	}
	jobID := rollout.WaveJobID(rec.ID, wave)
	job, err := d.Hub.GetJob(ctx, jobID, nil)
	switch {
	case isHubError(err, iothub.JobNotFound):
		if rec.CancelRequestedAt != "" {
			var none rollout.Counts
			none.CancelRest(rec.Sizes[rollout.WaveKey(wave)])
			return d.recordWave(ctx, rec, wave, none, l)
		}
		return d.createWaveJob(ctx, rec, wave, l) // the last run stopped between the record and the job
	case err != nil:
		return err
	case !job.Status.Finished():
		if rec.CancelRequestedAt != "" && (job.Status == iothub.JobStatusQueued || job.Status == iothub.JobStatusScheduled) {
			d.cancelWaveJob(ctx, rec.ID, wave)
		}
		return nil // running: a job cannot be stopped; the next run looks again
	}
	counts, err := d.judgeWave(ctx, rec, wave)
	if err != nil {
		return err
	}
	if job.Status == iothub.JobStatusCancelled {
		counts.CancelRest(rec.Sizes[rollout.WaveKey(wave)])
	}
	if job.Status == iothub.JobStatusFailed {
		l.log(ctx, slog.LevelWarn, "fleet reboot wave's job failed", rec.ID, slog.Int("wave", wave), slog.String("failureReason", job.FailureReason))
	}
	return d.recordWave(ctx, rec, wave, counts, l)
}

// recordWave keeps a finished wave's counts and decides what follows.
func (d Deps) recordWave(ctx context.Context, rec *fleetRecord, wave int, counts rollout.Counts, l *runLog) error {
	if err := rec.save(ctx, d.Hub, func(r *rollout.Record) {
		if r.Results == nil {
			r.Results = map[string]rollout.Counts{}
		}
		r.Results[rollout.WaveKey(wave)] = counts
	}); err != nil {
		return err
	}
	l.log(ctx, slog.LevelInfo, "fleet reboot wave finished", rec.ID, slog.Int("wave", wave), slog.Int("devices", counts.Devices),
		slog.Int("succeeded", counts.Succeeded), slog.Int("failed", counts.Failed), slog.Int("notOnline", counts.NotOnline),
		slog.Int("timedOut", counts.TimedOut), slog.Int("cancelled", counts.Cancelled))
	return d.afterWave(ctx, rec, l)
}

// afterWave ends the fleet reboot or starts its next wave.
func (d Deps) afterWave(ctx context.Context, rec *fleetRecord, l *runLog) error {
	step := rec.AfterWave(d.Now())
	switch {
	case step.Final != "":
		return d.finish(ctx, rec, step.Final, step.Reason, l)
	case step.Wave == 0:
		return nil // the rate's interval has not passed
	}
	// Intent first: the record says the wave started, then its job is
	// created. A run that stops in between leaves a wave without a job,
	// which the next run creates (its id says which).
	if err := rec.save(ctx, d.Hub, func(r *rollout.Record) {
		r.Wave, r.WaveStartedAt = step.Wave, recordTime(d.Now())
	}); err != nil {
		return err
	}
	return d.createWaveJob(ctx, rec, step.Wave, l)
}

// createWaveJob creates wave's job. Creation is idempotent by job id (the
// client reads an existing job back), so a run that created it before
// stopping, or an overlapping run, is no harm. When the hub already has
// as many active jobs as its tier allows (S1: one), the wave waits for the
// next run.
func (d Deps) createWaveJob(ctx context.Context, rec *fleetRecord, wave int, l *runLog) error {
	jobID := rollout.WaveJobID(rec.ID, wave)
	size := rec.Sizes[rollout.WaveKey(wave)]
	_, err := d.Hub.ScheduleDeviceMethod(ctx, jobID, memberCondition(rec.ID, wave), iothub.MethodRequest{
		MethodName:      rebootMethod,
		Payload:         rec.methodPayload(),
		ResponseTimeout: time.Duration(rec.ResponseTimeoutSeconds) * time.Second,
		ConnectTimeout:  time.Duration(rec.ConnectTimeoutSeconds) * time.Second,
	}, &iothub.ScheduleDeviceMethodOptions{MaxExecutionTime: waveMaxExecution(size)})
	switch {
	case err == nil:
		l.log(ctx, slog.LevelInfo, "fleet reboot wave started", rec.ID, slog.Int("wave", wave), slog.Int("devices", size), slog.String("jobId", jobID))
		d.cancelIfRequested(ctx, rec, wave)
		return nil
	case isHubError(err, iothub.ThrottlingMaxActiveJobCountExceeded), isHubError(err, iothub.ThrottlingException):
		l.log(ctx, slog.LevelInfo, "fleet reboot wave waits: the hub runs as many jobs as its tier allows", rec.ID, slog.Int("wave", wave))
		return nil
	case isHubError(err, iothub.JobAlreadyExists):
		return nil // the next run reads it
	case hubStatus(err) == http.StatusBadRequest:
		return d.finish(ctx, rec, rollout.StateFailed, fmt.Sprintf("IoT Hub refused wave %d's job: %s", wave, firstNonEmpty(hubMessage(err), hubErrorCode(err))), l)
	}
	return err
}

// cancelIfRequested cancels wave's job just created when a cancel request
// reached the record after this run read it: the record says the wave
// started before the job exists, and a cancel that lands in between finds
// no job to cancel, so this run does it. IoT Hub starts a job moments
// after its creation, and a running job cannot be cancelled: the window
// narrows to that moment rather than closes. One twin read, no query.
func (d Deps) cancelIfRequested(ctx context.Context, rec *fleetRecord, wave int) {
	if rec.CancelRequestedAt != "" {
		d.cancelWaveJob(ctx, rec.ID, wave)
		return
	}
	twin, err := d.Hub.GetTwin(ctx, rec.HeadID, nil)
	if err != nil || string(twin.ETag) == rec.ETag {
		return // unchanged since it was read (or unreadable: the next run looks)
	}
	var now rollout.Record
	if b, err := json.Marshal(twin.Tags[recordTag]); err == nil && json.Unmarshal(b, &now) == nil &&
		now.ID == rec.ID && now.CancelRequestedAt != "" {
		d.cancelWaveJob(ctx, rec.ID, wave)
	}
}

// judgeWave counts a finished wave's devices by outcome. A device that
// timed out, or whose call's fate the hub lost, counts as succeeded when
// its twin shows it received the call. It holds one page at a time, not
// the wave: a wave may be a million devices.
func (d Deps) judgeWave(ctx context.Context, rec *fleetRecord, wave int) (rollout.Counts, error) {
	pager := d.Hub.NewDeviceJobsPager("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = "+quoteLiteral(rollout.WaveJobID(rec.ID, wave)),
		&iothub.QueryOptions{PageSize: maxFleetDeviceIDs}) // a page's devices to ask about fit in one query
	var c rollout.Counts
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return rollout.Counts{}, err
		}
		var ask []string
		for _, dj := range page.DeviceJobs {
			if rollout.Classify(dj).Outcome.AskTwin() {
				ask = append(ask, dj.DeviceID)
			}
		}
		acted := map[string]bool{}
		if len(ask) > 0 {
			if acted, err = devicesThatActed(ctx, d.Hub, rec.ID, ask); err != nil {
				return rollout.Counts{}, err
			}
		}
		for _, dj := range page.DeviceJobs {
			o := rollout.Classify(dj).Outcome
			if acted[dj.DeviceID] {
				o = rollout.OutcomeSucceeded
			}
			c.Count(o)
		}
	}
	return c, nil
}
