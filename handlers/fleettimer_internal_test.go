package handlers

import (
	"log/slog"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers/internal/rollout"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// A cancel recorded after the timer read the record, but before the run
// created the wave's job, found no job to cancel: the run that created the
// job cancels it once it sees the request in the head's twin. The job here
// starts an hour ahead, so that it is still cancellable whatever the
// machine's speed; on IoT Hub a new job waits in the queue for a moment.
func TestCancelIfRequestedCancelsTheJobJustCreated(t *testing.T) {
	hub := localhubtest.New(t, nil)
	_, err := hub.CreateDevice("c-1")
	require.NoError(t, err)
	cs, err := hub.ServiceConnectionString("iothubowner")
	require.NoError(t, err)
	svc, err := iothub.NewClientFromConnectionString(cs, &iothub.ClientOptions{Endpoint: hub.HTTPSURL(),
		ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()}})
	require.NoError(t, err)
	d := Deps{Hub: svc, Logger: slog.New(slog.DiscardHandler), Now: time.Now}
	ctx := t.Context()

	const id = "0f8fad5b-d9cb-469f-a165-70867728950e"
	patch, err := recordPatch(rollout.Record{ID: id, State: rollout.StateRunning, Sizes: map[string]int{"1": 1}, Wave: 1, ResponseTimeoutSeconds: 30})
	require.NoError(t, err)
	patch[memberTag] = map[string]any{"id": id, "wave": 1}
	_, err = svc.UpdateTwin(ctx, "c-1", iothub.TwinPatch{Tags: patch}, nil)
	require.NoError(t, err)
	stale, err := findRecord(ctx, svc, id) // what the timer run read
	require.NoError(t, err)
	require.NotNil(t, stale)

	jobID := rollout.WaveJobID(id, 1)
	_, err = svc.ScheduleDeviceMethod(ctx, jobID, memberCondition(id, 1), iothub.MethodRequest{MethodName: rebootMethod, ResponseTimeout: 30 * time.Second},
		&iothub.ScheduleDeviceMethodOptions{StartTime: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	status := func() iothub.JobStatus {
		job, err := svc.GetJob(ctx, jobID, nil)
		require.NoError(t, err)
		return job.Status
	}

	d.cancelIfRequested(ctx, stale, 1)
	require.Equal(t, iothub.JobStatusScheduled, status(), "no cancel request: the job stays")

	// The cancel request lands between the run's read and its job.
	request := *stale
	require.NoError(t, request.save(ctx, svc, func(r *rollout.Record) { r.CancelRequestedAt = recordTime(time.Now()) }))
	d.cancelIfRequested(ctx, stale, 1)
	require.Equal(t, iothub.JobStatusCancelled, status(), "the run saw the request and cancelled its job")
}
