package iothub_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// jobWait bounds waits for a job to move.
const jobWait = 15 * time.Second

// waitJob polls GetJob until the job has finished.
func waitJob(t *testing.T, client *iothub.Client, id string) iothub.Job {
	t.Helper()
	var job iothub.Job
	require.Eventually(t, func() bool {
		resp, err := client.GetJob(t.Context(), id, nil)
		require.NoError(t, err)
		job = resp.Job
		return job.Status.Finished()
	}, jobWait, 20*time.Millisecond, "job %s did not finish", id)
	return job
}

// deviceJobs reads every page of a devices.jobs query.
func deviceJobs(t *testing.T, client *iothub.Client, query string, pageSize int32) (map[string]iothub.DeviceJob, []int) {
	t.Helper()
	pager := client.NewDeviceJobsPager(query, &iothub.QueryOptions{PageSize: pageSize})
	out := map[string]iothub.DeviceJob{}
	var sizes []int
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		require.NoError(t, err)
		sizes = append(sizes, len(page.DeviceJobs))
		for _, dj := range page.DeviceJobs {
			out[dj.DeviceID] = dj
		}
	}
	return out, sizes
}

// TestScheduleDeviceMethodJob: the whole client cycle against the local
// hub: schedule, watch, read each device's outcome page by page.
func TestScheduleDeviceMethodJob(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	// Jobs take the registry rights, devices.jobs queries ServiceConnect
	// (as every query): iothubowner has both.
	client := newServiceClient(t, hub, "iothubowner")
	for _, id := range []string{"m1", "m2"} {
		localhubtest.ConnectDevice(t, hub, createDevice(t, hub, id), localhubtest.Reply(200, `{"rebooting":true}`))
	}
	createDevice(t, hub, "m3") // offline

	resp, err := client.ScheduleDeviceMethod(t.Context(), "reboot-1", "STARTSWITH(deviceId, 'm')",
		iothub.MethodRequest{MethodName: "reboot", ResponseTimeout: 5 * time.Second}, nil)
	require.NoError(t, err)
	require.False(t, resp.Existing)
	require.Equal(t, "reboot-1", resp.JobID)
	require.Equal(t, iothub.JobTypeScheduleDeviceMethod, resp.Type)
	require.Equal(t, iothub.JobStatusQueued, resp.Status)

	job := waitJob(t, client, "reboot-1")
	require.Equal(t, iothub.JobStatusCompleted, job.Status)
	require.Equal(t, iothub.DeviceJobStatistics{DeviceCount: 3, SucceededCount: 2, FailedCount: 1}, job.Statistics)
	require.NotNil(t, job.EndTime)
	require.False(t, job.EndTime.Before(job.StartTime))
	require.Equal(t, iothub.DefaultMaxExecutionTime, job.MaxExecutionTime)
	require.Equal(t, "reboot", job.Method.MethodName)
	require.JSONEq(t, `null`, string(job.Method.Payload))
	require.Equal(t, 5*time.Second, job.Method.ResponseTimeout)

	items, sizes := deviceJobs(t, client, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot-1'", 2)
	require.Equal(t, []int{2, 1}, sizes)
	require.Len(t, items, 3)
	for _, id := range []string{"m1", "m2"} {
		dj := items[id]
		require.Equal(t, iothub.DeviceJobStatusCompleted, dj.Status, id)
		require.Equal(t, "reboot-1", dj.JobID)
		require.Equal(t, iothub.JobTypeScheduleDeviceMethod, dj.JobType)
		require.NotNil(t, dj.MethodResponse, id)
		require.Equal(t, 200, dj.MethodResponse.Status)
		require.JSONEq(t, `{"rebooting":true}`, string(dj.MethodResponse.Payload))
		require.Nil(t, dj.Error)
		require.Equal(t, time.Hour, dj.EndTime.Sub(dj.StartTime))
	}
	off := items["m3"]
	require.Equal(t, iothub.DeviceJobStatusFailed, off.Status)
	require.Nil(t, off.MethodResponse)
	require.Equal(t, iothub.DeviceNotOnline, off.Error.Code)

	// A query on another collection is not a device jobs query.
	_, err = client.NewDeviceJobsPager("SELECT * FROM devices", nil).NextPage(t.Context())
	require.ErrorContains(t, err, "devices.jobs")
}

// TestScheduleIsIdempotentByJobID: sending the same job again (a retry
// after a lost answer, or a restarted caller) returns the existing job;
// another definition under the same id is the hub's 409.
func TestScheduleIsIdempotentByJobID(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "iothubowner")
	createDevice(t, hub, "i1")
	start := time.Now().Add(time.Hour)
	method := iothub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay": 5}`), ConnectTimeout: 30 * time.Second}
	opts := &iothub.ScheduleDeviceMethodOptions{StartTime: start, MaxExecutionTime: 10 * time.Minute}

	first, err := client.ScheduleDeviceMethod(t.Context(), "wave-1", "deviceId = 'i1'", method, opts)
	require.NoError(t, err)
	require.False(t, first.Existing)

	again, err := client.ScheduleDeviceMethod(t.Context(), "wave-1", "deviceId = 'i1'", method, opts)
	require.NoError(t, err)
	require.True(t, again.Existing)
	require.Equal(t, "wave-1", again.JobID)
	require.Equal(t, iothub.JobStatusScheduled, again.Status, "the whole job, read back")
	require.Equal(t, start.UTC().Truncate(time.Second), again.StartTime.Truncate(time.Second))

	other := method
	other.MethodName = "factoryReset"
	_, err = client.ScheduleDeviceMethod(t.Context(), "wave-1", "deviceId = 'i1'", other, opts)
	requireCode(t, err, http.StatusConflict, iothub.JobAlreadyExists)
	_, err = client.ScheduleTwinUpdate(t.Context(), "wave-1", "deviceId = 'i1'", iothub.TwinPatch{Tags: map[string]any{"a": 1}}, nil)
	requireCode(t, err, http.StatusConflict, iothub.JobAlreadyExists)

	patch := iothub.TwinPatch{Tags: map[string]any{"rollout": map[string]any{"wave": 1}}}
	_, err = client.ScheduleTwinUpdate(t.Context(), "tag-1", "deviceId = 'i1'", patch, nil)
	require.NoError(t, err)
	tagAgain, err := client.ScheduleTwinUpdate(t.Context(), "tag-1", "deviceId = 'i1'", patch, nil)
	require.NoError(t, err)
	require.True(t, tagAgain.Existing)
}

