package iothub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/iothub-reboot/devmgmt/shared/jobid"
)

// Scheduled jobs (IoT Hub's jobs v2): a direct method or a twin update
// applied by the hub to every device a twin query selects, at a start
// time, within a maximum execution time. The hub records each device's
// outcome, which NewDeviceJobsPager reads (FROM devices.jobs). Jobs need
// the registry rights of a shared access policy (registryReadWrite or
// iothubowner; RegistryRead suffices to read and list them).

// JobType is a scheduled job's type.
type JobType string

const (
	JobTypeScheduleDeviceMethod JobType = "scheduleDeviceMethod"
	JobTypeScheduleUpdateTwin   JobType = "scheduleUpdateTwin"
)

// JobStatus is a job's status: "queued" when created, "scheduled" while its
// start time is ahead, "running", then "completed", "failed" or
// "cancelled". A job whose devices failed still completes: each device's
// outcome is in its DeviceJob.
type JobStatus string

const (
	JobStatusQueued    JobStatus = "queued"
	JobStatusScheduled JobStatus = "scheduled"
	JobStatusRunning   JobStatus = "running"
	JobStatusCompleted JobStatus = "completed"
	JobStatusFailed    JobStatus = "failed"
	JobStatusCancelled JobStatus = "cancelled"
)

// Finished reports whether the job has ended.
func (s JobStatus) Finished() bool {
	return s == JobStatusCompleted || s == JobStatusFailed || s == JobStatusCancelled
}

// DeviceJobStatus is a device's status within a job. IoT Hub spells it
// "canceled", with one l, unlike JobStatusCancelled.
type DeviceJobStatus string

const (
	DeviceJobStatusPending   DeviceJobStatus = "pending"
	DeviceJobStatusScheduled DeviceJobStatus = "scheduled"
	DeviceJobStatusRunning   DeviceJobStatus = "running"
	DeviceJobStatusCompleted DeviceJobStatus = "completed"
	DeviceJobStatusFailed    DeviceJobStatus = "failed"
	DeviceJobStatusCanceled  DeviceJobStatus = "canceled"
)

// DeviceJobStatistics count a job's devices by status. A device that
// answered a method counts as succeeded whatever status it answered with.
type DeviceJobStatistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// Job is a scheduled job as the hub reports it.
type Job struct {
	JobID          string
	Type           JobType
	Status         JobStatus
	QueryCondition string
	CreatedTime    time.Time
	StartTime      time.Time
	// EndTime is when the job ended; nil while it has not (the hub then
	// reports .NET's DateTime.MaxValue, 9999-12-31T23:59:59.9999999Z).
	EndTime          *time.Time
	MaxExecutionTime time.Duration
	// Method is the direct method of a scheduleDeviceMethod job.
	Method *MethodRequest
	// UpdateTwin is the twin document of a scheduleUpdateTwin job, as the
	// hub reports it.
	UpdateTwin    json.RawMessage
	FailureReason string
	StatusMessage string
	Statistics    DeviceJobStatistics
}

// jobJSON is the hub's JobResponse.
type jobJSON struct {
	JobID                     string              `json:"jobId"`
	QueryCondition            string              `json:"queryCondition"`
	CreatedTime               wireTime            `json:"createdTime"`
	StartTime                 wireTime            `json:"startTime"`
	EndTime                   wireTime            `json:"endTime"`
	MaxExecutionTimeInSeconds int64               `json:"maxExecutionTimeInSeconds"`
	Type                      JobType             `json:"type"`
	CloudToDeviceMethod       *jobMethodJSON      `json:"cloudToDeviceMethod"`
	UpdateTwin                json.RawMessage     `json:"updateTwin"`
	Status                    JobStatus           `json:"status"`
	FailureReason             string              `json:"failureReason"`
	StatusMessage             string              `json:"statusMessage"`
	DeviceJobStatistics       DeviceJobStatistics `json:"deviceJobStatistics"`
}

