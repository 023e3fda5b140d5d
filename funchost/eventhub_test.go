package funchost

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const ehSettingsConnection = "Endpoint=sb://ns.example.net/;SharedAccessKeyName=service;SharedAccessKey=c2VjcmV0"

func ehFunction(cardinality, retry string) string {
	f := `{"bindings":[{"type":"eventHubTrigger","direction":"in","name":"events","eventHubName":"%FAKE_HUB%",` +
		`"connection":"FAKE_EH","consumerGroup":"%FAKE_GROUP%","cardinality":"` + cardinality + `","dataType":"string"}]`
	if retry != "" {
		f += `,"retry":` + retry
	}
	return f + "}"
}

func ehSettings() map[string]string {
	return map[string]string{"FAKE_HUB": "hub1", "FAKE_EH": ehSettingsConnection, "FAKE_GROUP": "g1"}
}

// TestEventHubRetry: a failing batch is re-delivered under the function's
// retry policy with Metadata.RetryContext, then checkpointed anyway, so
// the next event is delivered after it (§3.3).
func TestEventHubRetry(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, map[string]string{
		"Events": ehFunction("many", `{"strategy":"fixedDelay","maxRetryCount":2,"delayInterval":"00:00:00.010"}`),
	})
	src := newFakeSource(1)
	src.append(0, localhub.Event{DeviceID: "d", Body: []byte("a")})
	src.append(0, localhub.Event{DeviceID: "d", Body: []byte("b")})
	settings := ehSettings()
	settings["FAKEWORKER_FAIL_FIRST"] = "3"
	logs := newLogRecorder(t)
	app.start(t, Options{Settings: settings, Events: src, Logger: logs.logger()})

	logs.await(t, "the give-up line", containsAll("retries exhausted: the batch is checkpointed anyway"))
	attempts := logs.awaitN(t, "three attempts", 3, containsAll("fakeworker: envelope", "sequenceNumbers=[0,1]"))
	require.Contains(t, attempts[0], "retryContext=none", "the first attempt has no RetryContext")
	for i, a := range attempts[1:] {
		var rc retryContext
		_, js, _ := strings.Cut(a, "retryContext=")
		js, _, _ = strings.Cut(js, " source=handler")
		require.NoError(t, json.Unmarshal([]byte(js), &rc), "line: %s", a)
		require.Equal(t, i+1, rc.RetryCount)
		require.Equal(t, 2, rc.MaxRetryCount)
		require.Equal(t, "Response status code does not indicate success: 500 (Internal Server Error).", rc.Exception.Message)
	}

	src.append(0, localhub.Event{DeviceID: "d", Body: []byte("c")})
	logs.await(t, "the next event, after the checkpoint", containsAll("INFO delivered sequenceNumbers=[2]", "function=Events"))
}

// TestEventHubOneAndInitialOffset: cardinality one delivers event by
// event, and initialOffsetOptions fromEnd skips what was there at start.
func TestEventHubOneAndInitialOffset(t *testing.T) {
	hostJSON := strings.Replace(fakeHostJSON, `"version": "2.0",`,
		`"version": "2.0", "extensions": {"eventHubs": {"maxEventBatchSize": 10, "initialOffsetOptions": {"type": "fromEnd"}}},`, 1)
	app := newFakeApp(t, hostJSON, map[string]string{"One": ehFunction("one", "")})
	src := newFakeSource(2)
	src.append(0, localhub.Event{DeviceID: "d", Body: []byte("before start")})
	logs := newLogRecorder(t)
	app.start(t, Options{Settings: ehSettings(), Events: src, Logger: logs.logger()})

	src.append(0, localhub.Event{DeviceID: "d", Body: []byte("x")})
	src.append(0, localhub.Event{DeviceID: "d", Body: []byte("y")})
	src.append(1, localhub.Event{DeviceID: "e", Body: []byte("z")})
	logs.await(t, "partition 0, second event", containsAll("partition=0 sequenceNumbers=\"2\""))
	logs.await(t, "partition 1", containsAll("partition=1 sequenceNumbers=\"0\""))
	require.Equal(t, 1, logs.count(containsAll("partition=0 sequenceNumbers=\"1\"")))
	require.Zero(t, logs.count(containsAll("partition=0 sequenceNumbers=\"0\"")), "fromEnd: the event before start is skipped")
}

