package rest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/rest"
)

// The jobs API's bad input, answered as IoT Hub answers it (sources in
// docs/iothub-jobs.md). The device side here is the fake: what jobs do to
// real devices is tested with paho devices in package localhub.

const okMethod = `"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30}`

func TestCreateJobBadInput(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("d1")
	require.Equal(t, http.StatusOK, h.do(request{method: http.MethodPut, path: "/jobs/v2/taken",
		body: `{"jobId":"taken","type":"scheduleDeviceMethod","queryCondition":"*",` + okMethod + `}`}).status)

	big := `"` + strings.Repeat("x", 130*1024) + `"`
	tests := []struct {
		name, id, body string
		status         int
		code, msg      string
	}{
		{"job id with an underscore", "bad_id", `{"type":"scheduleDeviceMethod","queryCondition":"*",` + okMethod + `}`,
			400, "ArgumentInvalid", "Job id contains '_' at position 3"},
		{"job id too long", strings.Repeat("j", 65), `{"type":"scheduleDeviceMethod","queryCondition":"*",` + okMethod + `}`,
			400, "ArgumentInvalid", "the maximum is 64"},
		{"job id differs from the path", "j1", `{"jobId":"j2","type":"scheduleDeviceMethod","queryCondition":"*",` + okMethod + `}`,
			400, "ArgumentInvalid", "is not the job id in the path"},
		{"duplicate job id", "taken", `{"jobId":"taken","type":"scheduleDeviceMethod","queryCondition":"*",` + okMethod + `}`,
			409, "JobAlreadyExists", "A job with ID 'taken' already exists."},
		{"null body", "j1", `null`, 400, "ArgumentNull", "null"},
		{"not JSON", "j1", `{"type":`, 400, "IotHubFormatError", "not valid JSON"},
		{"no type", "j1", `{"queryCondition":"*",` + okMethod + `}`, 400, "GenericBadRequest", "BadRequest"},
		{"unknown type", "j1", `{"type":"scheduleDirectMethod","queryCondition":"*",` + okMethod + `}`, 400, "GenericBadRequest", "BadRequest"},
		{"import is not a scheduled job", "j1", `{"type":"import","queryCondition":"*"}`, 400, "ArgumentInvalid", "not a scheduled job type"},
		{"no query condition", "j1", `{"type":"scheduleDeviceMethod",` + okMethod + `}`, 400, "ArgumentNull", "queryCondition is null or empty"},
		{"blank query condition", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"  ",` + okMethod + `}`, 400, "ArgumentNull", "queryCondition"},
		{"bad query condition", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"tags.site = ",` + okMethod + `}`,
			400, "ArgumentInvalid", "queryCondition is not a valid query condition"},
		{"a whole query", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"SELECT * FROM devices",` + okMethod + `}`,
			400, "ArgumentInvalid", "queryCondition is not a valid query condition"},
		{"a module job", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"FROM devices.modules WHERE moduleId = 'm'",` + okMethod + `}`,
			400, "ArgumentInvalid", "devices.modules are not supported"},
		{"malformed start time", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","startTime":"tomorrow",` + okMethod + `}`,
			400, "IotHubFormatError", "startTime must be an ISO 8601 date and time"},
		{"null start time", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","startTime":null,` + okMethod + `}`,
			400, "IotHubFormatError", "startTime"},
		{"numeric start time", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","startTime":1714979289,` + okMethod + `}`,
			400, "IotHubFormatError", "startTime"},
		{"negative max execution time", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","maxExecutionTimeInSeconds":-1,` + okMethod + `}`,
			400, "ArgumentInvalid", "maxExecutionTimeInSeconds must be within"},
		{"null max execution time", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","maxExecutionTimeInSeconds":null,` + okMethod + `}`,
			400, "IotHubFormatError", "maxExecutionTimeInSeconds"},
		{"fractional max execution time", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","maxExecutionTimeInSeconds":1.5,` + okMethod + `}`,
			400, "IotHubFormatError", "whole number"},
		{"max execution time as a string", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","maxExecutionTimeInSeconds":"60",` + okMethod + `}`,
			400, "IotHubFormatError", "maxExecutionTimeInSeconds"},
		{"no method", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*"}`, 400, "ArgumentNull", "cloudToDeviceMethod is null"},
		{"empty method name", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":""}}`,
			400, "ArgumentInvalid", "methodName is null or empty"},
		{"method name with a slash", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":"a/b"}}`,
			400, "ArgumentInvalid", "invalid character '/'"},
		{"response timeout out of range", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":1}}`,
			400, "ArgumentInvalid", "responseTimeoutInSeconds must be within [5; 300]"},
		{"payload over 128 KB", "j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":"m","payload":` + big + `}}`,
			413, "MessageTooLarge", "the maximum is 131072 bytes"},
		{"no twin", "j1", `{"type":"scheduleUpdateTwin","queryCondition":"*"}`, 400, "ArgumentNull", "updateTwin is null"},
		{"twin with an etag", "j1", `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":{"etag":"AAAAAAAAAAE=","tags":{"a":1}}}`,
			412, "PreconditionFailed", "takes the etag '*'"},
		{"twin writing reported properties", "j1", `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":{"properties":{"reported":{"a":1}}}}`,
			400, "ArgumentInvalid", "only by the device"},
		{"twin changing nothing", "j1", `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":{"etag":"*"}}`,
			400, "ArgumentInvalid", "changes nothing"},
		{"twin with a bad key", "j1", `{"type":"scheduleUpdateTwin","queryCondition":"*","updateTwin":{"tags":{"a.b":1}}}`,
			400, "ArgumentInvalid", "updateTwin:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodPut, path: "/jobs/v2/" + tt.id, body: tt.body})
			require.Equal(t, tt.status, resp.status, string(resp.body))
			require.Equal(t, tt.code, resp.header.Get("iothub-errorcode"))
			msg, _ := decodeJSON(t, resp.body)["Message"].(string)
			require.True(t, strings.HasPrefix(msg, "ErrorCode:"+tt.code+";"), msg)
			require.Contains(t, msg, tt.msg)
		})
	}
	// Nothing but the first job was created, and no device was called.
	list := h.do(request{method: http.MethodGet, path: "/jobs/v2/query"})
	require.Equal(t, http.StatusOK, list.status)
	require.Equal(t, 1, strings.Count(string(list.body), `"jobId"`), string(list.body))
}

