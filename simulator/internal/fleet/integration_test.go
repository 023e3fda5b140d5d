package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
	"github.com/iothub-reboot/devmgmt/simulator/internal/fleet"
	"github.com/iothub-reboot/devmgmt/simulator/internal/hubrest"
	"github.com/iothub-reboot/devmgmt/simulator/internal/hubtest"
)

// quick are fleet options for tests: short reboots, fast back-off.
func quick() fleet.Options {
	return fleet.Options{
		RebootDuration: 300 * time.Millisecond,
		Backoff:        device.Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		Seed:           1,
	}
}

func payloadMap(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "payload %s", raw)
	return m
}

func TestRebootThroughTheHub(t *testing.T) {
	t.Parallel()
	r := startRig(t, 1, quick())
	ctx := t.Context()
	id := r.ids[0]

	booted, err := r.hub.AwaitTwin(ctx, id, 10*time.Second, func(tw hubtest.Twin) bool {
		return tw.Properties.Reported.IothubDM.Reboot.Status == device.StatusRunning
	})
	require.NoError(t, err, "the device reports at boot")
	require.Nil(t, booted.Properties.Reported.IothubDM.Reboot.RequestID)

	asked := time.Now()
	res, err := r.hub.InvokeMethod(ctx, id, "reboot", map[string]any{"requestId": "req-42", "delaySeconds": 2}, 10)
	require.NoError(t, err)
	require.Equal(t, 200, res.Status)
	require.Equal(t, map[string]any{"result": "Reboot started", "requestId": "req-42"}, payloadMap(t, res.Payload))

	// The device replies first, then reports "rebooting", and stays up in
	// that state for delaySeconds.
	tw, err := r.hub.AwaitTwin(ctx, id, 1500*time.Millisecond, func(tw hubtest.Twin) bool {
		return tw.Properties.Reported.IothubDM.Reboot.Status == device.StatusRebooting
	})
	require.NoError(t, err)
	require.Equal(t, "req-42", *tw.Properties.Reported.IothubDM.Reboot.RequestID)
	require.Equal(t, booted.Properties.Reported.IothubDM.Reboot.LastReboot, tw.Properties.Reported.IothubDM.Reboot.LastReboot)

	tw, err = r.hub.AwaitTwin(ctx, id, 15*time.Second, func(tw hubtest.Twin) bool {
		return tw.Properties.Reported.IothubDM.Reboot.Status == device.StatusRunning
	})
	require.NoError(t, err, "the device comes back")
	rb := tw.Properties.Reported.IothubDM.Reboot
	require.NotNil(t, rb.RequestID)
	require.Equal(t, "req-42", *rb.RequestID, "the device echoes the request it rebooted for")
	last, err := rb.LastRebootTime()
	require.NoError(t, err)
	require.True(t, last.After(asked.Add(2*time.Second)), "lastReboot %v is after the request %v plus its delay", last, asked)
	require.Equal(t, "Connected", tw.ConnectionState)
	r.awaitStats(t, "one reboot counted", func(s device.Snapshot) bool { return s.Reboots == 1 && s.Connected == 1 })
}

func TestMethodEdgeCasesThroughTheHub(t *testing.T) {
	t.Parallel()
	r := startRig(t, 1, quick())
	id := r.ids[0]
	tests := []struct {
		name       string
		method     string
		payload    any
		wantStatus int
		wantReply  map[string]any
	}{
		{"unknown method", "factoryReset", map[string]any{"requestId": "x"}, 404, map[string]any{"error": `method "factoryReset" is not implemented`}},
		{"non-object payload", "reboot", "now please", 400, map[string]any{"error": "bad reboot payload: the payload must be a JSON object"}},
		{"array payload", "reboot", []int{1}, 400, map[string]any{"error": "bad reboot payload: the payload must be a JSON object"}},
		{"bad delay", "reboot", map[string]any{"delaySeconds": "soon"}, 400, map[string]any{"error": "bad reboot payload: delaySeconds must be a number from 0 to 86400"}},
		// Last: it reboots the device. payload null reaches the device as
		// null.
		{"null payload", "reboot", nil, 200, map[string]any{"result": "Reboot started"}},
	}
	for _, tt := range tests {
		res, err := r.hub.InvokeMethod(t.Context(), id, tt.method, tt.payload, 10)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.wantStatus, res.Status, tt.name)
		require.Equal(t, tt.wantReply, payloadMap(t, res.Payload), tt.name)
	}
	r.awaitStats(t, "the reboot with no payload", func(s device.Snapshot) bool { return s.Reboots == 1 && s.Connected == 1 })
	tw, err := r.hub.Twin(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, device.StatusRunning, tw.Properties.Reported.IothubDM.Reboot.Status)
	require.Nil(t, tw.Properties.Reported.IothubDM.Reboot.RequestID, "no requestId asked, none reported")
}