// TestScheduleTwinUpdateJob: a twin update job merges its patch into every
// selected twin and the connected device is told of its desired change.
func TestScheduleTwinUpdateJob(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "iothubowner")
	dev := localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "t1"), echo)
	createDevice(t, hub, "t2")
	createDevice(t, hub, "other")

	_, err := client.ScheduleTwinUpdate(t.Context(), "tag-wave", "deviceId IN ['t1', 't2']", iothub.TwinPatch{
		Tags:    map[string]any{"rollout": "wave-1"},
		Desired: map[string]any{"fw": "2.0"},
	}, nil)
	require.NoError(t, err)
	job := waitJob(t, client, "tag-wave")
	require.Equal(t, iothub.JobStatusCompleted, job.Status)
	require.Equal(t, 2, job.Statistics.SucceededCount)
	require.JSONEq(t, `{"etag":"*","tags":{"rollout":"wave-1"},"properties":{"desired":{"fw":"2.0"}}}`, string(job.UpdateTwin))

	reader := newServiceClient(t, hub, "service")
	for _, id := range []string{"t1", "t2"} {
		twin, err := reader.GetTwin(t.Context(), id, nil)
		require.NoError(t, err)
		require.Equal(t, "wave-1", twin.Tags["rollout"], id)
		require.Equal(t, "2.0", twin.Properties.Desired["fw"], id)
	}
	twin, err := reader.GetTwin(t.Context(), "other", nil)
	require.NoError(t, err)
	require.Nil(t, twin.Tags)
	select {
	case body := <-dev.Desired:
		require.Contains(t, string(body), `"fw":"2.0"`)
	case <-time.After(jobWait):
		t.Fatal("the connected device got no desired notification")
	}

	items, _ := deviceJobs(t, client, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'tag-wave'", 0)
	require.Len(t, items, 2)
	require.Nil(t, items["t1"].MethodResponse, "twin updates have no method response")
}

// TestCancelAndListJobs: a scheduled job cancels; a running one cannot be;
// the jobs pager filters by type and status and pages.
func TestCancelAndListJobs(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "iothubowner")
	release := make(chan struct{})
	localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "c1"), func(localhubtest.MethodCall) *localhubtest.MethodReply {
		<-release
		return &localhubtest.MethodReply{Status: 200, Payload: []byte(`{}`)}
	})
	later := &iothub.ScheduleDeviceMethodOptions{StartTime: time.Now().Add(time.Hour)}
	for _, id := range []string{"later-1", "later-2"} {
		_, err := client.ScheduleDeviceMethod(t.Context(), id, "*", iothub.MethodRequest{MethodName: "reboot"}, later)
		require.NoError(t, err)
	}
	cancelled, err := client.CancelJob(t.Context(), "later-1", nil)
	require.NoError(t, err)
	require.Equal(t, iothub.JobStatusCancelled, cancelled.Status)
	require.NotNil(t, cancelled.EndTime)

	_, err = client.ScheduleDeviceMethod(t.Context(), "now-1", "deviceId = 'c1'", iothub.MethodRequest{MethodName: "reboot"}, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := client.GetJob(t.Context(), "now-1", nil)
		return err == nil && j.Status == iothub.JobStatusRunning && j.Statistics.RunningCount == 1
	}, jobWait, 20*time.Millisecond)
	_, err = client.CancelJob(t.Context(), "now-1", nil)
	requireCode(t, err, http.StatusMethodNotAllowed, iothub.OperationNotAllowedInCurrentState)
	close(release)
	waitJob(t, client, "now-1")

	_, err = client.GetJob(t.Context(), "no-such-job", nil)
	requireCode(t, err, http.StatusNotFound, iothub.JobNotFound)
	_, err = client.CancelJob(t.Context(), "no-such-job", nil)
	requireCode(t, err, http.StatusNotFound, iothub.JobNotFound)

	list := func(opts *iothub.ListJobsOptions) ([]string, int) {
		pager := client.NewListJobsPager(opts)
		var ids []string
		pages := 0
		for pager.More() {
			page, err := pager.NextPage(t.Context())
			require.NoError(t, err)
			pages++
			for _, j := range page.Jobs {
				ids = append(ids, j.JobID)
			}
		}
		return ids, pages
	}
	ids, pages := list(&iothub.ListJobsOptions{PageSize: 1})
	require.Equal(t, []string{"later-1", "later-2", "now-1"}, ids, "oldest first")
	require.Equal(t, 3, pages)
	ids, _ = list(&iothub.ListJobsOptions{Status: iothub.JobStatusCancelled})
	require.Equal(t, []string{"later-1"}, ids)
	ids, _ = list(&iothub.ListJobsOptions{Type: iothub.JobTypeScheduleDeviceMethod, Status: iothub.JobStatusCompleted})
	require.Equal(t, []string{"now-1"}, ids)
	ids, _ = list(&iothub.ListJobsOptions{Type: iothub.JobTypeScheduleUpdateTwin})
	require.Empty(t, ids)
}

