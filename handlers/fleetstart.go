package handlers

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/handlers/internal/rollout"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// maxHeadAttempts bounds the attempts at writing the record on a device
// that changed under each attempt.
const maxHeadAttempts = 3

// handleFleetRebootStart serves POST /api/reboots: it validates the
// request, counts the devices the selection matches (IoT Hub judges the
// query: its refusal is passed on as 400), plans the waves, and writes the
// record on the first free device it selects, which makes the fleet reboot
// exist. It answers 202 with Location; FleetRebootTimer tags the devices
// and runs the waves. Nothing is written before the request is known to
// be good, and the record is one conditional twin update: there is no
// half-created fleet reboot.
func handleFleetRebootStart(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, idempotent, p := parseIdempotencyKey(r)
		if p != nil {
			writeProblem(w, r, *p)
			return
		}
		spec, p := parseFleetRequest(w, r)
		if p != nil {
			writeProblem(w, r, *p)
			return
		}
		ctx := r.Context()
		id := d.NewRequestID()
		if idempotent {
			id = fleetIDForKey(key)
		}
		fail := func(err error, call hubCall) {
			if ctx.Err() != nil {
				return
			}
			d.logFleet(ctx, slog.LevelWarn, "starting a fleet reboot failed", id, hubErrorAttrs(err)...)
			if call == callQuery {
				writeProblem(w, r, queryProblem(ctx, err))
				return
			}
			writeProblem(w, r, recordWriteProblem(ctx, err))
		}
		if idempotent {
			if done := d.replayFleet(w, r, id); done {
				return
			}
		}

		open, _, err := openRecords(ctx, d.Hub)
		if err != nil {
			fail(err, callQuery)
			return
		}
		if len(open) >= maxOpenFleetReboots {
			writeProblem(w, r, problem{Status: http.StatusConflict, ErrorCode: codeTooManyFleetReboots,
				Detail: fmt.Sprintf("%d fleet reboots have not ended, the most there may be at once; nothing was created. Wait for one to end, or cancel one.", len(open))})
			return
		}
		var openIDs []string
		for _, o := range open {
			openIDs = append(openIDs, o.ID)
		}
		selected, err := countDevices(ctx, d.Hub, spec.condition)
		if err != nil {
			fail(err, callQuery)
			return
		}
		if selected == 0 {
			writeProblem(w, r, badRequest(codeNoDevicesSelected, "The selection matches no device; nothing was created."))
			return
		}
		excluded := 0
		if len(openIDs) > 0 {
			if excluded, err = countDevices(ctx, d.Hub, and(spec.condition, busyCondition(openIDs))); err != nil {
				fail(err, callQuery)
				return
			}
		}
		free := selected - excluded
		if free <= 0 {
			writeProblem(w, r, problem{Status: http.StatusConflict, ErrorCode: codeDevicesBusy,
				Detail: fmt.Sprintf("All %d selected devices belong to fleet reboots that have not finished; nothing was created. Cancel them or wait for them to end.", selected),
				Extra:  map[string]any{"selected": selected}})
			return
		}
		sizes, err := spec.waves.Sizes(free)
		if err != nil {
			writeProblem(w, r, badRequest(codeInvalidArgument, "waves: "+err.Error()+"."))
			return
		}

		now := d.Now()
		rec := rollout.Record{
			ID: id, State: rollout.StateScheduled, CreatedAt: recordTime(now),
			Selection: spec.condition, ByDeviceIDs: spec.byDeviceIDs,
			Selected: selected, Excluded: excluded,
			Sizes:                  map[string]int{},
			IntervalSeconds:        int(spec.waves.Interval().Seconds()),
			Abort:                  spec.abort,
			ResponseTimeoutSeconds: int(spec.method.ResponseTimeout.Seconds()),
			ConnectTimeoutSeconds:  int(spec.method.ConnectTimeout.Seconds()),
			DelaySeconds:           spec.method.DelaySeconds,
		}
		for i, s := range sizes {
			rec.Sizes[rollout.WaveKey(i+1)] = s
		}
		head, err := d.writeHead(ctx, spec.condition, openIDs, rec, idempotent)
		switch {
		case err == errNoFreeDevice:
			writeProblem(w, r, problem{Status: http.StatusConflict, ErrorCode: codeDevicesBusy,
				Detail: "The selected devices were taken by other fleet reboots while this one was being created; nothing was created."})
			return
		case err == errFleetExists:
			// A concurrent request with the same Idempotency-Key created it.
			if done := d.replayFleet(w, r, id); done {
				return
			}
			fail(err, callClaim)
			return
		case err != nil:
			fail(err, callClaim)
			return
		}
		d.logFleet(ctx, slog.LevelInfo, "fleet reboot created", id, slog.String("headDeviceId", head.HeadID),
			slog.Int("devices", free), slog.Int("excluded", excluded), slog.Int("waves", len(sizes)))
		d.writeFleetStatus(w, r, d.fleetStatusOf(ctx, r, head, false))
	})
}

