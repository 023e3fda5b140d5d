package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// start selects a due job's devices, records them all as pending together
// with the job's new status (one commit: a running job always has its
// whole device list), and runs it. The devices are those the query selects
// now: devices added later are not part of the job, as on IoT Hub.
func (e *Engine) start(js *jobState) {
	defer e.wg.Done()
	e.mu.Lock()
	j, q := js.job, js.query
	e.mu.Unlock()

	ids, err := e.selectFn(q)
	if err != nil {
		e.logger.Error("job devices not selected", "jobId", j.ID, "err", err)
		e.fail(js, "The query condition could not be evaluated: "+err.Error())
		return
	}
	now := e.clock()
	j.Status = StatusRunning
	j.RunStartTime = now
	j.Statistics = Statistics{DeviceCount: len(ids), PendingCount: len(ids)}
	rec, err := encodeJob(j)
	if err != nil {
		e.fail(js, err.Error())
		return
	}
	pending, err := encodeDevice(DeviceJob{Status: DevicePending, LastUpdatedTime: now})
	if err != nil {
		e.fail(js, err.Error())
		return
	}
	devices := make([]registry.JobDevice, len(ids))
	for i, id := range ids {
		devices[i] = registry.JobDevice{DeviceID: id, Record: pending}
	}
	if err := e.store.WriteJob(registry.JobWrite{ID: j.ID, Record: rec, Devices: devices}); err != nil {
		e.logger.Error("job start not recorded", "jobId", j.ID, "err", err)
		e.fail(js, "The hub could not record the job's devices.")
		return
	}
	e.mu.Lock()
	js.job = j
	js.starting = false
	e.mu.Unlock()
	e.logger.Info("job started", "jobId", j.ID, "type", j.Type, "devices", len(ids))
	e.execute(js, ids)
}

// resume continues a job that was running when the hub stopped: devices
// still pending are run; devices recorded as running were in flight, so
// they are recorded as failed with ErrorOutcomeUnknown and never called
// again.
func (e *Engine) resume(js *jobState) {
	defer e.wg.Done()
	e.mu.Lock()
	j := js.job
	e.mu.Unlock()

	now := e.clock()
	unknownRec, err := encodeDevice(DeviceJob{Status: DeviceFailed, LastUpdatedTime: now, Error: &DeviceError{
		Code:        ErrorOutcomeUnknown,
		Description: "The hub stopped while the device's operation was in progress; the device may have received it, so the job does not repeat it.",
	}})
	if err != nil {
		e.fail(js, err.Error())
		return
	}
	var (
		stats   Statistics
		pending []string
		unknown []registry.JobDevice
	)
	err = e.store.JobDevices(j.ID, func(deviceID string, rec []byte) error {
		d, err := decodeDevice(j, deviceID, rec)
		if err != nil {
			return err
		}
		stats.DeviceCount++
		switch d.Status {
		case DevicePending:
			pending = append(pending, deviceID)
			stats.PendingCount++
		case DeviceRunning:
			unknown = append(unknown, registry.JobDevice{DeviceID: deviceID, Record: unknownRec})
			stats.FailedCount++
		case DeviceCompleted:
			stats.SucceededCount++
		default:
			stats.FailedCount++
		}
		return nil
	})
	if err != nil {
		e.logger.Error("job not resumed", "jobId", j.ID, "err", err)
		e.fail(js, "The hub could not read the job's devices after a restart.")
		return
	}
	if len(unknown) > 0 {
		// Should this fail, the devices stay "running" and are read as
		// unknown again on the next start: never called twice either way.
		if err := e.store.WriteJob(registry.JobWrite{ID: j.ID, Devices: unknown}); err != nil {
			e.logger.Error("unknown device outcomes not recorded", "jobId", j.ID, "err", err)
		}
		for _, d := range unknown {
			e.logger.Warn("device's job operation was in flight when the hub stopped; not repeated",
				"jobId", j.ID, "deviceId", d.DeviceID)
		}
	}
	e.mu.Lock()
	js.job.Statistics = stats
	js.starting = false
	e.mu.Unlock()
	e.logger.Info("job resumed", "jobId", j.ID, "pending", len(pending), "outcomeUnknown", len(unknown))
	e.execute(js, pending)
}

