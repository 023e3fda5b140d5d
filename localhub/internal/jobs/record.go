package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// The records the engine keeps in the registry. This file is their only
// owner; format numbers a record's layout so that a later layout can read
// older ones.
const recordFormat = 1

type jobRecord struct {
	Format         int            `json:"format"`
	Type           Type           `json:"type"`
	QueryCondition string         `json:"queryCondition"`
	Created        time.Time      `json:"created"`
	Start          time.Time      `json:"start"`
	MaxExecSeconds int64          `json:"maxExecutionSeconds"`
	Method         *methodRecord  `json:"method,omitempty"`
	UpdateTwin     *twinRecord    `json:"updateTwin,omitempty"`
	Status         Status         `json:"status"`
	RunStart       time.Time      `json:"runStart,omitzero"`
	End            time.Time      `json:"end,omitzero"`
	FailureReason  string         `json:"failureReason,omitempty"`
	Stats          statisticsJSON `json:"stats"`
}

type methodRecord struct {
	Name string `json:"name"`
	// Payload keeps the request's payload member as sent: absent (nil)
	// and null are different bodies for the device.
	Payload         json.RawMessage `json:"payload,omitempty"`
	ResponseSeconds int64           `json:"responseTimeoutSeconds"`
	ConnectSeconds  int64           `json:"connectTimeoutSeconds"`
}

type twinRecord struct {
	Tags     map[string]any  `json:"tags,omitempty"`
	Desired  map[string]any  `json:"desired,omitempty"`
	Document json.RawMessage `json:"document"`
}

type statisticsJSON struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

type deviceRecord struct {
	Status   DeviceStatus    `json:"status"`
	Updated  time.Time       `json:"updated"`
	Response *responseRecord `json:"response,omitempty"`
	Error    *errorRecord    `json:"error,omitempty"`
}

type responseRecord struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}

type errorRecord struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

func encodeJob(j Job) ([]byte, error) {
	rec := jobRecord{
		Format:         recordFormat,
		Type:           j.Type,
		QueryCondition: j.QueryCondition,
		Created:        j.CreatedTime,
		Start:          j.StartTime,
		MaxExecSeconds: int64(j.MaxExecutionTime / time.Second),
		Status:         j.Status,
		RunStart:       j.RunStartTime,
		End:            j.EndTime,
		FailureReason:  j.FailureReason,
		Stats:          statisticsJSON(j.Statistics),
	}
	if m := j.Method; m != nil {
		rec.Method = &methodRecord{
			Name:            m.Name,
			Payload:         m.Payload,
			ResponseSeconds: int64(m.ResponseTimeout / time.Second),
			ConnectSeconds:  int64(m.ConnectTimeout / time.Second),
		}
	}
	if u := j.UpdateTwin; u != nil {
		rec.UpdateTwin = &twinRecord{Tags: u.Patch.Tags, Desired: u.Patch.Desired, Document: u.Document}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode job %q: %w", j.ID, err)
	}
	return b, nil
}

func decodeJob(id string, b []byte) (Job, error) {
	var rec jobRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // twin patches keep big integers exact
	if err := dec.Decode(&rec); err != nil {
		return Job{}, fmt.Errorf("decode job %q: %w", id, err)
	}
	if rec.Format != recordFormat {
		return Job{}, fmt.Errorf("decode job %q: record format %d, this build reads %d", id, rec.Format, recordFormat)
	}
	j := Job{
		Spec: Spec{
			ID:               id,
			Type:             rec.Type,
			QueryCondition:   rec.QueryCondition,
			StartTime:        rec.Start,
			MaxExecutionTime: time.Duration(rec.MaxExecSeconds) * time.Second,
		},
		Status:        rec.Status,
		CreatedTime:   rec.Created,
		RunStartTime:  rec.RunStart,
		EndTime:       rec.End,
		FailureReason: rec.FailureReason,
		Statistics:    Statistics(rec.Stats),
	}
	if m := rec.Method; m != nil {
		j.Method = &Method{
			Name:            m.Name,
			Payload:         m.Payload,
			ResponseTimeout: time.Duration(m.ResponseSeconds) * time.Second,
			ConnectTimeout:  time.Duration(m.ConnectSeconds) * time.Second,
		}
	}
	if u := rec.UpdateTwin; u != nil {
		j.UpdateTwin = &TwinUpdate{Patch: registry.TwinPatch{Tags: u.Tags, Desired: u.Desired}, Document: u.Document}
	}
	return j, nil
}

func encodeDevice(d DeviceJob) ([]byte, error) {
	rec := deviceRecord{Status: d.Status, Updated: d.LastUpdatedTime}
	if r := d.Response; r != nil {
		rec.Response = &responseRecord{Status: r.Status, Payload: r.Payload}
	}
	if e := d.Error; e != nil {
		rec.Error = &errorRecord{Code: e.Code, Description: e.Description}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode device %q of job %q: %w", d.DeviceID, d.JobID, err)
	}
	return b, nil
}

// decodeDevice reads a device record of job j.
func decodeDevice(j Job, deviceID string, b []byte) (DeviceJob, error) {
	var rec deviceRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return DeviceJob{}, fmt.Errorf("decode device %q of job %q: %w", deviceID, j.ID, err)
	}
	d := DeviceJob{
		JobID:           j.ID,
		DeviceID:        deviceID,
		Type:            j.Type,
		Status:          rec.Status,
		StartTime:       j.RunStartTime,
		EndTime:         j.RunStartTime.Add(j.MaxExecutionTime),
		CreatedTime:     j.RunStartTime,
		LastUpdatedTime: rec.Updated,
	}
	if r := rec.Response; r != nil {
		d.Response = &MethodResponse{Status: r.Status, Payload: r.Payload}
	}
	if e := rec.Error; e != nil {
		d.Error = &DeviceError{Code: e.Code, Description: e.Description}
	}
	return d, nil
}

// replyJSON turns a device's method reply into JSON: the body itself when
// it is JSON, null when it is empty, and otherwise the body as a JSON
// string, so that a device answering garbage still leaves a record that
// queries can return.
func replyJSON(body []byte) []byte {
	trimmed := bytes.TrimSpace(body)
	switch {
	case len(trimmed) == 0:
		return []byte("null")
	case json.Valid(trimmed):
		return append([]byte(nil), trimmed...)
	default:
		s, _ := json.Marshal(string(body)) // invalid UTF-8 becomes U+FFFD
		return s
	}
}