type jobMethodJSON struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds int64           `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  int64           `json:"connectTimeoutInSeconds"`
}

// notEndedYear: an end time in this year means the job has not ended.
const notEndedYear = 9999

// UnmarshalJSON decodes the hub's JobResponse.
func (j *Job) UnmarshalJSON(b []byte) error {
	var w jobJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*j = Job{
		JobID:            w.JobID,
		Type:             w.Type,
		Status:           w.Status,
		QueryCondition:   w.QueryCondition,
		CreatedTime:      time.Time(w.CreatedTime),
		StartTime:        time.Time(w.StartTime),
		MaxExecutionTime: time.Duration(w.MaxExecutionTimeInSeconds) * time.Second,
		FailureReason:    w.FailureReason,
		StatusMessage:    w.StatusMessage,
		Statistics:       w.DeviceJobStatistics,
	}
	if end := time.Time(w.EndTime); !end.IsZero() && end.Year() != notEndedYear {
		j.EndTime = &end
	}
	if m := w.CloudToDeviceMethod; m != nil {
		j.Method = &MethodRequest{
			MethodName:      m.MethodName,
			Payload:         m.Payload,
			ResponseTimeout: time.Duration(m.ResponseTimeoutInSeconds) * time.Second,
			ConnectTimeout:  time.Duration(m.ConnectTimeoutInSeconds) * time.Second,
		}
	}
	if len(w.UpdateTwin) > 0 && !bytes.Equal(w.UpdateTwin, []byte("null")) {
		j.UpdateTwin = w.UpdateTwin
	}
	return nil
}

// jobRequestJSON is the PUT /jobs/v2/{id} document (the hub's JobRequest).
type jobRequestJSON struct {
	JobID                     string         `json:"jobId"`
	Type                      JobType        `json:"type"`
	CloudToDeviceMethod       *jobMethodJSON `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                *jobTwinJSON   `json:"updateTwin,omitempty"`
	QueryCondition            string         `json:"queryCondition"`
	StartTime                 *time.Time     `json:"startTime,omitempty"`
	MaxExecutionTimeInSeconds int64          `json:"maxExecutionTimeInSeconds"`
}

type jobTwinJSON struct {
	// ETag must be "*": a scheduled twin update applies to whatever twin
	// each device has.
	ETag       string               `json:"etag"`
	Tags       map[string]any       `json:"tags,omitempty"`
	Properties *twinPatchProperties `json:"properties,omitempty"`
}

// DefaultMaxExecutionTime is what the schedule methods send when the
// options give none: one hour, as Microsoft's Node.js SDK does.
const DefaultMaxExecutionTime = time.Hour

// ScheduleDeviceMethodOptions contains the optional parameters for
// Client.ScheduleDeviceMethod.
type ScheduleDeviceMethodOptions struct {
	// StartTime is when the job starts; zero starts it as soon as the hub
	// can. A time in the past starts it at once.
	StartTime time.Time
	// MaxExecutionTime bounds the job from its start: devices whose turn
	// comes later are not called. Zero sends DefaultMaxExecutionTime.
	MaxExecutionTime time.Duration
}

// ScheduleDeviceMethodResponse contains the response from
// Client.ScheduleDeviceMethod.
type ScheduleDeviceMethodResponse struct {
	// Job is the hub's answer to the creation: its id, type and status
	// (queued). When Existing is set, it is the whole job as GetJob reads it.
	Job
	// Existing is set when the job already existed with the same
	// definition: the creation was retried, or sent again after a crash,
	// and the hub had accepted an earlier attempt.
	Existing bool
}

// ScheduleTwinUpdateOptions contains the optional parameters for
// Client.ScheduleTwinUpdate.
type ScheduleTwinUpdateOptions struct {
	// StartTime is when the job starts; zero starts it as soon as the hub
	// can. A time in the past starts it at once.
	StartTime time.Time
	// MaxExecutionTime bounds the job from its start; zero sends
	// DefaultMaxExecutionTime.
	MaxExecutionTime time.Duration
}

// ScheduleTwinUpdateResponse contains the response from
// Client.ScheduleTwinUpdate; see ScheduleDeviceMethodResponse.
type ScheduleTwinUpdateResponse struct {
	Job
	Existing bool
}