// execute runs the job on ids with at most e.concurrency device
// operations in flight, paced by e.pace, until every device is done or the
// job's maximum execution time has passed. A device whose turn comes after
// that is failed with ErrorJobExpired. Operations in flight at the
// deadline run to their own timeouts (at most connect + response timeout,
// 600 s), so a slow device holds the job no longer than that.
func (e *Engine) execute(js *jobState, ids []string) {
	e.mu.Lock()
	j := js.job
	e.mu.Unlock()
	deadline := j.RunStartTime.Add(j.MaxExecutionTime)
	jobCtx, cancel := context.WithTimeout(e.ctx, deadline.Sub(e.now()))
	defer cancel()

	var (
		mu      sync.Mutex
		expired int
		wg      sync.WaitGroup
	)
	// Devices whose turn comes too late fail as soon as that is known, so
	// devices.jobs shows them while calls still in flight finish.
	expire := func(ids ...string) {
		e.expire(js, j, ids)
		mu.Lock()
		expired += len(ids)
		mu.Unlock()
	}
	work := make(chan string)
	for range min(e.concurrency, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				if !e.admit(jobCtx) {
					if e.ctx.Err() == nil {
						expire(id)
					}
					continue
				}
				e.runDevice(js, j, id)
			}
		}()
	}
feed:
	for i, id := range ids {
		select {
		case work <- id:
		case <-jobCtx.Done():
			if e.ctx.Err() == nil {
				expire(ids[i:]...)
			}
			break feed
		}
	}
	close(work)
	wg.Wait()
	if e.ctx.Err() != nil {
		return // shutting down: the job resumes on the next Start
	}
	reason := ""
	if expired > 0 {
		reason = fmt.Sprintf("The job did not finish within its maxExecutionTimeInSeconds (%d): %d devices were not processed.",
			int64(j.MaxExecutionTime/time.Second), expired)
	}
	e.end(js, e.clock(), reason)
}

// expire records devices the job had no time for as failed.
func (e *Engine) expire(js *jobState, j Job, ids []string) {
	rec, err := encodeDevice(DeviceJob{Status: DeviceFailed, LastUpdatedTime: e.clock(), Error: &DeviceError{
		Code:        ErrorJobExpired,
		Description: "The job's maxExecutionTimeInSeconds passed before the device's turn; it was not called.",
	}})
	if err == nil {
		devices := make([]registry.JobDevice, len(ids))
		for i, id := range ids {
			devices[i] = registry.JobDevice{DeviceID: id, Record: rec}
		}
		err = e.store.WriteJob(registry.JobWrite{ID: j.ID, Devices: devices})
	}
	if err != nil {
		e.logger.Error("expired devices not recorded", "jobId", j.ID, "err", err)
	}
	e.count(js, func(s *Statistics) { s.PendingCount -= len(ids); s.FailedCount += len(ids) })
}

// admit waits for the device operations' pace; false when the job's time
// is up (or the engine closes) first.
func (e *Engine) admit(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	if e.pace == nil {
		return true
	}
	return e.pace.Wait(ctx) == nil
}

// runDevice records the intent, runs the device's operation and records
// its outcome. An operation abandoned because the engine is closing leaves
// the intent as the last record: an unknown outcome on the next start.
func (e *Engine) runDevice(js *jobState, j Job, id string) {
	if err := e.putDevice(j.ID, id, DeviceJob{Status: DeviceRunning, LastUpdatedTime: e.clock()}); err != nil {
		// Without a durable intent the device cannot be called safely.
		e.logger.Error("device job intent not recorded; device not called", "jobId", j.ID, "deviceId", id, "err", err)
		e.count(js, func(s *Statistics) { s.PendingCount--; s.FailedCount++ })
		return
	}
	e.count(js, func(s *Statistics) { s.PendingCount--; s.RunningCount++ })

	var (
		d  DeviceJob
		ok bool
	)
	switch j.Type {
	case TypeDeviceMethod:
		d, ok = e.callMethod(id, j.Method)
	case TypeUpdateTwin:
		d, ok = e.patchTwin(id, j.UpdateTwin)
	}
	if !ok {
		return
	}
	d.LastUpdatedTime = e.clock()
	if err := e.putDevice(j.ID, id, d); err != nil {
		e.logger.Error("device job outcome not recorded", "jobId", j.ID, "deviceId", id, "err", err)
	}
	e.count(js, func(s *Statistics) {
		s.RunningCount--
		if d.Status == DeviceCompleted {
			s.SucceededCount++
		} else {
			s.FailedCount++
		}
	})
}