// TestEventHubWithoutSource: no EventSource, no listener, and a log line.
func TestEventHubWithoutSource(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, map[string]string{"Events": ehFunction("many", ""), "Info": infoFunction})
	logs := newLogRecorder(t)
	app.start(t, Options{Settings: ehSettings(), Logger: logs.logger()})
	logs.await(t, "the not-started line", containsAll("no event source: the Event Hubs listener is not started", "function=Events"))
}

// goldenEvents are a telemetry message and a twin-change notification as
// the local hub records them.
func goldenEvents() []localhub.Event {
	return []localhub.Event{
		{
			DeviceID: "dev-a", Body: []byte(`{"temperature":21.5}`),
			MessageID: "m-1", ContentType: "application/json", ContentEncoding: "utf-8",
			Properties: map[string]string{"temperatureAlert": "false"},
			Annotations: map[string]any{
				"iothub-connection-device-id":          "dev-a",
				"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
				"iothub-connection-auth-generation-id": "637388855582764406",
				"iothub-message-source":                "Telemetry",
				"iothub-creation-time-utc":             time.Date(2025, 1, 31, 8, 0, 0, 250_000_000, time.UTC),
			},
			Partition: 1, SequenceNumber: 100, Offset: "4096",
			EnqueuedTime: time.Date(2025, 1, 31, 8, 0, 1, 0, time.UTC),
		},
		{
			DeviceID:      "dev-a",
			Body:          []byte(`{"version":3,"properties":{"reported":{"iothubDM":{"reboot":{"lastReboot":"2025-01-31T08:00:04.5Z","status":"running"}},"$version":7}}}`),
			CorrelationID: "c0ffee", ContentType: "application/json", ContentEncoding: "utf-8", UserID: []byte("myhub"),
			Properties: map[string]string{"hubName": "myhub", "deviceId": "dev-a", "operationTimestamp": "2025-01-31T08:00:05.2000000Z",
				"iothub-message-schema": "twinChangeNotification", "opType": "updateTwin"},
			Annotations: map[string]any{"iothub-connection-device-id": "dev-a", "iothub-message-source": "twinChangeEvents"},
			Partition:   1, SequenceNumber: 101, Offset: "4180",
			EnqueuedTime: time.Date(2025, 1, 31, 8, 0, 5, 200_000_000, time.UTC),
		},
	}
}

