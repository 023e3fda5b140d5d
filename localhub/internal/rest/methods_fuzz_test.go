package rest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
)

func FuzzMethodRequest(f *testing.F) {
	for _, seed := range []string{
		`{"methodName":"reboot","payload":null,"timeoutInSeconds":30,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		`{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":2}`,
		`{"methodName":"m"}`,
		`{"methodName":"m","payload":"text","responseTimeoutInSeconds":5.5}`,
		`{"methodName":"m","payload":[1,2,3],"connectTimeoutInSeconds":"300"}`,
		`{"methodName":"","payload":{}}`,
		`{"methodName":"a/b"}`,
		`{"methodName":"m","responseTimeoutInSeconds":301}`,
		`{"methodName":"m","responseTimeoutInSeconds":-1e308}`,
		`{"MethodName":"m","Payload":true}`,
		`{"methodName":"m"} trailing`,
		`null`,
		`[]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The fast decoder takes and refuses exactly what unmarshal does.
		fast, fastErr := decodeMethodWire(body)
		var slow methodWire
		if slowErr := unmarshal(body, &slow); slowErr != nil {
			require.Equal(t, slowErr, fastErr)
		} else {
			require.Nil(t, fastErr)
			require.Equal(t, slow, fast)
		}

		m, herr := parseMethodRequest(body)
		if herr != nil {
			require.Contains(t, []int{400004, 400006, 413001}, herr.code, herr.msg)
			require.Equal(t, herr.code/1000, herr.status)
			return
		}
		require.NoError(t, validateMethodName(m.Method))
		require.NotEmpty(t, m.Method)
		require.GreaterOrEqual(t, m.ResponseTimeout, minResponseSecs*time.Second)
		require.LessOrEqual(t, m.ResponseTimeout, maxResponseSecs*time.Second)
		require.GreaterOrEqual(t, m.ConnectTimeout, time.Duration(0))
		require.LessOrEqual(t, m.ConnectTimeout, maxConnectTimeoutSecs*time.Second)
		require.LessOrEqual(t, len(m.Payload), maxMethodPayload)
		if m.Payload != nil {
			require.True(t, json.Valid(m.Payload), "payload %q", m.Payload)
		}

		// Round trip: what we accepted, re-encoded, parses to the same request.
		again, herr := parseMethodRequest(encodeMethodRequest(t, m))
		require.Nil(t, herr)
		require.Equal(t, m.Method, again.Method)
		require.Equal(t, m.ResponseTimeout, again.ResponseTimeout)
		require.Equal(t, m.ConnectTimeout, again.ConnectTimeout)
		if m.Payload == nil {
			require.Nil(t, again.Payload)
		} else {
			require.JSONEq(t, string(m.Payload), string(again.Payload))
		}
	})
}

func encodeMethodRequest(t *testing.T, m methodRequest) []byte {
	t.Helper()
	req := map[string]any{
		"methodName":               m.Method,
		"responseTimeoutInSeconds": m.ResponseTimeout.Seconds(),
		"connectTimeoutInSeconds":  m.ConnectTimeout.Seconds(),
	}
	// No payload (an empty body for the device) is an absent member; an
	// explicit null reaches the device as null.
	if m.Payload != nil {
		req["payload"] = json.RawMessage(m.Payload)
	}
	b, err := json.Marshal(req)
	require.NoError(t, err)
	return b
}

// FuzzJobRequest: whatever PUT /jobs/v2/{id} receives is refused with one
// of IoT Hub's codes or read into a job of a known type that carries what
// its type needs. Seeds: testdata/fuzz/FuzzJobRequest.
func FuzzJobRequest(f *testing.F) {
	f.Add([]byte(`{"jobId":"j1","type":"scheduleDeviceMethod","queryCondition":"*","cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30}}`))
	f.Add([]byte(`{"type":"scheduleUpdateTwin","queryCondition":"tags.a = 1","updateTwin":{"etag":"*","tags":{"a":2}},"startTime":"0001-01-01T00:00:00","maxExecutionTimeInSeconds":0}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, herr := parseJobRequest("j1", body)
		if herr != nil {
			require.Contains(t, []int{400000, 400004, 400005, 400006, 412001, 413001}, herr.code, herr.msg)
			require.Equal(t, herr.code/1000, herr.status)
			return
		}
		require.Equal(t, "j1", spec.ID)
		require.NotEmpty(t, strings.TrimSpace(spec.QueryCondition))
		require.GreaterOrEqual(t, spec.MaxExecutionTime, time.Duration(0))
		switch spec.Type {
		case jobs.TypeDeviceMethod:
			require.NotNil(t, spec.Method)
			require.NoError(t, validateMethodName(spec.Method.Name))
			require.Nil(t, spec.UpdateTwin)
		case jobs.TypeUpdateTwin:
			require.NotNil(t, spec.UpdateTwin)
			require.True(t, spec.UpdateTwin.Patch.Tags != nil || spec.UpdateTwin.Patch.Desired != nil)
			require.True(t, json.Valid(spec.UpdateTwin.Document))
			require.Nil(t, spec.Method)
		default:
			// Other job types pass the wire and are the engine's to refuse.
			require.Contains(t, jobTypes, string(spec.Type))
		}
	})
}
