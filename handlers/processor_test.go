package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// invocationResult is the host-facing response of TwinChangeProcessor.
type invocationResult struct {
	Outputs     map[string]any
	Logs        []string
	ReturnValue any
}

func invokeProcessor(t testing.TB, app *testApp, body []byte) invocationResult {
	t.Helper()
	resp, out := app.do(t, http.MethodPost, "/TwinChangeProcessor", string(body), map[string]string{
		"Content-Type": "application/json; charset=utf-8", "X-Azure-Functions-InvocationId": "inv-42",
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, "a non-2xx would fail the invocation; body: %s", out)
	var res invocationResult
	require.NoError(t, json.Unmarshal(out, &res))
	require.NotNil(t, res.Outputs)
	require.NotEmpty(t, res.Logs)
	require.True(t, strings.HasPrefix(res.Logs[len(res.Logs)-1], "batch processed "), "last line is the summary: %q", res.Logs)
	return res
}

func rebootLines(logs []string) []string { return linesStarting(logs, "reboot reported ") }

// linesStarting returns the lines of logs that start with prefix.
func linesStarting(logs []string, prefix string) []string {
	var out []string
	for _, l := range logs {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// processorLines are the reboot and state lines, without the enqueued
// time and sequence number, which depend on the run.
func processorLines(logs []string) []string {
	var out []string
	for _, l := range logs {
		if strings.HasPrefix(l, "reboot reported ") || strings.HasPrefix(l, "reboot state changed ") {
			head, _, _ := strings.Cut(l, " enqueuedTime=")
			_, prev, found := strings.Cut(l, " previousLastReboot=")
			if found {
				head += " previousLastReboot=" + prev
			}
			out = append(out, head)
		}
	}
	return out
}

// TestTwinChangeProcessorOnHubEvents feeds the processor the events a real
// (local) hub routed — lifecycle, connection state, telemetry and twin
// changes — as the Event Hubs trigger would deliver them.
func TestTwinChangeProcessorOnHubEvents(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	a := localhubtest.NewDevice(t, hub, "proc-a", localhubtest.Reply(200, `{}`))
	b := localhubtest.NewDevice(t, hub, "proc-b", localhubtest.Reply(200, `{}`))
	require.NoError(t, a.SendTelemetry(`{"temperature":21.5}`))
	reportReboot(t, a, map[string]any{"status": "rebooting", "requestId": "r-1"})
	reportReboot(t, a, map[string]any{"lastReboot": "2025-01-31T08:00:04.5Z", "status": "running", "requestId": "r-1"})
	reportReboot(t, b, map[string]any{"lastReboot": "2025-01-31T10:00:09+02:00", "status": "running"})
	b.ReportJSON(t, map[string]any{"firmware": "2.1"})

	feed := newHubFeed(hub)
	var logs []string
	for _, batch := range feed.batches(t) {
		logs = append(logs, invokeProcessor(t, app, batch).Logs...)
	}
	require.ElementsMatch(t, []string{
		`reboot state changed deviceId=proc-a status=rebooting requestId=r-1 reason="" lastReboot="" version=2`,
		`reboot reported deviceId=proc-a lastReboot=2025-01-31T08:00:04.5Z requestId=r-1 status=running version=3 previousLastReboot=""`,
		`reboot reported deviceId=proc-b lastReboot=2025-01-31T08:00:09Z requestId="" status=running version=2 previousLastReboot=""`,
	}, processorLines(logs))
	for _, l := range rebootLines(logs) {
		require.Regexp(t, ` enqueuedTime=20\d\d-\d\d-\d\dT[0-9:.]+Z sequenceNumber=\d+ previousLastReboot=""$`, l)
	}
	require.NotContains(t, strings.Join(logs, "\n"), "warning:")

	// The lines go to Logs only: the host also logs the handler's stdout,
	// so a copy there would print every line twice.
	out := app.logs.String()
	require.NotContains(t, out, "reboot reported")
	require.NotContains(t, out, "reboot state changed")
	require.NotContains(t, out, "batch processed")

	// The host delivers a batch again after a failure: nothing is logged
	// twice.
	for _, batch := range hubBatches(t, hub) {
		res := invokeProcessor(t, app, batch)
		require.Empty(t, processorLines(res.Logs))
	}
}

// TestTwinChangeProcessorOneLinePerReboot plays a device through a whole
// life as the simulator reports it (simulator/internal/device: the full
// iothubDM.reboot state on every connection, requestId and reason null
// when unset, the previous lastReboot while rebooting or failed) over the
// local hub, and feeds the processor what the hub routed. Each new
// lastReboot gives exactly one "reboot reported" line, whether the events
// come one batch each or all in one, and however often the device
// re-reports after reconnecting.
func TestTwinChangeProcessorOneLinePerReboot(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	cs, err := hub.CreateDevice("sim-1")
	require.NoError(t, err)
	const (
		l0 = "2025-01-31T08:00:00.000Z"
		l1 = "2025-01-31T08:00:12.345Z"
		l2 = "2025-01-31T09:30:07.001Z"
	)
	// state is the simulator's RebootState.Patch.
	state := func(last, status string, requestID, reason any) map[string]any {
		return map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{
			"lastReboot": last, "status": status, "requestId": requestID, "reason": reason}}}
	}
	dev := localhubtest.ConnectDevice(t, hub, cs, localhubtest.Reply(200, `{"result":"Reboot started"}`))
	// reconnect drops the connection and reports the state again, as the
	// simulator does on every new session.
	reconnect := func(patch map[string]any) {
		dev.Close()
		dev = localhubtest.ConnectDevice(t, hub, cs, localhubtest.Reply(200, `{"result":"Reboot started"}`))
		dev.ReportJSON(t, patch)
	}
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"boots", func() { dev.ReportJSON(t, state(l0, "running", nil, nil)) },
			[]string{`reboot reported deviceId=sim-1 lastReboot=2025-01-31T08:00:00Z requestId="" status=running version=2 previousLastReboot=""`}},
		{"reconnects", func() { reconnect(state(l0, "running", nil, nil)) }, nil},
		{"goes down for reboot r1", func() { dev.ReportJSON(t, state(l0, "rebooting", "r1", nil)) },
			[]string{`reboot state changed deviceId=sim-1 status=rebooting requestId=r1 reason="" lastReboot=2025-01-31T08:00:00Z version=4`}},
		{"is back from r1", func() { reconnect(state(l1, "running", "r1", nil)) },
			[]string{`reboot reported deviceId=sim-1 lastReboot=2025-01-31T08:00:12.345Z requestId=r1 status=running version=5 previousLastReboot=2025-01-31T08:00:00Z`}},
		{"loses its connection and re-reports", func() { reconnect(state(l1, "running", "r1", nil)) }, nil},
		{"and again", func() { reconnect(state(l1, "running", "r1", nil)) }, nil},
		{"fails reboot r2", func() { dev.ReportJSON(t, state(l1, "failed", "r2", "injected fault: the reboot could not start")) },
			[]string{`reboot state changed deviceId=sim-1 status=failed requestId=r2 reason="injected fault: the reboot could not start" lastReboot=2025-01-31T08:00:12.345Z version=8`}},
		{"re-reports the failure", func() { reconnect(state(l1, "failed", "r2", "injected fault: the reboot could not start")) }, nil},
		{"goes down for reboot r3", func() { dev.ReportJSON(t, state(l1, "rebooting", "r3", nil)) },
			[]string{`reboot state changed deviceId=sim-1 status=rebooting requestId=r3 reason="" lastReboot=2025-01-31T08:00:12.345Z version=10`}},
		{"is back from r3", func() { reconnect(state(l2, "running", "r3", nil)) },
			[]string{`reboot reported deviceId=sim-1 lastReboot=2025-01-31T09:30:07.001Z requestId=r3 status=running version=11 previousLastReboot=2025-01-31T08:00:12.345Z`}},
	}

	// One batch per step, on one app (one instance, one memory).
	stepApp := newTestApp(t, hub, appOptions{})
	feed := newHubFeed(hub)
	var all []string
	for _, st := range steps {
		st.do()
		var got []string
		for _, batch := range feed.batches(t) {
			got = append(got, processorLines(invokeProcessor(t, stepApp, batch).Logs)...)
		}
		require.Equal(t, st.want, got, "step %q", st.name)
		all = append(all, st.want...)
	}
	require.Len(t, rebootLines(all), 3, "one line per new lastReboot: l0, l1, l2")

	// All in one batch, on a fresh instance: the same lines.
	var got []string
	for _, batch := range hubBatches(t, hub) {
		got = append(got, processorLines(invokeProcessor(t, newTestApp(t, hub, appOptions{}), batch).Logs)...)
	}
	require.Equal(t, all, got)
}