// ScheduleDeviceMethod creates job jobID, which calls method on every
// device queryCondition selects: a twin query's WHERE condition
// ("tags.site = 'plant-7'", "deviceId IN ['a','b']") or "*" for all
// devices. Each device gets the method as a direct call would (same
// timeouts, same payload rules) and its outcome is recorded: read it with
// NewDeviceJobsPager.
//
// Creation is idempotent by job id: a job id names one job for the hub's
// job history (30 days), so the request is safe to retry, and is retried
// under the client's retry options. When the hub answers that the job
// exists (409 JobAlreadyExists) or that too many jobs are active (429
// ThrottlingMaxActiveJobCountExceeded, which an earlier accepted attempt
// of this very job may have caused), the job is read back: if it has the
// same type, query condition, maximum execution time and method, it is
// returned with Existing set; otherwise the hub's error is. The start time
// is not compared, since the hub moves a past start to the creation time.
//
// Job ids are 1 to 64 ASCII letters, digits and '-'. Typical failures: 400
// ArgumentInvalid (a bad query condition or method), 409
// JobAlreadyExists, 429 ThrottlingMaxActiveJobCountExceeded (one active job
// at a time on S1). If the operation fails it returns an
// *azcore.ResponseError.
func (c *Client) ScheduleDeviceMethod(ctx context.Context, jobID, queryCondition string, method MethodRequest, opts *ScheduleDeviceMethodOptions) (ScheduleDeviceMethodResponse, error) {
	if opts == nil {
		opts = &ScheduleDeviceMethodOptions{}
	}
	if err := checkJob("ScheduleDeviceMethod", jobID, queryCondition); err != nil {
		return ScheduleDeviceMethodResponse{}, err
	}
	if method.MethodName == "" {
		return ScheduleDeviceMethodResponse{}, errors.New("iothub: ScheduleDeviceMethod: MethodName is empty")
	}
	responseTimeout := method.ResponseTimeout
	if responseTimeout == 0 {
		responseTimeout = defaultResponseTimeout
	}
	body := newJobRequest(jobID, JobTypeScheduleDeviceMethod, queryCondition, opts.StartTime, opts.MaxExecutionTime)
	body.CloudToDeviceMethod = &jobMethodJSON{
		MethodName:               method.MethodName,
		Payload:                  method.Payload,
		ResponseTimeoutInSeconds: ceilSeconds(responseTimeout),
		ConnectTimeoutInSeconds:  ceilSeconds(method.ConnectTimeout),
	}
	if body.CloudToDeviceMethod.Payload == nil {
		body.CloudToDeviceMethod.Payload = json.RawMessage("null")
	}
	job, existing, err := c.createJob(ctx, "ScheduleDeviceMethod", body)
	return ScheduleDeviceMethodResponse{Job: job, Existing: existing}, err
}

// ScheduleTwinUpdate creates job jobID, which merges patch into the twin of
// every device queryCondition selects, as UpdateTwin would (tags and
// desired properties; nil values delete). Creation is idempotent by job
// id, as for ScheduleDeviceMethod (the patch is compared too).
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) ScheduleTwinUpdate(ctx context.Context, jobID, queryCondition string, patch TwinPatch, opts *ScheduleTwinUpdateOptions) (ScheduleTwinUpdateResponse, error) {
	if opts == nil {
		opts = &ScheduleTwinUpdateOptions{}
	}
	if err := checkJob("ScheduleTwinUpdate", jobID, queryCondition); err != nil {
		return ScheduleTwinUpdateResponse{}, err
	}
	if patch.Tags == nil && patch.Desired == nil {
		return ScheduleTwinUpdateResponse{}, errors.New("iothub: ScheduleTwinUpdate: the patch has neither tags nor desired properties")
	}
	body := newJobRequest(jobID, JobTypeScheduleUpdateTwin, queryCondition, opts.StartTime, opts.MaxExecutionTime)
	body.UpdateTwin = &jobTwinJSON{ETag: "*", Tags: patch.Tags}
	if patch.Desired != nil {
		body.UpdateTwin.Properties = &twinPatchProperties{Desired: patch.Desired}
	}
	job, existing, err := c.createJob(ctx, "ScheduleTwinUpdate", body)
	return ScheduleTwinUpdateResponse{Job: job, Existing: existing}, err
}

func checkJob(op, jobID, queryCondition string) error {
	if err := jobid.Validate(jobID); err != nil {
		return fmt.Errorf("iothub: %s: %w", op, err)
	}
	if strings.TrimSpace(queryCondition) == "" {
		return fmt.Errorf("iothub: %s: queryCondition is empty; use \"*\" for every device", op)
	}
	return nil
}

func newJobRequest(jobID string, t JobType, queryCondition string, start time.Time, maxExec time.Duration) jobRequestJSON {
	if maxExec <= 0 {
		maxExec = DefaultMaxExecutionTime
	}
	body := jobRequestJSON{
		JobID:                     jobID,
		Type:                      t,
		QueryCondition:            queryCondition,
		MaxExecutionTimeInSeconds: ceilSeconds(maxExec),
	}
	if !start.IsZero() {
		utc := start.UTC()
		body.StartTime = &utc
	}
	return body
}

