package funchost

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func ehFunction(cardinality, retry string) string {
	f := `{"bindings":[{"type":"eventHubTrigger","direction":"in","name":"events","eventHubName":"%FAKE_HUB%",` +
		`"connection":"FAKE_EH","consumerGroup":"%FAKE_GROUP%","cardinality":"` + cardinality + `","dataType":"string"}]`
	if retry != "" {
		f += `,"retry":` + retry
	}
	return f + "}"
}

// withEventHubs returns fakeHostJSON with extensions.eventHubs set to
// section (a JSON object).
func withEventHubs(section string) string {
	return strings.Replace(fakeHostJSON, `"version": "2.0",`, `"version": "2.0", "extensions": {"eventHubs": `+section+`},`, 1)
}

// TestEventHubRetry: a failing batch is re-delivered under the function's
// retry policy with Metadata.RetryContext, then checkpointed anyway, so
// the next event is delivered after it (§3.3). Events come from the local
// hub over AMQP.
func TestEventHubRetry(t *testing.T) {
	t.Parallel()
	// minEventBatchSize makes the first batch both events whatever the
	// link has prefetched when the first arrives.
	app := newFakeApp(t, withEventHubs(`{"minEventBatchSize": 2, "maxWaitTime": "00:00:00.200"}`), map[string]string{
		"Events": ehFunction("many", `{"strategy":"fixedDelay","maxRetryCount":2,"delayInterval":"00:00:00.010"}`),
	})
	hub := newEHHub(t, &localhub.Options{Partitions: 1})
	hub.send(t, "0", "a", "b")
	settings := ehSettings(t, hub.Hub)
	settings["FAKEWORKER_FAIL_FIRST"] = "3"
	logs := newLogRecorder(t)
	app.start(t, Options{Settings: settings, Logger: logs.logger()})

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

	hub.send(t, "0", "c")
	logs.await(t, "the next event, after the checkpoint", containsAll("INFO delivered sequenceNumbers=[2]", "function=Events"))
}

// TestEventHubOneAndInitialOffset: cardinality one delivers event by
// event, and initialOffsetOptions fromEnd skips what was there at start.
func TestEventHubOneAndInitialOffset(t *testing.T) {
	t.Parallel()
	app := newFakeApp(t, withEventHubs(`{"maxEventBatchSize": 10, "initialOffsetOptions": {"type": "fromEnd"}}`), map[string]string{"One": ehFunction("one", "")})
	hub := newEHHub(t, &localhub.Options{Partitions: 2})
	hub.send(t, "0", "before start")
	logs := newLogRecorder(t)
	app.start(t, Options{Settings: ehSettings(t, hub.Hub), Logger: logs.logger()})

	hub.send(t, "0", "x", "y")
	hub.send(t, "1", "z")
	logs.await(t, "partition 0, second event", containsAll("partition=0 sequenceNumbers=\"2\""))
	logs.await(t, "partition 1", containsAll("partition=1 sequenceNumbers=\"0\""))
	require.Equal(t, 1, logs.count(containsAll("partition=0 sequenceNumbers=\"1\"")))
	require.Zero(t, logs.count(containsAll("partition=0 sequenceNumbers=\"0\"")), "fromEnd: the event before start is skipped")
}