// replayFleet answers a retried request from the record its first attempt
// wrote, if there is one.
func (d Deps) replayFleet(w http.ResponseWriter, r *http.Request, id string) bool {
	rec, err := findRecord(r.Context(), d.Hub, id)
	if err != nil {
		if r.Context().Err() == nil {
			writeProblem(w, r, hubProblem(r.Context(), err, callQuery, ""))
		}
		return true
	}
	if rec == nil {
		return false
	}
	d.logFleet(r.Context(), slog.LevelInfo, "fleet reboot request replayed", id)
	w.Header().Set(headerIdempotentReplayed, "true")
	st := d.fleetStatusOf(r.Context(), r, rec, false)
	st.Replayed = true
	// A finished fleet reboot still answers with its Location, as the
	// first answer did.
	w.Header().Set("Location", st.StatusURL)
	d.writeFleetStatus(w, r, st)
	return true
}

var (
	errNoFreeDevice = errors.New("no selected device is free")
	errFleetExists  = errors.New("a concurrent request created the fleet reboot")
)

// writeHead writes the record, and the first wave's membership, on the
// first free device of the selection, preferring devices that keep no
// other fleet reboot's record. Same data, same first device: two racing
// first attempts of one Idempotency-Key pick the same device, and its
// etag lets only one of them write.
//
// Only requests of one key share an id, so only keyed requests (keyed)
// look for a concurrent winner; a request with a fresh id has none, and
// once its record is written it exists, whatever a later read says.
func (d Deps) writeHead(ctx context.Context, condition string, openIDs []string, rec rollout.Record, keyed bool) (*fleetRecord, error) {
	lastErr := errNoFreeDevice
	var refused []string // devices whose tags cannot take the record
	for range maxHeadAttempts {
		cond := condition
		if len(refused) > 0 {
			cond = and(condition, "deviceId NIN "+literalList(refused))
		}
		row, err := firstFree(ctx, d.Hub, cond, openIDs)
		if err != nil {
			return nil, err
		}
		if row == nil {
			return nil, errNoFreeDevice
		}
		patch, err := recordPatch(rec)
		if err != nil {
			return nil, err
		}
		// The device may keep an ended fleet reboot's record: the new one
		// replaces it whole, or the old one's cancel request, results and
		// waves would merge into it.
		var old map[string]any
		if json.Unmarshal(row.Record, &old) == nil && old != nil {
			patch[recordTag] = replacing(old, patch[recordTag].(map[string]any))
		}
		patch[memberTag] = map[string]any{"id": rec.ID, "wave": 1}
		etag := azcore.ETag(row.ETag)
		resp, err := d.Hub.UpdateTwin(ctx, row.DeviceID, iothub.TwinPatch{Tags: patch}, &iothub.UpdateTwinOptions{IfMatch: &etag})
		if isHubError(err, iothub.PreconditionFailed) {
			// The device changed: another request may have made it the
			// head of this very fleet reboot (the same Idempotency-Key).
			if keyed {
				if existing, err := findRecord(ctx, d.Hub, rec.ID); err != nil || existing != nil {
					return nil, cmp.Or(err, errFleetExists)
				}
			}
			lastErr = errRecordChanged
			continue
		}
		if hubStatus(err) == http.StatusBadRequest {
			// Its 8 KB of tags are too full for the record: another
			// selected device keeps it.
			refused, lastErr = append(refused, row.DeviceID), err
			continue
		}
		if err != nil {
			return nil, err
		}
		head := &fleetRecord{Record: rec, HeadID: row.DeviceID, ETag: string(resp.ETag)}
		if !keyed {
			return head, nil
		}
		// A concurrent request with the same key may have written its
		// record on another device meanwhile: the smallest device id is
		// the record (queryRecords), and a loser takes its own back.
		winner, err := findRecord(ctx, d.Hub, rec.ID)
		if err != nil {
			return nil, err
		}
		if winner != nil && winner.HeadID != head.HeadID {
			if err := removeRecord(ctx, d.Hub, head, true); err != nil {
				return nil, err
			}
			return nil, errFleetExists
		}
		return head, nil
	}
	return nil, lastErr
}

// deviceRow is a device id with its twin's etag.
type deviceRow struct {
	DeviceID string `json:"deviceId"`
	ETag     string `json:"etag"`
}