// What the SDKs send is accepted: C#'s default start time and twin with
// nulls, Node's payload null, amenzhinsky's zero start and maximum time,
// the CLI's missing start time and connect timeout.
func TestCreateJobAcceptsWhatSDKsSend(t *testing.T) {
	h := newTestHub(t)
	for _, tt := range []struct {
		name, id, body string
		wantMaxExec    float64
	}{
		{"csharp", "cs-1", `{"jobId":"cs-1","type":"scheduleUpdateTwin","queryCondition":"DeviceId IN ['d1']","startTime":"0001-01-01T00:00:00",` +
			`"updateTwin":{"deviceId":"d1","etag":null,"version":null,"tags":{"JobsSample_Tag":100},"properties":{"desired":{},"reported":{}}},"maxExecutionTimeInSeconds":120}`, 120},
		{"node", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", `{"jobId":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","type":"scheduleDeviceMethod",` +
			`"cloudToDeviceMethod":{"methodName":"lockDoor","payload":null,"responseTimeoutInSeconds":15},"startTime":"2024-05-06T07:08:00.000Z",` +
			`"maxExecutionTimeInSeconds":300,"queryCondition":"deviceId IN ['myDeviceId']"}`, 300},
		{"amenzhinsky", "go-1", `{"jobId":"go-1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"dist-upgrade","payload":{"time":"now"},"timeoutInSeconds":0},` +
			`"queryCondition":"deviceId='nonexisting'","startTime":"0001-01-01T00:00:00Z","maxExecutionTimeInSeconds":0}`, 3600},
		{"az cli", "cli-1", `{"jobId":"cli-1","type":"scheduleDeviceMethod","queryCondition":"*","maxExecutionTimeInSeconds":3600,` +
			`"cloudToDeviceMethod":{"methodName":"m","connectTimeoutInSeconds":30,"responseTimeoutInSeconds":30,"payload":{}}}`, 3600},
		{"type in another case", "case-1", `{"type":"ScheduleDeviceMethod","queryCondition":"*",` + okMethod + `}`, 3600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.do(request{method: http.MethodPut, path: "/jobs/v2/" + tt.id, body: tt.body})
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			require.Equal(t, "queued", decodeJSON(t, resp.body)["status"])
			job := decodeJSON(t, h.do(request{method: http.MethodGet, path: "/jobs/v2/" + tt.id}).body)
			require.Equal(t, tt.wantMaxExec, job["maxExecutionTimeInSeconds"])
			// A past start is moved to the creation time.
			require.Equal(t, fixedNow.Format(time.RFC3339Nano), job["startTime"])
			require.Equal(t, job["createdTime"], job["startTime"])
		})
	}
}

// The job's documents as IoT Hub spells them: the creation answer, the
// job (with DateTime.MaxValue for an end not yet come) and the errors'
// envelopes.
func TestJobDocuments(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("d1")
	start := fixedNow.Add(time.Hour).Format(time.RFC3339)
	body := `{"jobId":"doc-1","type":"scheduleDeviceMethod","queryCondition":"deviceId = 'd1'","startTime":"` + start + `",` +
		`"maxExecutionTimeInSeconds":600,"cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":20}}`
	golden(t, "jobs_create", h.do(request{method: http.MethodPut, path: "/jobs/v2/doc-1", body: body}))
	golden(t, "jobs_get_scheduled", waitJob(t, h, "doc-1", "scheduled"))
	golden(t, "jobs_cancel", h.do(request{method: http.MethodPost, path: "/jobs/v2/doc-1/cancel"}))
	golden(t, "jobs_query", h.do(request{method: http.MethodGet, path: "/jobs/v2/query?api-version=2021-04-12&jobType=scheduleDeviceMethod&jobStatus=cancelled"}))
	golden(t, "jobs_not_found", h.do(request{method: http.MethodGet, path: "/jobs/v2/nope"}))
	golden(t, "jobs_unknown_type", h.do(request{method: http.MethodPut, path: "/jobs/v2/doc-2", body: `{"type":"reboot","queryCondition":"*"}`}))
}

