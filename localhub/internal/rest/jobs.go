package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/query"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// Jobs v2 (scheduled jobs): PUT /jobs/v2/{id}, GET /jobs/v2/{id},
// POST /jobs/v2/{id}/cancel, GET /jobs/v2/query. What each field means and
// where each answer comes from: docs/iothub-jobs.md.

// itemTypeJobResponse is x-ms-item-type for GET /jobs/v2/query: the C#
// SDK parses the header with Enum.Parse and insists on JobResponse
// (azure-iot-sdk-csharp Query.GetNextAsJobResponseAsync).
const itemTypeJobResponse = "JobResponse"

// notEnded is the endTime IoT Hub reports for a job that has not ended
// (.NET's DateTime.MaxValue; Azure/remote-monitoring-services-java#39).
var notEnded = time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)

// jobResponseJSON is the service API's JobResponse.
type jobResponseJSON struct {
	JobID                     string             `json:"jobId"`
	QueryCondition            string             `json:"queryCondition"`
	CreatedTime               time.Time          `json:"createdTime"`
	StartTime                 time.Time          `json:"startTime"`
	EndTime                   time.Time          `json:"endTime"`
	MaxExecutionTimeInSeconds int64              `json:"maxExecutionTimeInSeconds"`
	Type                      jobs.Type          `json:"type"`
	CloudToDeviceMethod       *jobMethodJSON     `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage    `json:"updateTwin,omitempty"`
	Status                    jobs.Status        `json:"status"`
	FailureReason             string             `json:"failureReason,omitempty"`
	DeviceJobStatistics       deviceJobStatsJSON `json:"deviceJobStatistics"`
}

// jobMethodJSON is the service API's CloudToDeviceMethod as a job reports
// it back.
type jobMethodJSON struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int64           `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int64           `json:"connectTimeoutInSeconds"`
}

type deviceJobStatsJSON struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

func toJobJSON(j jobs.Job) jobResponseJSON {
	out := jobResponseJSON{
		JobID:                     j.ID,
		QueryCondition:            j.QueryCondition,
		CreatedTime:               j.CreatedTime.UTC(),
		StartTime:                 j.StartTime.UTC(),
		EndTime:                   notEnded,
		MaxExecutionTimeInSeconds: int64(j.MaxExecutionTime / time.Second),
		Type:                      j.Type,
		Status:                    j.Status,
		FailureReason:             j.FailureReason,
		DeviceJobStatistics:       deviceJobStatsJSON(j.Statistics),
	}
	if j.Status.Finished() {
		out.EndTime = j.EndTime.UTC()
	}
	if m := j.Method; m != nil {
		payload := json.RawMessage(m.Payload)
		if payload == nil {
			payload = json.RawMessage("null")
		}
		out.CloudToDeviceMethod = &jobMethodJSON{
			MethodName:               m.Name,
			Payload:                  payload,
			ResponseTimeoutInSeconds: int64(m.ResponseTimeout / time.Second),
			ConnectTimeoutInSeconds:  int64(m.ConnectTimeout / time.Second),
		}
	}
	if u := j.UpdateTwin; u != nil {
		out.UpdateTwin = u.Document
	}
	return out
}

// deviceJobJSON is one item of devices.jobs, as the query docs show it
// (query-jobs.md) with the error the C# SDK's DeviceJob reads.
type deviceJobJSON struct {
	DeviceID               string            `json:"deviceId"`
	JobID                  string            `json:"jobId"`
	JobType                jobs.Type         `json:"jobType"`
	Status                 jobs.DeviceStatus `json:"status"`
	StartTimeUtc           time.Time         `json:"startTimeUtc"`
	EndTimeUtc             time.Time         `json:"endTimeUtc"`
	CreatedDateTimeUtc     time.Time         `json:"createdDateTimeUtc"`
	LastUpdatedDateTimeUtc time.Time         `json:"lastUpdatedDateTimeUtc"`
	Outcome                outcomeJSON       `json:"outcome"`
	Error                  *deviceErrorJSON  `json:"error,omitempty"`
}