// TestEventHubCheckpointsSurviveRestart: checkpoints are written after
// each invocation, failed ones included, to files under CheckpointDir; a
// restarted host resumes after them, with nothing delivered twice, and
// without them starts over (initialOffsetOptions fromStart).
func TestEventHubCheckpointsSurviveRestart(t *testing.T) {
	t.Parallel()
	app := newFakeApp(t, fakeHostJSON, map[string]string{"Events": ehFunction("many", "")})
	hub := newEHHub(t, &localhub.Options{Partitions: 1})
	dir := t.TempDir()
	logs := newLogRecorder(t)

	// The first host's handler fails every invocation and the function has
	// no retry policy: the events are lost and checkpointed all the same.
	settings := ehSettings(t, hub.Hub)
	settings["FAKEWORKER_FAIL_FIRST"] = "1000"
	first, err := Start(t.Context(), app.options(t, Options{Settings: settings, Logger: logs.logger(), CheckpointDir: dir}))
	require.NoError(t, err)
	hub.send(t, "0", "lost")
	logs.await(t, "the lost batch", containsAll("no retry policy: the batch is checkpointed anyway", "firstSequenceNumber=0"))
	hub.send(t, "0", "lost too")
	logs.await(t, "the second lost batch", containsAll("no retry policy: the batch is checkpointed anyway", "firstSequenceNumber=1"))
	require.NoError(t, first.Close())

	cp, err := os.ReadFile(filepath.Join(dir, "localhost", "localhost", "localdev", "checkpoint", "0"))
	require.NoError(t, err, "the blob's name, as a file")
	require.Contains(t, string(cp), `"sequenceNumber":1`)

	hub.send(t, "0", "after restart")
	second := app.start(t, Options{Settings: ehSettings(t, hub.Hub), Logger: logs.logger(), CheckpointDir: dir})
	logs.await(t, "the event sent while the host was down", containsAll("INFO delivered sequenceNumbers=[2]"))
	require.Zero(t, logs.count(containsAll("INFO delivered sequenceNumbers=[0")), "checkpointed events are not delivered again")
	require.Zero(t, logs.count(containsAll("INFO delivered sequenceNumbers=[1")), "checkpointed events are not delivered again")
	require.NoError(t, second.Close())

	// A checkpoint that is not one is ignored, as the extension ignores an
	// invalid checkpoint blob: the host starts from the start of the stream.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "localhost", "localhost", "localdev", "checkpoint", "0"), []byte("{not json"), 0o600))
	app.start(t, Options{Settings: ehSettings(t, hub.Hub), Logger: logs.logger(), CheckpointDir: dir})
	logs.await(t, "the ignored checkpoint", containsAll("WARN checkpoint ignored", "the checkpoint is not valid"))
	logs.await(t, "everything again", containsAll("INFO delivered sequenceNumbers=[0"))
}

// TestEventHubHubRestart: the listener outlives a hub restart (the same
// data dir, so the same events and keys) behind a TCP proxy that stands
// for the stable address: it reconnects with bounded backoff and every
// event is delivered once, in order.
func TestEventHubHubRestart(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	startHub := func() *ehHub {
		hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir, Partitions: 1})
		require.NoError(t, err)
		return connectEHHub(t, hub)
	}
	hub := startHub()
	proxy := newTCPProxy(t, hub.AMQPPlainAddr())

	settings := ehSettings(t, hub.Hub)
	settings["FAKE_EH"] = strings.Replace(settings["FAKE_EH"], hub.AMQPPlainAddr()[strings.LastIndex(hub.AMQPPlainAddr(), ":"):], proxy.port(), 1)
	require.Contains(t, settings["FAKE_EH"], "sb://localhost"+proxy.port()+";")
	// Reconnect quickly: the host's clientRetryOptions, from app settings.
	settings["AzureFunctionsJobHost__extensions__eventHubs__clientRetryOptions__delay"] = "00:00:00.050"
	settings["AzureFunctionsJobHost__extensions__eventHubs__clientRetryOptions__maximumDelay"] = "00:00:00.200"
	app := newFakeApp(t, fakeHostJSON, map[string]string{"Events": ehFunction("many", "")})
	logs := newLogRecorder(t)
	app.start(t, Options{Settings: settings, Logger: logs.logger()})

	hub.send(t, "0", "e0", "e1", "e2")
	logs.await(t, "the events before the restart", func(l string) bool {
		return strings.Contains(l, "INFO delivered sequenceNumbers=[") && strings.Contains(l, "2]")
	})
	require.NoError(t, hub.Close())
	logs.await(t, "the lost connection", containsAll("the partition's receiver failed; reconnecting"))

	hub = startHub()
	proxy.retarget(hub.AMQPPlainAddr())
	hub.send(t, "0", "e3")
	logs.await(t, "the event after the restart", containsAll("INFO delivered sequenceNumbers=[3]"))
	require.Equal(t, []int64{0, 1, 2, 3}, deliveredSequenceNumbers(t, logs), "every event once, in order")
}