// createJob sends PUT /jobs/v2/{id} and recognises a job that already
// exists with this definition.
func (c *Client) createJob(ctx context.Context, op string, body jobRequestJSON) (Job, bool, error) {
	req, err := c.newRequest(ctx, http.MethodPut, "jobs", "v2", body.JobID)
	if err != nil {
		return Job{}, false, err
	}
	if err := runtime.MarshalAsJSON(req, body); err != nil {
		return Job{}, false, fmt.Errorf("iothub: %s: encoding job (is the payload valid JSON?): %w", op, err)
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		var respErr *azcore.ResponseError
		if !errors.As(err, &respErr) ||
			respErr.ErrorCode != string(JobAlreadyExists) && respErr.ErrorCode != string(ThrottlingMaxActiveJobCountExceeded) {
			return Job{}, false, err
		}
		existing, getErr := c.GetJob(ctx, body.JobID, nil)
		if getErr != nil || !sameJob(existing.Job, body) {
			return Job{}, false, err
		}
		return existing.Job, true, nil
	}
	var job Job
	if err := runtime.UnmarshalAsJSON(resp, &job); err != nil {
		return Job{}, false, fmt.Errorf("iothub: %s: decoding job: %w", op, err)
	}
	return job, false, nil
}

// sameJob reports whether the hub's job has the definition body asks for
// (all but the start time).
func sameJob(j Job, body jobRequestJSON) bool {
	if j.Type != body.Type || j.QueryCondition != body.QueryCondition ||
		int64(j.MaxExecutionTime/time.Second) != body.MaxExecutionTimeInSeconds {
		return false
	}
	switch body.Type {
	case JobTypeScheduleDeviceMethod:
		m, want := j.Method, body.CloudToDeviceMethod
		return m != nil && m.MethodName == want.MethodName &&
			ceilSeconds(m.ResponseTimeout) == want.ResponseTimeoutInSeconds &&
			ceilSeconds(m.ConnectTimeout) == want.ConnectTimeoutInSeconds &&
			sameJSON(m.Payload, want.Payload)
	case JobTypeScheduleUpdateTwin:
		var got struct {
			Tags       map[string]any `json:"tags"`
			Properties struct {
				Desired map[string]any `json:"desired"`
			} `json:"properties"`
		}
		if json.Unmarshal(j.UpdateTwin, &got) != nil {
			return false
		}
		want := body.UpdateTwin
		var wantDesired map[string]any
		if want.Properties != nil {
			wantDesired = want.Properties.Desired
		}
		return sameJSONValue(got.Tags, want.Tags) && sameJSONValue(got.Properties.Desired, wantDesired)
	}
	return false
}

// sameJSON compares two JSON documents by value.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

// sameJSONValue compares two Go values by their JSON; an empty or nil
// object is absent.
func sameJSONValue(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && sameJSON(ja, jb)
}

// GetJobOptions contains the optional parameters for Client.GetJob.
type GetJobOptions struct {
	// for future expansion
}

// GetJobResponse contains the response from Client.GetJob.
type GetJobResponse struct {
	Job
}

// GetJob reads a job: its status and device statistics. An unknown job
// (or one past the hub's 30-day history) fails with 404 JobNotFound.
// If the operation fails it returns an *azcore.ResponseError.
func (c *Client) GetJob(ctx context.Context, jobID string, opts *GetJobOptions) (GetJobResponse, error) {
	if jobID == "" {
		return GetJobResponse{}, errors.New("iothub: GetJob: job id is empty")
	}
	req, err := c.newRequest(ctx, http.MethodGet, "jobs", "v2", jobID)
	if err != nil {
		return GetJobResponse{}, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return GetJobResponse{}, err
	}
	var out GetJobResponse
	if err := runtime.UnmarshalAsJSON(resp, &out.Job); err != nil {
		return GetJobResponse{}, fmt.Errorf("iothub: GetJob: decoding job: %w", err)
	}
	return out, nil
}

// CancelJobOptions contains the optional parameters for Client.CancelJob.
type CancelJobOptions struct {
	// for future expansion
}