// firstFree returns the first device the condition selects that belongs
// to no open fleet reboot, preferring one without a record, with the
// record it keeps; nil if none.
func firstFree(ctx context.Context, hub *iothub.Client, condition string, openIDs []string) (*recordRow, error) {
	free := and(condition, freeCondition(openIDs))
	for _, cond := range []string{and(free, "NOT IS_DEFINED(tags."+recordTag+")"), free} {
		page, err := hub.NewQueryPager("SELECT TOP 1 deviceId, etag, tags."+recordTag+" FROM devices"+where(cond), nil).NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, raw := range page.Items {
			var row recordRow
			if json.Unmarshal(raw, &row) == nil && row.DeviceID != "" {
				return &row, nil
			}
		}
	}
	return nil, nil
}

// handleFleetRebootCancel serves POST /api/reboots/{fleetId}/cancel: it
// records the request in the record (and cancels the current wave's job if
// IoT Hub has not started it yet); FleetRebootTimer ends the fleet reboot
// at its next run. No wave starts once the request is recorded. A wave
// whose job is running cannot be stopped (IoT Hub cannot cancel a running
// job): it finishes, and its devices' outcomes are reported. 202 with
// Location; 409 when the fleet reboot has already ended.
func handleFleetRebootCancel(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec, ok := d.lookupFleet(w, r)
		if !ok {
			return
		}
		ctx := r.Context()
		for attempt := 0; ; attempt++ {
			if rec.State.Finished() {
				writeProblem(w, r, problem{Status: http.StatusConflict, ErrorCode: codeFleetRebootFinished,
					Detail: fmt.Sprintf("Fleet reboot %s has already ended (%s); there is nothing to cancel.", rec.ID, rec.State),
					Extra:  map[string]any{"state": rec.State}})
				return
			}
			if rec.CancelRequestedAt != "" {
				break // a retried cancel
			}
			err := rec.save(ctx, d.Hub, func(r *rollout.Record) { r.CancelRequestedAt = recordTime(d.Now()) })
			if err == nil {
				d.logFleet(ctx, slog.LevelInfo, "fleet reboot cancel requested", rec.ID, slog.Int("wave", rec.Wave))
				break
			}
			if err != errRecordChanged || attempt == maxHeadAttempts-1 {
				if ctx.Err() == nil {
					writeProblem(w, r, recordWriteProblem(ctx, err))
				}
				return
			}
			fresh, err := findRecord(ctx, d.Hub, rec.ID)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					writeProblem(w, r, hubProblem(ctx, err, callQuery, ""))
				}
				return
			case fresh == nil: // its head was deleted meanwhile
				writeProblem(w, r, fleetNotFound(rec.ID))
				return
			}
			rec = fresh
		}
		if rec.State == rollout.StateRunning && rec.Wave > 0 {
			if _, ok := rec.Result(rec.Wave); !ok {
				d.cancelWaveJob(ctx, rec.ID, rec.Wave)
			}
		}
		d.writeFleetStatus(w, r, d.fleetStatusOf(ctx, r, rec, false))
	})
}

// recordWriteProblem is the problem for a failed write of a fleet
// reboot's record: a twin that changed under every attempt is said as
// such (a retry will do), and a refusal of the app's identity names what
// fleet reboots need, which is more than an Idempotency-Key's claim.
func recordWriteProblem(ctx context.Context, err error) problem {
	if errors.Is(err, errRecordChanged) {
		return internalError("The twin that keeps the fleet reboot's record changed during every attempt to write it; nothing was written. Retry.")
	}
	p := hubProblem(ctx, err, callClaim, "")
	if s := hubStatus(err); s == http.StatusUnauthorized || s == http.StatusForbidden {
		p.Detail = fmt.Sprintf("The IoT Hub refused the app's twin update with HTTP %d %s. Fleet reboots write twin tags (ServiceConnect, or the twins/write data action) and create jobs (RegistryWrite, or jobs/read and jobs/write): a policy such as serviceAndRegistryReadWrite. Nothing was written.", s, hubErrorCode(err))
	}
	return p
}

// cancelWaveJob cancels wave's job if IoT Hub has not started it; a
// running or finished job answers 405, and a job not created yet 404,
// which change nothing.
func (d Deps) cancelWaveJob(ctx context.Context, id string, wave int) {
	_, err := d.Hub.CancelJob(ctx, rollout.WaveJobID(id, wave), nil)
	switch {
	case err == nil:
		d.logFleet(ctx, slog.LevelInfo, "fleet reboot wave's job cancelled before it started", id, slog.Int("wave", wave))
	case isHubError(err, iothub.OperationNotAllowedInCurrentState), isHubError(err, iothub.JobNotFound):
	default:
		d.logFleet(ctx, slog.LevelWarn, "cancelling the wave's job failed; the wave runs to its end", id,
			append([]slog.Attr{slog.Int("wave", wave)}, hubErrorAttrs(err)...)...)
	}
}
