package invocation

import (
	"encoding/json"
	"errors"
	"runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// hostBatch is a two-event batch exactly as the host sends it for
// cardinality "many", dataType "string": Data.events and every *Array are
// strings holding JSON (functions-custom-handler.md §3.1-3.2).
const hostBatch = `{
  "Data": {"events": "[\"{\\\"temperature\\\":21.5}\",\"{\\\"version\\\":2}\"]"},
  "Metadata": {
    "PartitionKeyArray": "[null,\"pk\"]",
    "OffsetArray": "[\"100\",\"200\"]",
    "SequenceNumberArray": "[1,2]",
    "EnqueuedTimeUtcArray": "[\"2020-10-21T14:00:10.824\",\"2020-10-21T14:00:11.1\"]",
    "PropertiesArray": "[{\"temperatureAlert\":\"false\"},{}]",
    "SystemPropertiesArray": "[{\"iothub-connection-device-id\":\"my-device\",\"x-opt-sequence-number\":1},{\"iothub-message-source\":\"twinChangeEvents\"}]",
    "TriggerPartitionContext": {"PartitionId": "1"},
    "PartitionContext": {"FullyQualifiedNamespace": "ns.servicebus.windows.net", "EventHubName": "myhub", "ConsumerGroup": "functions", "PartitionId": "1"},
    "sys": {"MethodName": "TwinChangeProcessor", "UtcNow": "2020-10-21T14:00:12Z", "RandGuid": "x"}
  }
}`

func TestDecodeEventHubBatch(t *testing.T) {
	got, err := DecodeEventHubBatch([]byte(hostBatch), "events")
	require.NoError(t, err)
	require.Empty(t, got.Warnings)
	require.JSONEq(t, `{"FullyQualifiedNamespace": "ns.servicebus.windows.net", "EventHubName": "myhub", "ConsumerGroup": "functions", "PartitionId": "1"}`, string(got.PartitionContext))
	require.Nil(t, got.RetryContext)
	require.Len(t, got.Events, 2)
	require.Equal(t, Event{
		Body:             []byte(`{"temperature":21.5}`),
		SystemProperties: json.RawMessage(`{"iothub-connection-device-id":"my-device","x-opt-sequence-number":1}`),
		Properties:       json.RawMessage(`{"temperatureAlert":"false"}`),
		EnqueuedTimeUTC:  "2020-10-21T14:00:10.824",
		SequenceNumber:   1,
		Offset:           "100",
	}, got.Events[0])
	require.Equal(t, Event{
		Body:             []byte(`{"version":2}`),
		SystemProperties: json.RawMessage(`{"iothub-message-source":"twinChangeEvents"}`),
		Properties:       json.RawMessage(`{}`),
		EnqueuedTimeUTC:  "2020-10-21T14:00:11.1",
		SequenceNumber:   2,
		Offset:           "200",
		PartitionKey:     "pk",
	}, got.Events[1])
}

func TestDecodeEventHubBatchVariants(t *testing.T) {
	tests := []struct {
		name         string
		body         string
		wantBodies   []string
		wantWarnings []string
		wantErr      bool
	}{
		{
			name:       "plain JSON arrays (a stand-in host that does not double-encode)",
			body:       `{"Data":{"events":["{\"a\":1}",{"b":2},null]},"Metadata":{"SequenceNumberArray":[5,6,7],"OffsetArray":[10,"11",null]}}`,
			wantBodies: []string{`{"a":1}`, `{"b":2}`, ``},
		},
		{
			name:       "lower-case keys and another binding name",
			body:       `{"data":{"msgs":"[\"x\"]"},"metadata":{}}`,
			wantBodies: []string{`x`},
		},
		{
			name:       "empty batch",
			body:       `{"Data":{"events":"[]"},"Metadata":{}}`,
			wantBodies: []string{},
		},
		{
			name:         "metadata shorter than the batch and one array malformed",
			body:         `{"Data":{"events":"[\"1\",\"2\"]"},"Metadata":{"SequenceNumberArray":"[7]","PropertiesArray":"{not json"}}`,
			wantBodies:   []string{`1`, `2`},
			wantWarnings: []string{"Metadata.PropertiesArray is not a JSON array", "Metadata.SequenceNumberArray has 1 entries for 2 events"},
		},
		{
			name:         "metadata not an object: the events are still read",
			body:         `{"DAtA":{"events":["\b\b",{"":0},null]},"MetAdAtA":0}`,
			wantBodies:   []string{"\b\b", `{"":0}`, ``},
			wantWarnings: []string{"Metadata is not a JSON object"},
		},
		{name: "not JSON", body: `<html>`, wantErr: true},
		{name: "no Data", body: `{"Metadata":{}}`, wantErr: true},
		{name: "events not an array", body: `{"Data":{"events":"{}"}}`, wantErr: true},
		{name: "events a number", body: `{"Data":{"events":42}}`, wantErr: true},
		{name: "two bindings, neither named events", body: `{"Data":{"a":"[]","b":"[]"}}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEventHubBatch([]byte(tt.body), "events")
			if tt.wantErr {
				require.Error(t, err)
				require.True(t, errors.Is(err, ErrMalformed))
				return
			}
			require.NoError(t, err)
			bodies := make([]string, len(got.Events))
			for i, e := range got.Events {
				bodies[i] = string(e.Body)
			}
			require.Equal(t, tt.wantBodies, bodies)
			require.Len(t, got.Warnings, len(tt.wantWarnings))
			for _, w := range tt.wantWarnings {
				require.Condition(t, func() bool {
					for _, g := range got.Warnings {
						if len(g) >= len(w) && g[:len(w)] == w {
							return true
						}
					}
					return false
				}, "want a warning starting %q in %q", w, got.Warnings)
			}
		})
	}
}

func TestDecodeEventHubBatchPlainMetadata(t *testing.T) {
	got, err := DecodeEventHubBatch([]byte(`{"Data":{"events":["{\"a\":1}",{"b":2},null]},"Metadata":{"SequenceNumberArray":[5,6,7],"OffsetArray":[10,"11",null],"RetryContext":{"RetryCount":1}}}`), "events")
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6, 7}, []int64{got.Events[0].SequenceNumber, got.Events[1].SequenceNumber, got.Events[2].SequenceNumber})
	require.Equal(t, []string{"10", "11", ""}, []string{got.Events[0].Offset, got.Events[1].Offset, got.Events[2].Offset})
	require.JSONEq(t, `{"RetryCount":1}`, string(got.RetryContext))
}

func TestUnwrap(t *testing.T) {
	var v []int
	require.NoError(t, Unwrap(json.RawMessage(`"[1,2]"`), &v))
	require.Equal(t, []int{1, 2}, v)
	require.NoError(t, Unwrap(json.RawMessage(` [3]`), &v))
	require.Equal(t, []int{3}, v)
	require.Error(t, Unwrap(json.RawMessage(`"not json"`), &v))
	require.Error(t, Unwrap(json.RawMessage(`"unterminated`), &v))
}

// A batch is decoded in place: beyond the batch itself, decoding allocates
// only the per-event bookkeeping, not a copy of the events per encoding
// layer (a 214 MB batch used to take ~3.7 times its size).
func TestDecodeEventHubBatchAllocatesNoCopies(t *testing.T) {
	const n = 2000
	bodies := make([]string, n)
	sys := make([]map[string]any, n)
	for i := range bodies {
		b, _ := json.Marshal(map[string]any{"version": i, "properties": map[string]any{"reported": map[string]any{
			"iothubDM":  map[string]any{"reboot": map[string]any{"lastReboot": "2025-01-31T08:00:00.000Z", "status": "running", "requestId": "6f1c0a52-3f0e-4a57-9a39-2b1f1f0b8c11"}},
			"$metadata": map[string]any{"$lastUpdated": "2025-01-31T08:00:05.1234567Z"}, "$version": i}}})
		bodies[i] = string(b)
		sys[i] = map[string]any{"iothub-connection-device-id": "device-0001", "iothub-message-source": "twinChangeEvents", "x-opt-sequence-number": i}
	}
	str := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	body, err := json.Marshal(map[string]any{"Data": map[string]any{"events": str(bodies)},
		"Metadata": map[string]any{"SystemPropertiesArray": str(sys), "PropertiesArray": str(make([]map[string]string, n))}})
	require.NoError(t, err)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := DecodeEventHubBatch(body, "events")
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	require.Len(t, got.Events, n)
	require.JSONEq(t, bodies[n-1], string(got.Events[n-1].Body))
	allocated := after.TotalAlloc - before.TotalAlloc
	perEvent := uint64(unsafe.Sizeof(Event{}))
	require.Less(t, allocated, 3*n*perEvent, "%d bytes allocated for a %d-byte batch: more than the events' bookkeeping", allocated, len(body))
}
