package localhub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// Acceptance tests of scheduled jobs (docs/iothub-jobs.md) against a real
// hub, on the wire, with devices played by paho over MQTT/TLS.

// jobWait bounds every wait for a job to move; jobs here take well under
// a second.
const jobWait = 15 * time.Second

// jobAPI speaks the jobs routes as the SDKs do.
type jobAPI struct {
	t   *testing.T
	svc *service
}

func newJobAPI(t *testing.T, hub *localhub.Hub) *jobAPI {
	return &jobAPI{t: t, svc: newService(t, hub)}
}

type apiResponse struct {
	status int
	header http.Header
	body   string
}

func (a *jobAPI) call(method, path string, params url.Values, body string, header map[string]string) apiResponse {
	a.t.Helper()
	if params == nil {
		params = url.Values{}
	}
	params.Set("api-version", "2021-04-12")
	req, err := http.NewRequestWithContext(context.Background(), method, a.svc.hub.HTTPSURL()+path+"?"+params.Encode(), strings.NewReader(body))
	require.NoError(a.t, err)
	req.Header.Set("Authorization", a.svc.token)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.svc.client.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return apiResponse{resp.StatusCode, resp.Header, string(b)}
}

func (a *jobAPI) put(id, body string) apiResponse {
	a.t.Helper()
	return a.call(http.MethodPut, "/jobs/v2/"+id, nil, body, nil)
}

func (a *jobAPI) get(id string) map[string]any {
	a.t.Helper()
	r := a.call(http.MethodGet, "/jobs/v2/"+id, nil, "", nil)
	require.Equal(a.t, http.StatusOK, r.status, r.body)
	return decodeObject(a.t, r.body)
}

func (a *jobAPI) cancel(id string) apiResponse {
	a.t.Helper()
	return a.call(http.MethodPost, "/jobs/v2/"+id+"/cancel", nil, "", nil)
}

// waitStatus polls the job until it has status, failing after jobWait.
func (a *jobAPI) waitStatus(id, status string) map[string]any {
	a.t.Helper()
	var job map[string]any
	require.Eventually(a.t, func() bool {
		job = a.get(id)
		return job["status"] == status
	}, jobWait, 20*time.Millisecond, "job %s never reached %s", id, status)
	return job
}

// deviceJobs runs SELECT * FROM devices.jobs WHERE <where> and returns
// its items by device id.
func (a *jobAPI) deviceJobs(where string) map[string]map[string]any {
	a.t.Helper()
	q, _ := json.Marshal(map[string]string{"query": "SELECT * FROM devices.jobs WHERE " + where})
	r := a.call(http.MethodPost, "/devices/query", nil, string(q), nil)
	require.Equal(a.t, http.StatusOK, r.status, r.body)
	require.Equal(a.t, "DeviceJob", r.header.Get("x-ms-item-type"))
	var items []map[string]any
	require.NoError(a.t, json.Unmarshal([]byte(r.body), &items))
	out := map[string]map[string]any{}
	for _, it := range items {
		out[it["deviceId"].(string)] = it
	}
	return out
}

func decodeObject(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	return m
}

// methodJob is a scheduleDeviceMethod request calling reboot; top and
// method are extra members (",\"startTime\":...") of the job and of its
// cloudToDeviceMethod.
func methodJob(id, cond, top, method string) string {
	return fmt.Sprintf(`{"jobId":%q,"type":"scheduleDeviceMethod","queryCondition":%q%s,`+
		`"cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":5%s}}`, id, cond, top, method)
}

func stats(job map[string]any) map[string]any {
	return job["deviceJobStatistics"].(map[string]any)
}

// counter counts the calls each device received, across restarts.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) handler(id string, reply *localhubtest.MethodReply) localhubtest.MethodHandler {
	return func(localhubtest.MethodCall) *localhubtest.MethodReply {
		c.mu.Lock()
		c.n[id]++
		c.mu.Unlock()
		return reply
	}
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