// deliveredSequenceNumbers lists the sequence numbers of the fake
// worker's successful deliveries, in log order.
func deliveredSequenceNumbers(t testing.TB, logs *logRecorder) []int64 {
	t.Helper()
	re := regexp.MustCompile(`INFO delivered sequenceNumbers=(\[[0-9,]*\])`)
	logs.mu.Lock()
	defer logs.mu.Unlock()
	var out []int64
	for _, l := range logs.lines {
		if m := re.FindStringSubmatch(l); m != nil {
			var seqs []int64
			require.NoError(t, json.Unmarshal([]byte(m[1]), &seqs))
			out = append(out, seqs...)
		}
	}
	return out
}

// TestEventHubConnectionNotSet: an Event Hubs function whose connection
// setting is missing is not loaded, with the extension's message, and
// the other functions run.
func TestEventHubConnectionNotSet(t *testing.T) {
	t.Parallel()
	app := newFakeApp(t, fakeHostJSON, map[string]string{"Events": ehFunction("many", ""), "Info": infoFunction})
	logs := newLogRecorder(t)
	h := app.start(t, Options{Settings: map[string]string{"FAKE_HUB": "hub", "FAKE_GROUP": "g"}, Logger: logs.logger()})
	logs.await(t, "the function in error", containsAll("function not loaded", "EventHub account connection string with name 'FAKE_EH' does not exist in the settings"))
	status, _ := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
	require.Equal(t, http.StatusOK, status)
}

// TestEventHubRefusedSettings: settings the Event Hub refuses (a consumer
// group it does not have, a wrong key) are logged as errors naming what to
// check, and retried with backoff; the rest of the host runs.
func TestEventHubRefusedSettings(t *testing.T) {
	t.Parallel()
	app := newFakeApp(t, fakeHostJSON, map[string]string{"Events": ehFunction("many", ""), "Info": infoFunction})
	hub := newEHHub(t, &localhub.Options{Partitions: 1})
	fast := func(s map[string]string) map[string]string {
		s["AzureFunctionsJobHost__extensions__eventHubs__clientRetryOptions__delay"] = "00:00:00.010"
		s["AzureFunctionsJobHost__extensions__eventHubs__clientRetryOptions__maximumDelay"] = "00:00:00.100"
		return s
	}

	t.Run("unknown consumer group", func(t *testing.T) {
		s := fast(ehSettings(t, hub.Hub))
		s["FAKE_GROUP"] = "nosuchgroup"
		logs := newLogRecorder(t)
		h := app.start(t, Options{Settings: s, Logger: logs.logger()})
		logs.awaitN(t, "the refusal, retried", 2, containsAll("ERROR the Event Hub refuses the partition's receiver", "consumerGroup=nosuchgroup", "amqp:not-found"))
		status, _ := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
		require.Equal(t, http.StatusOK, status)
	})

	t.Run("wrong key", func(t *testing.T) {
		s := fast(ehSettings(t, hub.Hub))
		s["FAKE_EH"] = regexp.MustCompile(`SharedAccessKey=[^;]+`).ReplaceAllString(s["FAKE_EH"], "SharedAccessKey=d3Jvbmc=")
		logs := newLogRecorder(t)
		h := app.start(t, Options{Settings: s, Logger: logs.logger()})
		logs.awaitN(t, "the refusal, retried", 2, containsAll("ERROR the Event Hubs listener was unable to start; retrying", "401", "unauthorized"))
		require.Zero(t, logs.count(containsAll("d3Jvbmc")), "the key is not logged")
		status, _ := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
		require.Equal(t, http.StatusOK, status)
	})
}