type outcomeJSON struct {
	// DeviceMethodResponse is the device's answer; null for twin updates
	// and for devices that did not answer.
	DeviceMethodResponse *methodResultJSON `json:"deviceMethodResponse"`
}

type methodResultJSON struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

type deviceErrorJSON struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

func toDeviceJobJSON(d jobs.DeviceJob) deviceJobJSON {
	out := deviceJobJSON{
		DeviceID:               d.DeviceID,
		JobID:                  d.JobID,
		JobType:                d.Type,
		Status:                 d.Status,
		StartTimeUtc:           d.StartTime.UTC(),
		EndTimeUtc:             d.EndTime.UTC(),
		CreatedDateTimeUtc:     d.CreatedTime.UTC(),
		LastUpdatedDateTimeUtc: d.LastUpdatedTime.UTC(),
	}
	if r := d.Response; r != nil {
		out.Outcome.DeviceMethodResponse = &methodResultJSON{Status: r.Status, Payload: r.Payload}
	}
	if e := d.Error; e != nil {
		out.Error = &deviceErrorJSON{Code: e.Code, Description: e.Description}
	}
	return out
}

// jobTypes are the job types the service API's swagger lists (JobRequest
// type); only the scheduled ones can be created with PUT /jobs/v2.
var jobTypes = []string{
	"unknown", "export", "import", "backup", "readDeviceProperties", "writeDeviceProperties",
	"updateDeviceConfiguration", "rebootDevice", "factoryResetDevice", "firmwareUpdate",
	"scheduleDeviceMethod", "scheduleUpdateTwin", "restoreFromBackup", "failoverDataCopy",
}

// jobStatuses are the statuses the swagger lists (JobResponse status).
var jobStatuses = []string{"unknown", "enqueued", "running", "completed", "failed", "cancelled", "scheduled", "queued"}

// canonical finds v in names, ignoring case: the C# SDKs send the enum
// member's name ("ScheduleDeviceMethod", "Completed") in the jobs query's
// filters (JobClient.BuildQueryJobUri, QueryClient.BuildQueryJobQueryString).
func canonical(names []string, v string) (string, bool) {
	for _, n := range names {
		if strings.EqualFold(n, v) {
			return n, true
		}
	}
	return "", false
}