// TestJobThrottling: with S1's quotas a second active job is refused with
// 429 ThrottlingMaxActiveJobCountExceeded until the first ends, and jobs
// operations are metered.
func TestJobThrottling(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, &localhub.Options{Quotas: localhub.Quotas{ConcurrentJobs: 1}})
	cs, err := hub.ServiceConnectionString("iothubowner")
	require.NoError(t, err)
	opts := hubOptions(hub, nil)
	opts.Retry = policy.RetryOptions{MaxRetries: -1} // see each 429 once
	client, err := iothub.NewClientFromConnectionString(cs, opts)
	require.NoError(t, err)

	later := &iothub.ScheduleDeviceMethodOptions{StartTime: time.Now().Add(time.Hour)}
	_, err = client.ScheduleDeviceMethod(t.Context(), "first", "*", iothub.MethodRequest{MethodName: "reboot"}, later)
	require.NoError(t, err)
	_, err = client.ScheduleDeviceMethod(t.Context(), "second", "*", iothub.MethodRequest{MethodName: "reboot"}, later)
	requireCode(t, err, http.StatusTooManyRequests, iothub.ThrottlingMaxActiveJobCountExceeded)
	// The job that holds the slot is recognised, not refused.
	again, err := client.ScheduleDeviceMethod(t.Context(), "first", "*", iothub.MethodRequest{MethodName: "reboot"}, later)
	require.NoError(t, err)
	require.True(t, again.Existing)

	_, err = client.CancelJob(t.Context(), "first", nil)
	require.NoError(t, err)
	_, err = client.ScheduleDeviceMethod(t.Context(), "second", "*", iothub.MethodRequest{MethodName: "reboot"}, later)
	require.NoError(t, err)

	metered := localhubtest.New(t, &localhub.Options{Quotas: localhub.Quotas{Jobs: 1.0 / 3600}})
	cs, err = metered.ServiceConnectionString("iothubowner")
	require.NoError(t, err)
	opts = hubOptions(metered, nil)
	opts.Retry = policy.RetryOptions{MaxRetries: -1}
	mc, err := iothub.NewClientFromConnectionString(cs, opts)
	require.NoError(t, err)
	_, err = mc.NewListJobsPager(nil).NextPage(t.Context())
	require.NoError(t, err)
	_, err = mc.GetJob(t.Context(), "any", nil)
	requireCode(t, err, http.StatusTooManyRequests, iothub.ThrottlingException)
}

// Jobs need the registry rights (IoT Hub's docs: "registry read and
// registry write"): reading takes RegistryRead, scheduling RegistryWrite;
// ServiceConnect alone is not enough.
func TestJobRights(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	method := iothub.MethodRequest{MethodName: "reboot"}
	_, err := newServiceClient(t, hub, "service").ScheduleDeviceMethod(t.Context(), "r1", "*", method, nil)
	requireCode(t, err, http.StatusUnauthorized, iothub.IotHubUnauthorizedAccess)
	_, err = newServiceClient(t, hub, "registryRead").ScheduleDeviceMethod(t.Context(), "r1", "*", method, nil)
	requireCode(t, err, http.StatusUnauthorized, iothub.IotHubUnauthorizedAccess)
	_, err = newServiceClient(t, hub, "registryReadWrite").ScheduleDeviceMethod(t.Context(), "r1", "*", method, nil)
	require.NoError(t, err)
	_, err = newServiceClient(t, hub, "registryRead").GetJob(t.Context(), "r1", nil)
	require.NoError(t, err)
	_, err = newServiceClient(t, hub, "service").GetJob(t.Context(), "r1", nil)
	requireCode(t, err, http.StatusUnauthorized, iothub.IotHubUnauthorizedAccess)
}