// CancelJobResponse contains the response from Client.CancelJob: the job,
// cancelled.
type CancelJobResponse struct {
	Job
}

// CancelJob cancels a job that has not started (queued or scheduled). IoT
// Hub cannot cancel a running job ("by design", Azure/azure-iot-sdk-node#464):
// that fails with 405 OperationNotAllowedInCurrentState, as does
// cancelling a finished job. If the operation fails it returns an
// *azcore.ResponseError.
func (c *Client) CancelJob(ctx context.Context, jobID string, opts *CancelJobOptions) (CancelJobResponse, error) {
	if jobID == "" {
		return CancelJobResponse{}, errors.New("iothub: CancelJob: job id is empty")
	}
	req, err := c.newRequest(ctx, http.MethodPost, "jobs", "v2", jobID, "cancel")
	if err != nil {
		return CancelJobResponse{}, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return CancelJobResponse{}, err
	}
	var out CancelJobResponse
	if err := runtime.UnmarshalAsJSON(resp, &out.Job); err != nil {
		return CancelJobResponse{}, fmt.Errorf("iothub: CancelJob: decoding job: %w", err)
	}
	return out, nil
}

// ListJobsOptions contains the optional parameters for
// Client.NewListJobsPager.
type ListJobsOptions struct {
	// Type and Status filter the jobs; empty takes any.
	Type   JobType
	Status JobStatus
	// PageSize asks for at most this many jobs per page (the hub caps it
	// at 100); 0 leaves it to the hub.
	PageSize int32
	// ContinuationToken starts the pager at the page a previous
	// ListJobsResponse.ContinuationToken named.
	ContinuationToken string
}

// ListJobsResponse is one page of jobs.
type ListJobsResponse struct {
	Jobs []Job
	// ContinuationToken is set when more pages follow.
	ContinuationToken *string
}

// NewListJobsPager returns a pager over the hub's jobs (GET
// /jobs/v2/query), oldest first. Creating it sends nothing; each NextPage
// sends one request, retried under the client's retry options.
// If the operation fails it returns an *azcore.ResponseError (from NextPage).
func (c *Client) NewListJobsPager(opts *ListJobsOptions) *runtime.Pager[ListJobsResponse] {
	var o ListJobsOptions
	if opts != nil {
		o = *opts
	}
	return runtime.NewPager(runtime.PagingHandler[ListJobsResponse]{
		More: func(page ListJobsResponse) bool {
			return page.ContinuationToken != nil && *page.ContinuationToken != ""
		},
		Fetcher: func(ctx context.Context, prev *ListJobsResponse) (ListJobsResponse, error) {
			continuation := o.ContinuationToken
			if prev != nil && prev.ContinuationToken != nil {
				continuation = *prev.ContinuationToken
			}
			return c.listJobsPage(ctx, o, continuation)
		},
		Tracer: c.internal.Tracer(),
	})
}

func (c *Client) listJobsPage(ctx context.Context, o ListJobsOptions, continuation string) (ListJobsResponse, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "jobs", "v2", "query")
	if err != nil {
		return ListJobsResponse{}, err
	}
	q := req.Raw().URL.Query()
	if o.Type != "" {
		q.Set("jobType", string(o.Type))
	}
	if o.Status != "" {
		q.Set("jobStatus", string(o.Status))
	}
	req.Raw().URL.RawQuery = q.Encode()
	if o.PageSize > 0 {
		req.Raw().Header.Set("x-ms-max-item-count", strconv.FormatInt(int64(o.PageSize), 10))
	}
	if continuation != "" {
		req.Raw().Header.Set("x-ms-continuation", continuation)
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return ListJobsResponse{}, err
	}
	var page ListJobsResponse
	if token := resp.Header.Get("x-ms-continuation"); token != "" {
		page.ContinuationToken = &token
	}
	if err := runtime.UnmarshalAsJSON(resp, &page.Jobs); err != nil {
		return ListJobsResponse{}, fmt.Errorf("iothub: list jobs: decoding page: %w", err)
	}
	return page, nil
}

// DeviceJob is one device's part in a job (an item of devices.jobs).
type DeviceJob struct {
	DeviceID string
	JobID    string
	JobType  JobType
	Status   DeviceJobStatus
	// StartTime and EndTime are the job's execution window.
	StartTime time.Time
	EndTime   time.Time
	// CreatedTime is when the device joined the job; LastUpdatedTime when
	// its status last changed.
	CreatedTime     time.Time
	LastUpdatedTime time.Time
	// MethodResponse is the device's answer to a method job (its status
	// may itself say the device failed); nil for twin updates and for
	// devices that did not answer.
	MethodResponse *InvokeMethodResponse
	// Error is why a failed device failed.
	Error *DeviceJobError
}