// A module's twin change carrying iothubDM.reboot is not a reboot of its
// device: it is skipped, counted as ignored.
func TestTwinChangeProcessorSkipsModules(t *testing.T) {
	t.Parallel()
	app := newFakeHubApp(t, &fakeHub{status: http.StatusInternalServerError})
	reboot := map[string]any{"lastReboot": "2025-01-31T08:00:00Z", "status": "running"}
	bySys := twinChangeEvent("edge-1", 1, reboot)
	bySys.SystemProperties["iothub-connection-module-id"] = "$edgeAgent"
	byProps := twinChangeEvent("edge-1", 2, reboot)
	byProps.Properties["moduleId"] = "telemetry"
	device := twinChangeEvent("edge-1", 3, reboot)
	res := invokeProcessor(t, app, hostBatch(t, 0, []hostEvent{bySys, byProps, device}))
	require.Equal(t, []string{`reboot reported deviceId=edge-1 lastReboot=2025-01-31T08:00:00Z requestId="" status=running version=4 previousLastReboot=""`}, processorLines(res.Logs))
	require.Contains(t, res.Logs[len(res.Logs)-1], "events=3 twinChanges=1 reboots=1 stateChanges=0 repeats=0 ignored=2")
}

// With dataType "binary" in function.json the host sends each body as
// base64; the processor reads both encodings alike.
func TestTwinChangeProcessorReadsBinaryBatches(t *testing.T) {
	t.Parallel()
	events := []hostEvent{
		twinChangeEvent("bin-1", 1, map[string]any{"status": "rebooting", "requestId": "r"}),
		twinChangeEvent("bin-1", 2, map[string]any{"lastReboot": "2025-01-31T08:00:00Z", "status": "running", "requestId": "r"}),
	}
	var want []string
	for i, body := range [][]byte{hostBatch(t, 0, events), hostBatchBinary(t, 0, events)} {
		app := newFakeHubApp(t, &fakeHub{status: http.StatusInternalServerError})
		res := invokeProcessor(t, app, body)
		require.NotContains(t, strings.Join(res.Logs, "\n"), "warning:")
		got := processorLines(res.Logs)
		require.Len(t, got, 2)
		if i == 0 {
			want = got
			continue
		}
		require.Equal(t, want, got, "binary batch")
	}
}