// TestEventHubEnvelopeGolden pins the batch envelope byte for byte
// (§3.1-§3.2) and checks its encodings explicitly.
func TestEventHubEnvelopeGolden(t *testing.T) {
	pc := partitionContext{FullyQualifiedNamespace: "localhost", EventHubName: "localhost", ConsumerGroup: "localdev", PartitionID: "1"}
	sys := sysData{MethodName: "TwinChangeProcessor", UtcNow: "2025-01-31T08:00:06.1234567Z", RandGuid: "3b1f5b8e-8f2a-4d55-9a53-3a4f7f1c2d10"}
	retry := &retryContext{RetryCount: 1, MaxRetryCount: 5, Exception: exceptionOf(errString("Response status code does not indicate success: 500 (Internal Server Error)."))}
	evs := goldenEvents()
	tests := []struct {
		golden  string
		trigger eventHubTrigger
		retry   *retryContext
		one     bool
	}{
		{"eventhub_many.golden", eventHubTrigger{binding: "events", many: true}, nil, false},
		{"eventhub_many_binary_retry.golden", eventHubTrigger{binding: "events", many: true, binary: true}, retry, false},
		{"eventhub_one.golden", eventHubTrigger{binding: "event"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var body []byte
			var err error
			if tt.one {
				body, err = buildEventHubSingle(&tt.trigger, pc, evs[1], sys, tt.retry)
			} else {
				body, err = buildEventHubBatch(&tt.trigger, pc, evs, sys, tt.retry)
			}
			require.NoError(t, err)
			compareGolden(t, tt.golden, body)
		})
	}

	t.Run("encodings", func(t *testing.T) {
		body, err := buildEventHubBatch(&eventHubTrigger{binding: "events", many: true}, pc, evs, sys, nil)
		require.NoError(t, err)
		var env struct {
			Data     map[string]string
			Metadata map[string]json.RawMessage
		}
		require.NoError(t, json.Unmarshal(body, &env))
		var bodies []string
		require.NoError(t, json.Unmarshal([]byte(env.Data["events"]), &bodies), "Data.events is a string holding a JSON array")
		require.Equal(t, []string{string(evs[0].Body), string(evs[1].Body)}, bodies)
		arrays := map[string]string{
			"SequenceNumberArray":  `[100,101]`,
			"OffsetArray":          `["4096","4180"]`,
			"PartitionKeyArray":    `[null,null]`,
			"EnqueuedTimeUtcArray": `["2025-01-31T08:00:01","2025-01-31T08:00:05.2"]`,
		}
		for name, want := range arrays {
			var s string
			require.NoError(t, json.Unmarshal(env.Metadata[name], &s), "%s is a string", name)
			require.JSONEq(t, want, s, name)
		}
		var sysProps string
		require.NoError(t, json.Unmarshal(env.Metadata["SystemPropertiesArray"], &sysProps))
		var sp []map[string]any
		require.NoError(t, json.Unmarshal([]byte(sysProps), &sp))
		require.Equal(t, "twinChangeEvents", sp[1]["iothub-message-source"])
		require.Equal(t, "dev-a", sp[1]["iothub-connection-device-id"])
		require.Equal(t, "2025-01-31T08:00:05.2Z", sp[1]["iothub-enqueuedtime"])
		require.Equal(t, "bXlodWI=", sp[1]["user-id"])
		require.Equal(t, "2025-01-31T08:00:00.25Z", sp[0]["iothub-creation-time-utc"])
		require.JSONEq(t, `{"FullyQualifiedNamespace":"localhost","EventHubName":"localhost","ConsumerGroup":"localdev","PartitionId":"1"}`, string(env.Metadata["PartitionContext"]))
		require.NotContains(t, env.Metadata, "RetryContext")
	})
}

// TestHTTPEnvelopeGolden pins the default-mode HTTP envelope (§2.1).
func TestHTTPEnvelopeGolden(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "http://localhost:7071/api/devices/dev-42/reboot?force=true&tag=a&tag=b", strings.NewReader(`{"delay":5}`))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Length", "11")
	sys := sysData{MethodName: "RebootDevice", UtcNow: "2025-01-01T12:00:00.1234567Z", RandGuid: "00000000-0000-4000-8000-000000000000"}
	body, err := buildHTTPEnvelope(r, "req", map[string]string{"deviceId": "dev-42"}, []byte(`{"delay":5}`), sys)
	require.NoError(t, err)
	compareGolden(t, "http_envelope.golden", body)

	r = httptest.NewRequest(http.MethodPost, "http://localhost:7071/api/upload", bytes.NewReader([]byte{0, 1, 2}))
	r.Header.Set("Content-Type", "application/octet-stream")
	body, err = buildHTTPEnvelope(r, "req", nil, []byte{0, 1, 2}, sys)
	require.NoError(t, err)
	require.Contains(t, string(body), `"Body":"AAEC"`, "binary bodies are base64")
	require.Contains(t, string(body), `"Params":{}`)
}

func compareGolden(t *testing.T, name string, body []byte) {
	t.Helper()
	var pretty bytes.Buffer
	require.NoError(t, json.Indent(&pretty, body, "", "  "))
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, pretty.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create it")
	require.Equal(t, string(want), pretty.String())
}

type errString string

func (e errString) Error() string { return string(e) }