// waitJob polls a job until it has status and returns that response.
func waitJob(t *testing.T, h *testHub, id, status string) response {
	t.Helper()
	var resp response
	require.Eventually(t, func() bool {
		resp = h.do(request{method: http.MethodGet, path: "/jobs/v2/" + id})
		return resp.status == http.StatusOK && decodeJSON(t, resp.body)["status"] == status
	}, 10*time.Second, 10*time.Millisecond, "job %s never reached %s", id, status)
	return resp
}

func TestQueryJobsFiltersAndPages(t *testing.T) {
	h := newTestHub(t)
	later := fixedNow.Add(time.Hour).Format(time.RFC3339)
	for _, id := range []string{"a", "b", "c"} {
		resp := h.do(request{method: http.MethodPut, path: "/jobs/v2/" + id,
			body: `{"type":"scheduleDeviceMethod","queryCondition":"*","startTime":"` + later + `",` + okMethod + `}`})
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	}
	require.Equal(t, http.StatusOK, h.do(request{method: http.MethodPost, path: "/jobs/v2/b/cancel"}).status)

	// The C# SDKs send enum member names: ScheduleDeviceMethod, Cancelled.
	resp := h.do(request{method: http.MethodGet, path: "/jobs/v2/query?api-version=2021-04-12&jobType=ScheduleDeviceMethod&jobStatus=Cancelled"})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))
	require.Equal(t, "JobResponse", resp.header.Get("x-ms-item-type"))
	require.Equal(t, 1, strings.Count(string(resp.body), `"jobId"`))
	require.Contains(t, string(resp.body), `"jobId":"b"`)

	page := h.do(request{method: http.MethodGet, path: "/jobs/v2/query", headers: map[string]string{"x-ms-max-item-count": "2"}})
	require.Equal(t, 2, strings.Count(string(page.body), `"jobId"`))
	token := page.header.Get("x-ms-continuation")
	require.NotEmpty(t, token)
	next := h.do(request{method: http.MethodGet, path: "/jobs/v2/query", headers: map[string]string{"x-ms-max-item-count": "2", "x-ms-continuation": token}})
	require.Equal(t, http.StatusOK, next.status)
	require.Contains(t, string(next.body), `"jobId":"c"`)
	require.Empty(t, next.header.Get("x-ms-continuation"))
	// The old jobs guide's query parameters page too.
	old := h.do(request{method: http.MethodGet, path: "/jobs/v2/query?api-version=2021-04-12&pageSize=1&continuationToken=" + token})
	require.Equal(t, http.StatusOK, old.status, string(old.body))
	require.Equal(t, 1, strings.Count(string(old.body), `"jobId"`))

	for _, q := range []string{"jobType=nope", "jobStatus=nope"} {
		bad := h.do(request{method: http.MethodGet, path: "/jobs/v2/query?api-version=2021-04-12&" + q})
		require.Equal(t, http.StatusBadRequest, bad.status, q)
		require.Equal(t, "ArgumentInvalid", bad.header.Get("iothub-errorcode"))
	}
	bad := h.do(request{method: http.MethodGet, path: "/jobs/v2/query", headers: map[string]string{"x-ms-continuation": "garbage"}})
	require.Equal(t, http.StatusBadRequest, bad.status)
}

// Jobs operations draw on their own quota, and a second active job is
// refused on a hub allowing one.
func TestJobQuotas(t *testing.T) {
	h := newTestHubWith(t, func(o *depsOverride) { o.quotas = rest.Quotas{Jobs: 2, ConcurrentJobs: 1} })
	later := fixedNow.Add(time.Hour).Format(time.RFC3339)
	create := func(id string) response {
		return h.do(request{method: http.MethodPut, path: "/jobs/v2/" + id,
			body: `{"type":"scheduleDeviceMethod","queryCondition":"*","startTime":"` + later + `",` + okMethod + `}`})
	}
	require.Equal(t, http.StatusOK, create("one").status)
	second := create("two")
	require.Equal(t, http.StatusTooManyRequests, second.status, string(second.body))
	require.Equal(t, "ThrottlingMaxActiveJobCountExceeded", second.header.Get("iothub-errorcode"))
	// The clock stands still: the burst of two operations is used up.
	third := h.do(request{method: http.MethodGet, path: "/jobs/v2/one"})
	require.Equal(t, http.StatusTooManyRequests, third.status)
	require.Equal(t, "ThrottlingException", third.header.Get("iothub-errorcode"))
}