func TestTwinChangeProcessorTolerance(t *testing.T) {
	t.Parallel()
	app := newFakeHubApp(t, &fakeHub{status: http.StatusInternalServerError})
	reboot := func(id string) hostEvent {
		return twinChangeEvent(id, 7, map[string]any{"lastReboot": "2025-01-31T08:00:00Z"})
	}
	withSys := func(e hostEvent, sys map[string]any) hostEvent { e.SystemProperties = sys; return e }
	withProps := func(e hostEvent, p map[string]string) hostEvent { e.Properties = p; return e }
	withBody := func(e hostEvent, body string) hostEvent { e.Body = []byte(body); return e }

	tests := []struct {
		name        string
		body        []byte
		wantReboots int
		wantLogs    []string // substrings, in order
	}{
		{"not JSON", []byte("<html>"), 0, []string{"warning: batch skipped: invocation: malformed envelope", "events=0"}},
		{"no events binding", []byte(`{"Data":{"a":"[]","b":"[]"},"Metadata":{}}`), 0, []string{`warning: batch skipped`, "events=0"}},
		{"empty batch", hostBatch(t, 0, nil), 0, []string{"batch processed partition=0 events=0"}},
		{"source annotation lost: schema property decides", hostBatch(t, 0, []hostEvent{withSys(reboot("d1"), map[string]any{})}), 1,
			[]string{"deviceId=d1 lastReboot=2025-01-31T08:00:00Z"}},
		{"telemetry that claims the schema is still telemetry", hostBatch(t, 0, []hostEvent{withSys(reboot("d1"), map[string]any{"iothub-message-source": "Telemetry"})}), 0,
			[]string{"ignored=1"}},
		{"replaceTwin is not a device report", hostBatch(t, 0, []hostEvent{withProps(reboot("d1"), map[string]string{"iothub-message-schema": "twinChangeNotification", "opType": "replaceTwin"})}), 0,
			[]string{"twinChanges=0 reboots=0 stateChanges=0 repeats=0 ignored=1"}},
		{"no device id anywhere", hostBatch(t, 0, []hostEvent{withProps(withSys(reboot(""), nil), map[string]string{"iothub-message-schema": "twinChangeNotification"})}), 0,
			[]string{"warning: event skipped (sequenceNumber=7): twin change names no device", "malformed=1"}},
		{"lastReboot not a time", hostBatch(t, 0, []hostEvent{twinChangeEvent("d2", 3, map[string]any{"lastReboot": "yesterday"})}), 0,
			[]string{`warning: event skipped (sequenceNumber=3): device d2: lastReboot "yesterday" is not an RFC 3339 time`}},
		{"lastReboot deleted", hostBatch(t, 0, []hostEvent{twinChangeEvent("d2", 3, map[string]any{"lastReboot": nil})}), 0,
			[]string{"twinChanges=1 reboots=0"}},
		{"body is a JSON string holding the notification", hostBatch(t, 0, []hostEvent{withBody(reboot("d3"), `"{\"properties\":{\"reported\":{\"iothubDM\":{\"reboot\":{\"lastReboot\":\"2025-01-31T08:00:00Z\"}},\"$version\":9}}}"`)}), 1,
			[]string{"deviceId=d3 lastReboot=2025-01-31T08:00:00Z requestId=\"\" status=\"\" version=9"}},
		{"values needing quotes", hostBatch(t, 0, []hostEvent{twinChangeEvent("d4", 1, map[string]any{"lastReboot": "2025-01-31T08:00:00Z", "status": "up again", "requestId": `a"b`})}), 1,
			[]string{`requestId="a\"b" status="up again"`}},
		{"metadata arrays malformed", []byte(`{"Data":{"events":"[\"{}\"]"},"Metadata":{"SystemPropertiesArray":"[1,","PropertiesArray":"[{\"iothub-message-schema\":7}]"}}`), 0,
			[]string{"warning: Metadata.SystemPropertiesArray is not a JSON array", "warning: event skipped", "malformed=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := invokeProcessor(t, app, tt.body)
			require.Len(t, rebootLines(res.Logs), tt.wantReboots, "logs: %q", res.Logs)
			all := strings.Join(res.Logs, "\n")
			at := 0
			for _, want := range tt.wantLogs {
				i := strings.Index(all[at:], want)
				require.GreaterOrEqual(t, i, 0, "want %q (in order) in:\n%s", want, all)
				at += i + len(want)
			}
		})
	}
}