// TestJobRunsDeviceMethodOnSelectedDevices: a job queued at once runs and
// completes; connected devices get the method once, as a direct call, and
// answer; a registered but offline device fails with the code a direct
// call gets; devices outside the condition are left alone. Each device's
// outcome is in devices.jobs.
func TestJobRunsDeviceMethodOnSelectedDevices(t *testing.T) {
	hub := localhubtest.New(t, nil)
	api := newJobAPI(t, hub)
	devs := map[string]*localhubtest.Device{}
	for _, id := range []string{"d1", "d2", "d3"} {
		devs[id] = localhubtest.NewDevice(t, hub, id, localhubtest.Reply(200, `{"rebooting":true}`))
	}
	_, err := hub.CreateDevice("offline")
	require.NoError(t, err)
	outside := localhubtest.NewDevice(t, hub, "outside", localhubtest.Reply(200, `{}`))

	r := api.put("job-1", methodJob("job-1", "deviceId IN ['d1','d2','d3','offline']", "", ""))
	require.Equal(t, http.StatusOK, r.status, r.body)
	// IoT Hub's documented answer: id, type and status, always queued.
	require.JSONEq(t, `{"jobId":"job-1","type":"scheduleDeviceMethod","status":"queued"}`, r.body)

	job := api.waitStatus("job-1", "completed")
	require.Equal(t, map[string]any{"deviceCount": 4.0, "succeededCount": 3.0, "failedCount": 1.0, "runningCount": 0.0, "pendingCount": 0.0}, stats(job))
	require.Equal(t, "deviceId IN ['d1','d2','d3','offline']", job["queryCondition"])
	require.Equal(t, 3600.0, job["maxExecutionTimeInSeconds"], "the default")
	require.Equal(t, map[string]any{"methodName": "reboot", "payload": map[string]any{"delay": 1.0},
		"responseTimeoutInSeconds": 5.0, "connectTimeoutInSeconds": 0.0}, job["cloudToDeviceMethod"])
	end, err := time.Parse(time.RFC3339Nano, job["endTime"].(string))
	require.NoError(t, err)
	require.Less(t, end.Year(), 9999, "a finished job has a real end time")

	for id, d := range devs {
		call := d.NextCall(t)
		require.Equal(t, "reboot", call.Name, id)
		require.JSONEq(t, `{"delay":1}`, string(call.Payload), id)
		require.Empty(t, d.Calls, "%s was called more than once", id)
	}
	require.Empty(t, outside.Calls, "a device outside the condition was called")

	items := api.deviceJobs("devices.jobs.jobId = 'job-1'")
	require.Len(t, items, 4)
	for _, id := range []string{"d1", "d2", "d3"} {
		it := items[id]
		require.Equal(t, "completed", it["status"], id)
		require.Equal(t, "scheduleDeviceMethod", it["jobType"], id)
		require.Equal(t, map[string]any{"deviceMethodResponse": map[string]any{"status": 200.0, "payload": map[string]any{"rebooting": true}}}, it["outcome"], id)
		require.NotContains(t, it, "error", id)
	}
	off := items["offline"]
	require.Equal(t, "failed", off["status"])
	require.Equal(t, map[string]any{"deviceMethodResponse": nil}, off["outcome"])
	require.Equal(t, "DeviceNotOnline", off["error"].(map[string]any)["code"])

	// The job's window: started at its start, ends a maximum execution
	// time later (the query docs' example item).
	st, err := time.Parse(time.RFC3339Nano, off["startTimeUtc"].(string))
	require.NoError(t, err)
	en, err := time.Parse(time.RFC3339Nano, off["endTimeUtc"].(string))
	require.NoError(t, err)
	require.Equal(t, time.Hour, en.Sub(st))

	// Conditions on job properties select within the collection.
	failed := api.deviceJobs("devices.jobs.jobId = 'job-1' AND devices.jobs.status = 'failed'")
	require.Len(t, failed, 1)
	require.Contains(t, failed, "offline")
	byDevice := api.deviceJobs("devices.jobs.deviceId = 'd2'")
	require.Len(t, byDevice, 1)
}