// TestEventHubEnvelopeFromAMQP pins the batch envelope of real events: a
// paho device's telemetry and reported-property update, routed by the
// local hub, read over AMQP with azeventhubs. Values that differ from run
// to run (times, ids) are replaced by their shape.
func TestEventHubEnvelopeFromAMQP(t *testing.T) {
	t.Parallel()
	app := newFakeApp(t, withEventHubs(`{"minEventBatchSize": 2, "maxWaitTime": "00:00:20"}`), map[string]string{"TwinChangeProcessor": ehFunction("many", "")})
	hub := newEHHub(t, nil)
	envelopes := t.TempDir()
	settings := ehSettings(t, hub.Hub)
	settings["FAKEWORKER_ENVELOPE_DIR"] = envelopes
	logs := newLogRecorder(t)
	app.start(t, Options{Settings: settings, Logger: logs.logger()})

	dev := localhubtest.NewDevice(t, hub.Hub, "dev-a", localhubtest.Reply(200, `{}`))
	require.NoError(t, dev.SendTelemetry(`{"temperature":21.5}`))
	dev.ReportJSON(t, map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"lastReboot": "2025-01-31T08:00:04.5Z", "status": "running"}}})
	logs.await(t, "one batch of both", containsAll("INFO delivered sequenceNumbers=[0,1]"))

	body, err := os.ReadFile(filepath.Join(envelopes, "TwinChangeProcessor-1.json"))
	require.NoError(t, err)
	compareGolden(t, "eventhub_amqp.golden", normalizedEnvelope(t, body))
}

// normalizedEnvelope decodes the string-held JSON of an Event Hubs batch
// envelope (Data.<name> and every *Array) and replaces the values that
// vary by their shape: <time> (UTC with Z), <time, no zone>, <guid>,
// <digits> (a string), <number>. Offsets vary with the size of the
// events before (the auth generation id's digits).
func normalizedEnvelope(t testing.TB, body []byte) []byte {
	t.Helper()
	var env struct {
		Data     map[string]string
		Metadata map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(body, &env))
	out := map[string]any{}
	data := map[string]any{}
	for k, v := range env.Data {
		var bodies []string
		require.NoError(t, json.Unmarshal([]byte(v), &bodies), "Data.%s is a string holding a JSON array of strings", k)
		var decoded []any
		for _, b := range bodies {
			var x any
			require.NoError(t, json.Unmarshal([]byte(b), &x))
			decoded = append(decoded, x)
		}
		data[k] = decoded
	}
	out["Data (strings holding JSON, decoded)"] = data
	meta := map[string]any{}
	for k, raw := range env.Metadata {
		var v any
		if strings.HasSuffix(k, "Array") {
			var s string
			require.NoError(t, json.Unmarshal(raw, &s), "%s is a string", k)
			raw = json.RawMessage(s)
			k += " (string holding JSON, decoded)"
		}
		require.NoError(t, json.Unmarshal(raw, &v))
		meta[k] = v
	}
	out["Metadata"] = meta
	b, err := marshal(shapeOfVarying(out, ""))
	require.NoError(t, err)
	return b
}

var (
	utcTime         = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$`)
	unspecifiedTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?$`)
	guid            = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	// varyingKeys hold values that differ between runs.
	varyingKeys = map[string]bool{"UtcNow": true, "RandGuid": true, "correlation-id": true, "iothub-enqueuedtime": true,
		"x-opt-enqueued-time": true, "EnqueuedTimeUtc": true, "operationTimestamp": true, "iothub-connection-auth-generation-id": true,
		"EnqueuedTimeUtcArray (string holding JSON, decoded)": true, "$lastUpdated": true,
		"Offset": true, "OffsetString": true, "x-opt-offset": true,
		"OffsetArray (string holding JSON, decoded)": true, "OffsetStringArray (string holding JSON, decoded)": true}
)

func shapeOfVarying(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = shapeOfVarying(e, k)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = shapeOfVarying(e, key)
		}
		return x
	case string:
		if !varyingKeys[key] {
			return x
		}
		switch {
		case utcTime.MatchString(x):
			return "<time>"
		case unspecifiedTime.MatchString(x):
			return "<time, no zone>"
		case guid.MatchString(x):
			return "<guid>"
		case regexp.MustCompile(`^\d+$`).MatchString(x):
			return "<digits>"
		}
		return "<unexpected: " + x + ">"
	case float64:
		if varyingKeys[key] {
			return "<number>"
		}
	}
	return v
}