func (e *Engine) putDevice(jobID, deviceID string, d DeviceJob) error {
	rec, err := encodeDevice(d)
	if err != nil {
		return err
	}
	return e.store.WriteJob(registry.JobWrite{ID: jobID, Devices: []registry.JobDevice{{DeviceID: deviceID, Record: rec}}})
}

// callMethod calls the job's method on a device, through the same device
// endpoint as a direct call, and turns its end into the device's record;
// false when the engine is closing.
func (e *Engine) callMethod(id string, m *Method) (DeviceJob, bool) {
	if _, err := e.store.GetDevice(id); errors.Is(err, registry.ErrDeviceNotFound) {
		return failed("DeviceNotFound", id), true
	}
	status, body, err := e.devices.InvokeMethod(e.ctx, id, m.Name, m.Payload, m.ResponseTimeout, m.ConnectTimeout)
	switch {
	case err == nil:
		return DeviceJob{Status: DeviceCompleted, Response: &MethodResponse{Status: status, Payload: replyJSON(body)}}, true
	case e.ctx.Err() != nil || errors.Is(err, directmethod.ErrClosed):
		return DeviceJob{}, false
	case errors.Is(err, directmethod.ErrDeviceNotOnline):
		return failed("DeviceNotOnline", "Timed out waiting for device to connect."), true
	case errors.Is(err, directmethod.ErrTimeout):
		return failed("GatewayTimeout", "Timed out waiting for the response from device."), true
	case errors.Is(err, directmethod.ErrTooManyCalls):
		return failed("ThrottlingException", fmt.Sprintf("Too many direct method calls are in progress for device '%s'.", id)), true
	case errors.Is(err, directmethod.ErrInvalidMethodName):
		return failed("ArgumentInvalid", "methodName cannot be delivered to the device."), true
	case errors.Is(err, directmethod.ErrPayloadTooLarge):
		return failed("MessageTooLarge", fmt.Sprintf("The method payload exceeds the maximum of %d bytes.", directmethod.MaxPayload)), true
	default:
		return failed("ServerError", err.Error()), true
	}
}

// patchTwin applies the job's patch to a device's twin, unconditionally
// (scheduled twin updates take only the etag "*").
func (e *Engine) patchTwin(id string, u *TwinUpdate) (DeviceJob, bool) {
	_, err := e.store.PatchTwin(id, u.Patch, "*")
	var inv *registry.InvalidError
	switch {
	case err == nil:
		return DeviceJob{Status: DeviceCompleted}, true
	case errors.Is(err, registry.ErrDeviceNotFound):
		return failed("DeviceNotFound", id), true
	case errors.As(err, &inv) && inv.Reason == registry.ReasonFormat:
		return failed("IotHubFormatError", inv.Msg), true
	case errors.As(err, &inv):
		return failed("ArgumentInvalid", inv.Msg), true
	default:
		return failed("ServerError", err.Error()), true
	}
}

func failed(code, description string) DeviceJob {
	return DeviceJob{Status: DeviceFailed, Error: &DeviceError{Code: code, Description: description}}
}

func (e *Engine) count(js *jobState, f func(*Statistics)) {
	e.mu.Lock()
	f(&js.job.Statistics)
	e.mu.Unlock()
}

// fail ends a job that could not run.
func (e *Engine) fail(js *jobState, reason string) {
	e.end(js, e.clock(), reason)
}

// end records a job's last status (failed when reason is set) and frees
// its slot.
func (e *Engine) end(js *jobState, now time.Time, reason string) {
	e.mu.Lock()
	j := js.job
	j.EndTime = now
	j.Status = StatusCompleted
	if reason != "" {
		j.Status = StatusFailed
		j.FailureReason = reason
	}
	rec, err := encodeJob(j)
	if err == nil {
		err = e.store.WriteJob(registry.JobWrite{ID: j.ID, Record: rec})
	}
	if err != nil {
		// The job stays running on disk; the next Start resumes it, finds
		// nothing left to do and ends it again.
		e.logger.Error("job end not recorded", "jobId", j.ID, "err", err)
	}
	js.job = j
	delete(e.active, j.ID)
	e.running--
	e.mu.Unlock()
	e.kick()
	e.logger.Info("job ended", "jobId", j.ID, "status", j.Status,
		"succeeded", j.Statistics.SucceededCount, "failed", j.Statistics.FailedCount)
}