// parseJobRequest decodes and validates the body of PUT /jobs/v2/{id}
// (the swagger's JobRequest). The engine checks what is not the wire's:
// the job id, the query condition, the twin patch's limits.
func parseJobRequest(pathID string, body []byte) (jobs.Spec, *hubError) {
	if isNull(body) {
		return jobs.Spec{}, errArgumentNull("The job in the request body is null.")
	}
	var wire struct {
		JobID                     *string         `json:"jobId"`
		Type                      *string         `json:"type"`
		CloudToDeviceMethod       json.RawMessage `json:"cloudToDeviceMethod"`
		UpdateTwin                json.RawMessage `json:"updateTwin"`
		QueryCondition            *string         `json:"queryCondition"`
		StartTime                 json.RawMessage `json:"startTime"`
		MaxExecutionTimeInSeconds json.RawMessage `json:"maxExecutionTimeInSeconds"`
	}
	if herr := unmarshal(body, &wire); herr != nil {
		return jobs.Spec{}, herr
	}
	spec := jobs.Spec{ID: pathID}
	if wire.JobID != nil && *wire.JobID != pathID {
		return jobs.Spec{}, errArgumentInvalid(fmt.Sprintf("The jobId in the body ('%s') is not the job id in the path ('%s').", *wire.JobID, pathID))
	}
	// IoT Hub cannot read a request whose type is not one of its job
	// types: "ErrorCode:GenericBadRequest;BadRequest"
	// (MicrosoftDocs/azure-docs#29484, for "scheduleDirectMethod").
	if wire.Type == nil {
		return jobs.Spec{}, errGenericBadRequest()
	}
	t, ok := canonical(jobTypes, *wire.Type)
	if !ok {
		return jobs.Spec{}, errGenericBadRequest()
	}
	spec.Type = jobs.Type(t)
	if wire.QueryCondition == nil || strings.TrimSpace(*wire.QueryCondition) == "" {
		return jobs.Spec{}, errArgumentNull("queryCondition is null or empty.")
	}
	spec.QueryCondition = *wire.QueryCondition

	var herr *hubError
	if spec.StartTime, herr = parseStartTime(wire.StartTime); herr != nil {
		return jobs.Spec{}, herr
	}
	if spec.MaxExecutionTime, herr = parseMaxExecutionTime(wire.MaxExecutionTimeInSeconds); herr != nil {
		return jobs.Spec{}, herr
	}

	switch spec.Type {
	case jobs.TypeDeviceMethod:
		if len(wire.CloudToDeviceMethod) == 0 || isNull(wire.CloudToDeviceMethod) {
			return jobs.Spec{}, errArgumentNull("cloudToDeviceMethod is null; a scheduleDeviceMethod job needs it.")
		}
		// The same rules as a direct call: name, timeouts, payload size.
		m, herr := parseMethodRequest(wire.CloudToDeviceMethod)
		if herr != nil {
			return jobs.Spec{}, herr
		}
		spec.Method = &jobs.Method{Name: m.Method, Payload: m.Payload, ResponseTimeout: m.ResponseTimeout, ConnectTimeout: m.ConnectTimeout}
	case jobs.TypeUpdateTwin:
		if len(wire.UpdateTwin) == 0 || isNull(wire.UpdateTwin) {
			return jobs.Spec{}, errArgumentNull("updateTwin is null; a scheduleUpdateTwin job needs it.")
		}
		u, herr := parseJobTwin(wire.UpdateTwin)
		if herr != nil {
			return jobs.Spec{}, herr
		}
		spec.UpdateTwin = u
	}
	return spec, nil
}

// parseStartTime reads startTime: absent is "now" (the az CLI omits it);
// a time in the past is accepted and starts the job at once (the SDKs send
// "now", which is past by the time it arrives, and C# sends
// 0001-01-01T00:00:00 when unset). null is refused: "the service requires
// actual values" (azure-iot-sdk-node 10284ea, fixing #847).
func parseStartTime(raw json.RawMessage) (time.Time, *hubError) {
	if len(raw) == 0 {
		return time.Time{}, nil
	}
	bad := errFormat("startTime must be an ISO 8601 date and time, such as 2024-05-06T07:08:09Z.")
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return time.Time{}, bad
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// A time without a zone is UTC, as .NET's DateTime of kind
	// Unspecified or Utc serializes it.
	if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, bad
}

// parseMaxExecutionTime reads maxExecutionTimeInSeconds: absent or 0 is
// the default (the C# SDK leaves 0 out, amenzhinsky sends 0), a whole
// number of seconds otherwise.
func parseMaxExecutionTime(raw json.RawMessage) (time.Duration, *hubError) {
	if len(raw) == 0 {
		return 0, nil
	}
	limit := int64(jobs.MaxExecutionTimeLimit / time.Second)
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	// json.Number would also take a numeric string ("60"); the wire type
	// is a number.
	if isNull(raw) || bytes.TrimSpace(raw)[0] == '"' || dec.Decode(&n) != nil {
		return 0, errFormat("maxExecutionTimeInSeconds must be a number of seconds.")
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) {
		return 0, errFormat("maxExecutionTimeInSeconds must be a whole number of seconds.")
	}
	if f < 0 || f > float64(limit) {
		return 0, errArgumentInvalid(fmt.Sprintf("maxExecutionTimeInSeconds must be within [0; %d].", limit))
	}
	return time.Duration(f) * time.Second, nil
}