// DeviceJobError is why a device's part in a job failed. Code is the error
// a direct call would have got (DeviceNotOnline, GatewayTimeout,
// DeviceNotFound, ...).
type DeviceJobError struct {
	Code        ErrorCode
	Description string
}

// UnmarshalJSON decodes a devices.jobs item, accepting zone-less times as
// UTC (the query docs show "startTimeUtc": "2016-09-29T18:18:52.7418462").
func (d *DeviceJob) UnmarshalJSON(b []byte) error {
	var w struct {
		DeviceID               string          `json:"deviceId"`
		JobID                  string          `json:"jobId"`
		JobType                JobType         `json:"jobType"`
		Status                 DeviceJobStatus `json:"status"`
		StartTimeUtc           wireTime        `json:"startTimeUtc"`
		EndTimeUtc             wireTime        `json:"endTimeUtc"`
		CreatedDateTimeUtc     wireTime        `json:"createdDateTimeUtc"`
		LastUpdatedDateTimeUtc wireTime        `json:"lastUpdatedDateTimeUtc"`
		Outcome                *struct {
			DeviceMethodResponse *invokeMethodResult `json:"deviceMethodResponse"`
		} `json:"outcome"`
		Error *struct {
			Code        ErrorCode `json:"code"`
			Description string    `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*d = DeviceJob{
		DeviceID:        w.DeviceID,
		JobID:           w.JobID,
		JobType:         w.JobType,
		Status:          w.Status,
		StartTime:       time.Time(w.StartTimeUtc),
		EndTime:         time.Time(w.EndTimeUtc),
		CreatedTime:     time.Time(w.CreatedDateTimeUtc),
		LastUpdatedTime: time.Time(w.LastUpdatedDateTimeUtc),
	}
	if w.Outcome != nil && w.Outcome.DeviceMethodResponse != nil {
		r := InvokeMethodResponse(*w.Outcome.DeviceMethodResponse)
		if r.Payload == nil {
			r.Payload = json.RawMessage("null")
		}
		d.MethodResponse = &r
	}
	if w.Error != nil {
		d.Error = &DeviceJobError{Code: w.Error.Code, Description: w.Error.Description}
	}
	return nil
}

// DeviceJobsResponse is one page of devices.jobs items.
type DeviceJobsResponse struct {
	DeviceJobs []DeviceJob
	// ContinuationToken is set when more pages follow.
	ContinuationToken *string
}

// NewDeviceJobsPager returns a pager over the results of a query on
// devices.jobs, such as
//
//	SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot-wave-1'
//	SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot-wave-1' AND devices.jobs.status = 'failed'
//
// (conditions may refer to job properties only; the hub refuses twin
// properties there). A query on another collection fails on its first
// page. Options are a twin query's: page size and continuation token.
// If the operation fails it returns an *azcore.ResponseError (from NextPage).
func (c *Client) NewDeviceJobsPager(query string, opts *QueryOptions) *runtime.Pager[DeviceJobsResponse] {
	pager := c.NewQueryPager(query, opts)
	return runtime.NewPager(runtime.PagingHandler[DeviceJobsResponse]{
		More: func(DeviceJobsResponse) bool { return pager.More() },
		Fetcher: func(ctx context.Context, _ *DeviceJobsResponse) (DeviceJobsResponse, error) {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return DeviceJobsResponse{}, err
			}
			if !strings.EqualFold(page.ItemType, "DeviceJob") {
				return DeviceJobsResponse{}, fmt.Errorf("iothub: device jobs query: the hub returned %q items; query FROM devices.jobs", page.ItemType)
			}
			out := DeviceJobsResponse{DeviceJobs: make([]DeviceJob, len(page.Items)), ContinuationToken: page.ContinuationToken}
			for i, raw := range page.Items {
				if err := json.Unmarshal(raw, &out.DeviceJobs[i]); err != nil {
					return DeviceJobsResponse{}, fmt.Errorf("iothub: device jobs query: decoding item: %w", err)
				}
			}
			return out, nil
		},
		Tracer: c.internal.Tracer(),
	})
}