func TestTwinChangeProcessorCapsWarnings(t *testing.T) {
	app := newFakeHubApp(t, &fakeHub{status: http.StatusInternalServerError})
	var events []hostEvent
	for i := range 50 {
		events = append(events, twinChangeEvent(fmt.Sprintf("bad-%d", i), int64(i), map[string]any{"lastReboot": 12}))
	}
	res := invokeProcessor(t, app, hostBatch(t, 3, events))
	require.Len(t, res.Logs, 21, "20 warnings and the summary")
	require.Contains(t, res.Logs[20], "partition=3 events=50 twinChanges=0 reboots=0 stateChanges=0 repeats=0 ignored=0 malformed=50 warnings=50")
}

// FuzzTwinChangeProcessor: whatever the host sends, the processor answers
// 200 with a well-formed invocation response ending in the summary line.
func FuzzTwinChangeProcessor(f *testing.F) {
	fixture, err := readFixture("twinchange_batch.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fixture)
	f.Add(hostBatch(f, 0, []hostEvent{twinChangeEvent("d", 1, map[string]any{"lastReboot": "2025-01-31T08:00:00Z", "requestId": "r"})}))
	f.Add([]byte(`{"Data":{"events":"[\"\\\"{}\\\"\"]"},"Metadata":{"SystemPropertiesArray":"[{\"iothub-message-source\":\"twinChangeEvents\",\"iothub-connection-device-id\":\"x\"}]"}}`))
	f.Add([]byte(`{"Data":{"events":["{\"properties\":{\"reported\":{\"iothubDM\":{\"reboot\":{\"lastReboot\":1}}}}}"]},"Metadata":{"PropertiesArray":[{"iothub-message-schema":"twinChangeNotification","deviceId":"y"}]}}`))
	f.Add([]byte(`[]`))
	client, err := handlers.NewHubClient(handlers.Config{ConnectionString: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0", Endpoint: "https://127.0.0.1:1"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	srv := handlers.NewServer(handlers.Deps{Hub: client})
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/TwinChangeProcessor", bytes.NewReader(body)))
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var res invocationResult
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("response is not JSON: %v", err)
		}
		if len(res.Logs) == 0 || !strings.HasPrefix(res.Logs[len(res.Logs)-1], "batch processed ") {
			t.Fatalf("no summary line: %q", res.Logs)
		}
	})
}