// parseJobTwin reads updateTwin: a twin (or patch) whose tags and desired
// properties are applied to each device, as PATCH /twins/{id} would. A
// twin read back carries hub-maintained fields; they are ignored, as the
// twin API ignores them. The etag must match every twin: only "*" (or
// none) does; any other fails with 412 (Azure/azure-iot-sdk-csharp#1680;
// the docs: "The updateTwin property requires a valid etag match").
func parseJobTwin(raw json.RawMessage) (*jobs.TwinUpdate, *hubError) {
	var wire struct {
		ETag       *string        `json:"etag"`
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired  map[string]any  `json:"desired"`
			Reported json.RawMessage `json:"reported"`
		} `json:"properties"`
	}
	if herr := unmarshal(raw, &wire); herr != nil {
		return nil, herr
	}
	if wire.ETag != nil && strings.Trim(*wire.ETag, `"`) != "*" {
		return nil, errPreconditionFailed("The etag in the request does not match the etag of the existing resource, as per RFC7232; a scheduled twin update takes the etag '*'.")
	}
	if herr := checkReported(wire.Properties.Reported); herr != nil {
		return nil, herr
	}
	desired := wire.Properties.Desired
	delete(desired, "$metadata")
	delete(desired, "$version")
	if wire.Tags == nil && desired == nil {
		return nil, errArgumentInvalid("updateTwin changes nothing: it has neither tags nor properties.desired.")
	}
	return &jobs.TwinUpdate{
		Patch:    registry.TwinPatch{Tags: wire.Tags, Desired: desired},
		Document: append(json.RawMessage(nil), bytes.TrimSpace(raw)...),
	}, nil
}

// handleCreateJob serves PUT /jobs/v2/{id}. IoT Hub answers 200 with the
// job's id, type and status, which is always "queued" (iot-hub-devguide-jobs).
func handleCreateJob(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, herr := readBody(w, r)
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		spec, herr := parseJobRequest(r.PathValue("id"), body)
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		j, err := d.Jobs.Create(spec)
		if err != nil {
			writeError(w, d.Now(), classic, fromJobs(err, spec.ID))
			return
		}
		writeJSON(w, http.StatusOK, struct {
			JobID  string      `json:"jobId"`
			Type   jobs.Type   `json:"type"`
			Status jobs.Status `json:"status"`
		}{j.ID, j.Type, j.Status})
	})
}

func handleGetJob(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		j, err := d.Jobs.Get(id)
		if err != nil {
			writeError(w, d.Now(), classic, fromJobs(err, id))
			return
		}
		writeJSON(w, http.StatusOK, toJobJSON(j))
	})
}

// handleCancelJob serves POST /jobs/v2/{id}/cancel: a queued or scheduled
// job is cancelled at once and returned; a running or finished one cannot
// be.
func handleCancelJob(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		j, err := d.Jobs.Cancel(id)
		if err != nil {
			writeError(w, d.Now(), classic, fromJobs(err, id))
			return
		}
		writeJSON(w, http.StatusOK, toJobJSON(j))
	})
}