// TestJobScheduledThenCancelled: a start time ahead makes a job
// "scheduled" (it was "queued" when accepted); cancelling it before it
// starts ends it "cancelled" at once, with no device touched, and
// cancelling it again returns it.
func TestJobScheduledThenCancelled(t *testing.T) {
	hub := localhubtest.New(t, nil)
	api := newJobAPI(t, hub)
	dev := localhubtest.NewDevice(t, hub, "d1", localhubtest.Reply(200, `{}`))

	start := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r := api.put("later", methodJob("later", "*", `,"startTime":"`+start+`","maxExecutionTimeInSeconds":120`, ""))
	require.Equal(t, http.StatusOK, r.status, r.body)
	require.JSONEq(t, `{"jobId":"later","type":"scheduleDeviceMethod","status":"queued"}`, r.body)

	job := api.waitStatus("later", "scheduled")
	require.Equal(t, start, job["startTime"])
	require.Equal(t, "9999-12-31T23:59:59.9999999Z", job["endTime"], "IoT Hub's end time of a job that has not ended")

	c := api.cancel("later")
	require.Equal(t, http.StatusOK, c.status, c.body)
	require.Equal(t, "cancelled", decodeObject(t, c.body)["status"])
	require.Equal(t, "cancelled", api.get("later")["status"])
	again := api.cancel("later")
	require.Equal(t, http.StatusOK, again.status, again.body)

	require.Empty(t, api.deviceJobs("devices.jobs.jobId = 'later'"))
	require.Empty(t, dev.Calls)
}

// TestRunningJobCannotBeCancelled: IoT Hub refuses to cancel a job once it
// runs ("Job cannot be cancelled in 'Running' status."); the job goes on
// and completes, and a finished job cannot be cancelled either.
func TestRunningJobCannotBeCancelled(t *testing.T) {
	hub := localhubtest.New(t, nil)
	api := newJobAPI(t, hub)
	release := make(chan struct{})
	localhubtest.NewDevice(t, hub, "slow", func(localhubtest.MethodCall) *localhubtest.MethodReply {
		<-release
		return &localhubtest.MethodReply{Status: 200, Payload: []byte(`"done"`)}
	})

	r := api.put("busy", methodJob("busy", "deviceId = 'slow'", "", ""))
	require.Equal(t, http.StatusOK, r.status, r.body)
	var job map[string]any
	require.Eventually(t, func() bool {
		job = api.get("busy")
		return job["status"] == "running" && stats(job)["runningCount"] == 1.0
	}, jobWait, 20*time.Millisecond)
	require.Equal(t, "9999-12-31T23:59:59.9999999Z", job["endTime"])
	require.Equal(t, "running", api.deviceJobs("devices.jobs.jobId = 'busy'")["slow"]["status"])

	c := api.cancel("busy")
	require.Equal(t, http.StatusMethodNotAllowed, c.status, c.body)
	require.Equal(t, "OperationNotAllowedInCurrentState", c.header.Get("iothub-errorcode"))
	require.Contains(t, c.body, `ErrorCode:OperationNotAllowedInCurrentState;Job cannot be cancelled in 'Running' status.`)

	close(release)
	api.waitStatus("busy", "completed")
	c = api.cancel("busy")
	require.Equal(t, http.StatusMethodNotAllowed, c.status, c.body)
	require.Contains(t, c.body, `in 'Completed' status`)
}

// TestJobFailsWhenItsTimeRunsOut: devices whose turn comes after the
// job's maximum execution time are not called; they fail, and so does the
// job. A call in flight at the deadline runs to its own end.
func TestJobFailsWhenItsTimeRunsOut(t *testing.T) {
	// One device operation every ten seconds: after the first device,
	// every turn comes after the ten-second maximum execution time, which
	// is known at once (the pace says when the next turn is). Ten seconds
	// leave the first device time to be called on a loaded machine.
	hub := localhubtest.New(t, &localhub.Options{Quotas: localhub.Quotas{JobDeviceOperations: 0.1}})
	api := newJobAPI(t, hub)
	release := make(chan struct{})
	called := make(chan string, 3)
	for _, id := range []string{"a1", "a2", "a3"} {
		localhubtest.NewDevice(t, hub, id, func(localhubtest.MethodCall) *localhubtest.MethodReply {
			called <- id
			<-release
			return &localhubtest.MethodReply{Status: 200, Payload: []byte(`{}`)}
		})
	}

	r := api.put("short", methodJob("short", "STARTSWITH(deviceId, 'a')", `,"maxExecutionTimeInSeconds":10`, ""))
	require.Equal(t, http.StatusOK, r.status, r.body)
	var first string
	select {
	case first = <-called:
	case <-time.After(jobWait):
		t.Fatal("no device was called")
	}
	require.Eventually(t, func() bool {
		return len(api.deviceJobs("devices.jobs.jobId = 'short' AND devices.jobs.status = 'failed'")) == 2
	}, jobWait, 20*time.Millisecond)
	for id, it := range api.deviceJobs("devices.jobs.jobId = 'short' AND devices.jobs.status = 'failed'") {
		require.NotEqual(t, first, id)
		require.Equal(t, "JobExecutionTimeExceeded", it["error"].(map[string]any)["code"], id)
	}
	require.Equal(t, "running", api.get("short")["status"], "the call in flight holds the job")

	close(release)
	job := api.waitStatus("short", "failed")
	require.Contains(t, job["failureReason"], "maxExecutionTimeInSeconds")
	require.Equal(t, map[string]any{"deviceCount": 3.0, "succeededCount": 1.0, "failedCount": 2.0, "runningCount": 0.0, "pendingCount": 0.0}, stats(job))
	require.Equal(t, "completed", api.deviceJobs("devices.jobs.jobId = 'short'")[first]["status"])
	require.Empty(t, called, "a device was called after the job's time ran out")
}