func TestOfflineAndFailingDevices(t *testing.T) {
	t.Parallel()
	opts := quick()
	opts.Faults = fleet.Faults{OfflineShare: 0.5, Faults: device.Faults{FailShare: 1}}
	r := startRig(t, 2, opts)
	ctx := t.Context()
	require.Len(t, r.fleet.Offline(), 1)
	offline, failing := r.fleet.Offline()[0], r.onlineIDs()[0]

	_, err := r.hub.InvokeMethod(ctx, offline, "reboot", map[string]any{"requestId": "r-1"}, 5)
	var re *hubrest.ResponseError
	require.True(t, errors.As(err, &re), "offline device: %v", err)
	require.Equal(t, 404, re.StatusCode)
	require.Equal(t, "DeviceNotOnline", re.ErrorCode)
	require.Contains(t, string(re.Body), "404103")

	res, err := r.hub.InvokeMethod(ctx, failing, "reboot", map[string]any{"requestId": "r-2"}, 5)
	require.NoError(t, err)
	require.Equal(t, 500, res.Status)
	require.Equal(t, map[string]any{"error": "Reboot failed", "reason": "injected fault: the reboot could not start", "requestId": "r-2"}, payloadMap(t, res.Payload))
	tw, err := r.hub.AwaitTwin(ctx, failing, 10*time.Second, func(tw hubtest.Twin) bool {
		return tw.Properties.Reported.IothubDM.Reboot.Status == device.StatusFailed
	})
	require.NoError(t, err)
	rb := tw.Properties.Reported.IothubDM.Reboot
	require.Equal(t, "r-2", *rb.RequestID)
	require.Equal(t, "injected fault: the reboot could not start", *rb.Reason)
	require.Equal(t, "Connected", tw.ConnectionState, "a failed reboot leaves the device up")
}

func TestDeviceThatNeverComesBack(t *testing.T) {
	t.Parallel()
	opts := quick()
	opts.Faults.NeverBackShare = 1
	r := startRig(t, 1, opts)
	ctx := t.Context()
	id := r.ids[0]

	res, err := r.hub.InvokeMethod(ctx, id, "reboot", map[string]any{"requestId": "r-3"}, 5)
	require.NoError(t, err)
	require.Equal(t, 200, res.Status)
	r.awaitStats(t, "the device gone", func(s device.Snapshot) bool { return s.Gone == 1 && s.Connected == 0 })

	tw, err := r.hub.AwaitTwin(ctx, id, 10*time.Second, func(tw hubtest.Twin) bool { return tw.ConnectionState == "Disconnected" })
	require.NoError(t, err)
	require.Equal(t, device.StatusRebooting, tw.Properties.Reported.IothubDM.Reboot.Status, "its last word")
	_, err = r.hub.InvokeMethod(ctx, id, "reboot", nil, 5)
	var re *hubrest.ResponseError
	require.True(t, errors.As(err, &re), "%v", err)
	require.Equal(t, "DeviceNotOnline", re.ErrorCode)
}

func TestSlowDeviceStillAnswersInTime(t *testing.T) {
	t.Parallel()
	opts := quick()
	opts.Faults.MethodLatency = 700 * time.Millisecond
	r := startRig(t, 1, opts)

	start := time.Now()
	res, err := r.hub.InvokeMethod(t.Context(), r.ids[0], "ping", nil, 5)
	require.NoError(t, err)
	require.Equal(t, 404, res.Status)
	require.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond)
}

func TestReconnectAfterHubRestart(t *testing.T) {
	t.Parallel()
	r := startRig(t, 3, quick())
	ctx := t.Context()
	id := r.ids[0]

	_, err := r.hub.InvokeMethod(ctx, id, "reboot", map[string]any{"requestId": "before-restart"}, 5)
	require.NoError(t, err)
	r.awaitStats(t, "the reboot done", func(s device.Snapshot) bool { return s.Reboots == 1 && s.Connected == 3 })
	before, err := r.hub.AwaitTwin(ctx, id, 10*time.Second, func(tw hubtest.Twin) bool {
		return tw.Properties.Reported.IothubDM.Reboot.Status == device.StatusRunning
	})
	require.NoError(t, err)

	r.hub.Restart(t)
	r.awaitStats(t, "every device reconnected", func(s device.Snapshot) bool { return s.Lost == 3 && s.Connected == 3 })

	after, err := r.hub.AwaitTwin(ctx, id, 10*time.Second, func(tw hubtest.Twin) bool {
		return tw.Properties.Reported.Version > before.Properties.Reported.Version
	})
	require.NoError(t, err, "the device re-reports after reconnecting")
	require.Equal(t, "Connected", after.ConnectionState)
	require.Equal(t, before.Properties.Reported.IothubDM.Reboot, after.Properties.Reported.IothubDM.Reboot, "the reported state is the same")

	res, err := r.hub.InvokeMethod(ctx, r.ids[2], "reboot", map[string]any{"requestId": "after-restart"}, 5)
	require.NoError(t, err)
	require.Equal(t, 200, res.Status)
	r.awaitStats(t, "a reboot after the restart", func(s device.Snapshot) bool { return s.Reboots == 2 && s.Connected == 3 })
}

// TestStopDisconnectsEveryDevice: Run returns only once every device has
// closed its connection, and the hub sees them gone.
func TestStopDisconnectsEveryDevice(t *testing.T) {
	t.Parallel()
	hub := hubtest.Start(t, localhubBin)
	ids := []string{"stop-1", "stop-2"}
	opts := quick()
	opts.Devices = members(t, hub, ids)
	f := fleet.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	waitCtx, waitCancel := context.WithTimeout(t.Context(), time.Minute)
	defer waitCancel()
	require.NoError(t, f.Stats().Wait(waitCtx, func(s device.Snapshot) bool { return s.Connected == 2 }))

	cancel()
	<-done
	require.Zero(t, f.Stats().Snapshot().Connected)
	for _, id := range ids {
		_, err := hub.AwaitTwin(t.Context(), id, 10*time.Second, func(tw hubtest.Twin) bool { return tw.ConnectionState == "Disconnected" })
		require.NoError(t, err)
	}
}