// handleQueryJobs serves GET /jobs/v2/query?jobType=&jobStatus=, paged as
// twin queries are. The SDKs page with x-ms-continuation and
// x-ms-max-item-count; the old jobs guide names query parameters
// continuationToken and pageSize, which are taken when the headers are
// absent.
func handleQueryJobs(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		params := r.URL.Query()
		var t jobs.Type
		if v := params.Get("jobType"); v != "" {
			c, ok := canonical(jobTypes, v)
			if !ok {
				writeError(w, d.Now(), classic, errArgumentInvalid(fmt.Sprintf("jobType '%s' is not a job type.", v)))
				return
			}
			t = jobs.Type(c)
		}
		var s jobs.Status
		if v := params.Get("jobStatus"); v != "" {
			c, ok := canonical(jobStatuses, v)
			if !ok {
				writeError(w, d.Now(), classic, errArgumentInvalid(fmt.Sprintf("jobStatus '%s' is not a job status.", v)))
				return
			}
			s = jobs.Status(c)
		}
		pageSize := maxItemCount(firstOf(r.Header.Get(headerMaxItemCount), params.Get("pageSize")))
		offset, herr := parseContinuation(firstOf(r.Header.Get(headerContinuation), params.Get("continuationToken")))
		if herr != nil {
			writeError(w, d.Now(), classic, herr)
			return
		}
		all, err := d.Jobs.List(t, s)
		if err != nil {
			writeError(w, d.Now(), classic, errServer(err.Error()))
			return
		}
		offset = min(offset, len(all))
		end := min(offset+pageSize, len(all))
		page := make([]jobResponseJSON, 0, end-offset)
		for _, j := range all[offset:end] {
			page = append(page, toJobJSON(j))
		}
		if end < len(all) {
			w.Header().Set(headerContinuation, formatContinuation(end))
		}
		w.Header().Set(headerItemType, itemTypeJobResponse)
		writeJSON(w, http.StatusOK, page)
	})
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// deviceJobDocuments are the devices.jobs items as query documents.
func deviceJobDocuments(d Deps) ([]map[string]any, error) {
	var docs []map[string]any
	err := d.Jobs.DeviceJobs(func(dj jobs.DeviceJob) error {
		doc, err := deviceJobDocument(toDeviceJobJSON(dj))
		if err != nil {
			return err
		}
		docs = append(docs, doc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return docs, nil
}

// deviceJobDocument is what json.Marshal then json.Unmarshal of w gives,
// built directly as twinDocument is, with the round trip for what the
// direct build cannot vouch for.
func deviceJobDocument(w deviceJobJSON) (map[string]any, error) {
	if doc, ok := directDeviceJobDocument(w); ok {
		return doc, nil
	}
	return roundTripDocument(w)
}

// directDeviceJobDocument builds roundTripDocument(w); false when it cannot
// vouch for that. Keep it field for field with deviceJobJSON.
func directDeviceJobDocument(w deviceJobJSON) (map[string]any, bool) {
	b := docBuilder{ok: true}
	doc := make(map[string]any, 10)
	doc["deviceId"] = b.str(w.DeviceID)
	doc["jobId"] = b.str(w.JobID)
	doc["jobType"] = b.str(string(w.JobType))
	doc["status"] = b.str(string(w.Status))
	doc["startTimeUtc"] = b.time(w.StartTimeUtc)
	doc["endTimeUtc"] = b.time(w.EndTimeUtc)
	doc["createdDateTimeUtc"] = b.time(w.CreatedDateTimeUtc)
	doc["lastUpdatedDateTimeUtc"] = b.time(w.LastUpdatedDateTimeUtc)
	var response any
	if r := w.Outcome.DeviceMethodResponse; r != nil {
		response = map[string]any{"status": b.integer(int64(r.Status)), "payload": b.raw(r.Payload)}
	}
	doc["outcome"] = map[string]any{"deviceMethodResponse": response}
	if e := w.Error; e != nil { // omitempty
		doc["error"] = map[string]any{"code": b.str(e.Code), "description": b.str(e.Description)}
	}
	return doc, b.ok
}

// SelectDevices is how the job engine selects a job's devices: the ids of
// the twins q selects, exactly as POST /devices/query would select them.
func SelectDevices(reg *registry.Store) func(*query.Query) ([]string, error) {
	return func(q *query.Query) ([]string, error) {
		docs, err := twinDocuments(reg)
		if err != nil {
			return nil, err
		}
		res, err := q.Run(docs)
		if err != nil {
			return nil, err
		}
		ids := make([]string, 0, len(res.Items))
		for _, item := range res.Items {
			doc, _ := item.(map[string]any)
			if id, ok := doc["deviceId"].(string); ok {
				ids = append(ids, id)
			}
		}
		return ids, nil
	}
}