// received is an event as azeventhubs gives it: the AMQP message, with
// Event Hubs' annotations as fields and the others as SystemProperties.
func received(body string, props map[string]any, amqpProps *azeventhubs.AMQPAnnotatedMessageProperties, annotations map[string]any, seq int64, offset string, enqueued time.Time) *azeventhubs.ReceivedEventData {
	e := &azeventhubs.ReceivedEventData{
		EventData: azeventhubs.EventData{Body: []byte(body), Properties: props},
		RawAMQPMessage: &azeventhubs.AMQPAnnotatedMessage{
			Properties:         amqpProps,
			MessageAnnotations: map[any]any{"x-opt-sequence-number": seq, "x-opt-offset": offset, "x-opt-enqueued-time": enqueued},
		},
		SequenceNumber:   seq,
		Offset:           offset,
		EnqueuedTime:     &enqueued,
		SystemProperties: map[string]any{},
	}
	for k, v := range annotations {
		e.RawAMQPMessage.MessageAnnotations[k] = v
		e.SystemProperties[k] = v
	}
	if amqpProps != nil {
		e.ContentType = amqpProps.ContentType
		e.CorrelationID = amqpProps.CorrelationID
		if id, ok := amqpProps.MessageID.(string); ok {
			e.MessageID = &id
		}
	}
	return e
}

// goldenEvents are a telemetry message and a twin-change notification as
// IoT Hub's built-in endpoint delivers them.
func goldenEvents() []*azeventhubs.ReceivedEventData {
	return []*azeventhubs.ReceivedEventData{
		received(`{"temperature":21.5}`, map[string]any{"temperatureAlert": "false"},
			&azeventhubs.AMQPAnnotatedMessageProperties{MessageID: "m-1", ContentType: ptr("application/json"), ContentEncoding: ptr("utf-8")},
			map[string]any{
				"iothub-connection-device-id":          "dev-a",
				"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
				"iothub-connection-auth-generation-id": "637388855582764406",
				"iothub-message-source":                "Telemetry",
				"iothub-creation-time-utc":             time.Date(2025, 1, 31, 8, 0, 0, 250_000_000, time.UTC),
				"iothub-enqueuedtime":                  time.Date(2025, 1, 31, 8, 0, 1, 0, time.UTC),
			}, 100, "4096", time.Date(2025, 1, 31, 8, 0, 1, 0, time.UTC)),
		received(`{"version":3,"properties":{"reported":{"iothubDM":{"reboot":{"lastReboot":"2025-01-31T08:00:04.5Z","status":"running"}},"$version":7}}}`,
			map[string]any{"hubName": "myhub", "deviceId": "dev-a", "operationTimestamp": "2025-01-31T08:00:05.2000000Z",
				"iothub-message-schema": "twinChangeNotification", "opType": "updateTwin"},
			&azeventhubs.AMQPAnnotatedMessageProperties{CorrelationID: "c0ffee", ContentType: ptr("application/json"), ContentEncoding: ptr("utf-8"), UserID: []byte("myhub")},
			map[string]any{
				"iothub-connection-device-id": "dev-a",
				"iothub-message-source":       "twinChangeEvents",
				"iothub-enqueuedtime":         time.Date(2025, 1, 31, 8, 0, 5, 200_000_000, time.UTC),
			}, 101, "4180", time.Date(2025, 1, 31, 8, 0, 5, 200_000_000, time.UTC)),
	}
}

// TestEventHubEnvelopeGolden pins the batch envelope byte for byte
// (§3.1-§3.2) and checks its encodings explicitly.
func TestEventHubEnvelopeGolden(t *testing.T) {
	t.Parallel()
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

// TestEventHubStartBoundedByContext: Start waits for the listeners, but no
// longer than its context: an endpoint that accepts connections and never
// answers does not hold it.
func TestEventHubStartBoundedByContext(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { silent.Close() })
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})
	app := newFakeApp(t, fakeHostJSON, map[string]string{"Events": ehFunction("many", "")})
	settings := map[string]string{"FAKE_HUB": "hub", "FAKE_GROUP": "g",
		"FAKE_EH": "Endpoint=sb://localhost" + silent.Addr().String()[strings.LastIndex(silent.Addr().String(), ":"):] + ";SharedAccessKeyName=k;SharedAccessKey=a2V5;UseDevelopmentEmulator=true"}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	h, err := Start(ctx, app.options(t, Options{Settings: settings}))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "waiting for the Event Hubs listeners to start")
	require.Nil(t, h)
}