// TestJobResumesAfterRestartWithoutCallingAnyDeviceTwice: a hub stopped in
// the middle of a job resumes it on the same data dir. Devices not yet
// called are called once; a device whose call was in flight is never
// called again (its outcome is unknown); no device is called twice.
func TestJobResumesAfterRestartWithoutCallingAnyDeviceTwice(t *testing.T) {
	dataDir := t.TempDir()
	// One device a minute: the hub stops after the first call, with the
	// other devices waiting for their turn.
	hub1, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir, Quotas: localhub.Quotas{JobDeviceOperations: 1.0 / 60}})
	require.NoError(t, err)
	t.Cleanup(func() { hub1.Close() })
	calls := &counter{n: map[string]int{}}
	ids := []string{"r1", "r2", "r3", "r4", "r5", "r6"}
	connStrs := map[string]string{}
	for _, id := range ids {
		cs, err := hub1.CreateDevice(id)
		require.NoError(t, err)
		connStrs[id] = cs
		// Never answers: the call is still in flight when the hub stops.
		localhubtest.ConnectDevice(t, hub1, cs, calls.handler(id, nil))
	}
	api1 := newJobAPI(t, hub1)
	// connectTimeoutInSeconds lets the resumed job wait for devices
	// reconnecting to the restarted hub.
	r := api1.put("fleet", `{"jobId":"fleet","type":"scheduleDeviceMethod","queryCondition":"STARTSWITH(deviceId, 'r')",`+
		`"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":300,"connectTimeoutInSeconds":30}}`)
	require.Equal(t, http.StatusOK, r.status, r.body)
	var first string
	require.Eventually(t, func() bool {
		for _, id := range ids {
			if calls.get(id) > 0 {
				first = id
				return true
			}
		}
		return false
	}, jobWait, 10*time.Millisecond)
	require.NoError(t, hub1.Close())

	hub2 := localhubtest.New(t, &localhub.Options{DataDir: dataDir})
	for _, id := range ids {
		localhubtest.ConnectDevice(t, hub2, connStrs[id], calls.handler(id, &localhubtest.MethodReply{Status: 200, Payload: []byte(`"ok"`)}))
	}
	api2 := newJobAPI(t, hub2)
	job := api2.waitStatus("fleet", "completed")
	items := api2.deviceJobs("devices.jobs.jobId = 'fleet'")
	require.Len(t, items, len(ids))
	unknown := 0
	for _, id := range ids {
		n := calls.get(id)
		require.LessOrEqual(t, n, 1, "%s was called %d times", id, n)
		it := items[id]
		switch it["status"] {
		case "completed":
			require.Equal(t, 1, n, "%s completed", id)
		case "failed":
			require.Equal(t, "OutcomeUnknown", it["error"].(map[string]any)["code"], id)
			unknown++
		default:
			t.Fatalf("%s ended %v", id, it["status"])
		}
	}
	require.Equal(t, "failed", items[first]["status"], "%s's call was in flight at the stop", first)
	require.Less(t, unknown, len(ids), "devices waited and were called after the restart")
	require.Equal(t, float64(unknown), stats(job)["failedCount"])
	require.Equal(t, float64(len(ids)-unknown), stats(job)["succeededCount"])
}