// The decoders the benchmark compares read the same things from the same
// batches.
func TestTwinChangeDecodersAgree(t *testing.T) {
	fixture, err := readFixture("twinchange_batch.json")
	require.NoError(t, err)
	events := realisticEvents(500)
	for name, body := range map[string][]byte{
		"fixture": fixture,
		"string":  hostBatch(t, 3, events),
		"binary":  hostBatchBinary(t, 3, events),
	} {
		t.Run(name, func(t *testing.T) {
			wantPartition, want, err := handlers.Decode("encoding-json", bytes.Clone(body))
			require.NoError(t, err)
			require.NotEmpty(t, want)
			for _, dec := range handlers.DecoderNames {
				partition, got, err := handlers.Decode(dec, bytes.Clone(body))
				require.NoError(t, err, dec)
				require.Equal(t, wantPartition, partition, dec)
				require.Equal(t, want, got, dec)
			}
		})
	}
}

// realisticEvents is what a hub's built-in endpoint carries for a fleet of
// devices that reboot now and then: mostly telemetry, twin changes of
// other properties, and reboot reports (rebooting, then back with a new
// lastReboot), over n/5 devices, as the simulator reports them.
func realisticEvents(n int) []hostEvent {
	base := time.Date(2025, 1, 31, 8, 0, 0, 0, time.UTC)
	events := make([]hostEvent, n)
	for i := range events {
		id := fmt.Sprintf("sim-%05d", i%max(n/5, 1))
		seq := int64(i)
		switch i % 10 {
		case 8:
			events[i] = twinChangeEvent(id, seq, map[string]any{"lastReboot": base.Format("2006-01-02T15:04:05.000Z"), "status": "rebooting",
				"requestId": fmt.Sprintf("6f1c0a52-3f0e-4a57-9a39-%012d", i), "reason": nil})
		case 9:
			events[i] = twinChangeEvent(id, seq, map[string]any{"lastReboot": base.Add(time.Duration(i) * time.Millisecond).Format("2006-01-02T15:04:05.000Z"),
				"status": "running", "requestId": fmt.Sprintf("6f1c0a52-3f0e-4a57-9a39-%012d", i-1), "reason": nil})
		case 6, 7:
			ev := twinChangeEvent(id, seq, nil)
			body, _ := json.Marshal(map[string]any{"version": 9, "properties": map[string]any{"reported": map[string]any{
				"firmware": map[string]any{"version": "2.1.7", "channel": "stable"}, "uptimeSeconds": 86400 + i,
				"$metadata": map[string]any{"$lastUpdated": "2025-01-31T08:00:05.1234567Z", "firmware": map[string]any{"$lastUpdated": "2025-01-31T08:00:05.1234567Z"}},
				"$version":  seq + 1}}})
			ev.Body = body
			events[i] = ev
		default:
			ev := twinChangeEvent(id, seq, nil)
			ev.Body = []byte(fmt.Sprintf(`{"temperature":%d.5,"humidity":%d,"pressure":1013.2,"battery":0.87,"ts":"2025-01-31T08:00:%02d.123Z"}`, 20+i%7, 40+i%20, i%60))
			ev.SystemProperties["iothub-message-source"] = "Telemetry"
			ev.Properties = map[string]string{"alert": "false"}
			events[i] = ev
		}
	}
	return events
}
