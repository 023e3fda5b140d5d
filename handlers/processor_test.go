package handlers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

func rebootLines(logs []string) []string {
	var out []string
	for _, l := range logs {
		if strings.HasPrefix(l, "reboot reported ") {
			out = append(out, l)
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

	var logs []string
	for _, batch := range hubBatches(t, hub) {
		logs = append(logs, invokeProcessor(t, app, batch).Logs...)
	}
	require.ElementsMatch(t, []string{
		"reboot reported deviceId=proc-a lastReboot=2025-01-31T08:00:04.5Z requestId=r-1 status=running version=3",
		"reboot reported deviceId=proc-b lastReboot=2025-01-31T08:00:09Z requestId=\"\" status=running version=2",
	}, trimAfterVersion(rebootLines(logs)))
	for _, l := range rebootLines(logs) {
		require.Regexp(t, ` enqueuedTime=20\d\d-\d\d-\d\dT[0-9:.]+Z sequenceNumber=\d+$`, l)
	}
	require.NotContains(t, strings.Join(logs, "\n"), "warning:")

	// The same lines reach slog (stdout), with the invocation id.
	out := app.logs.String()
	require.Contains(t, out, `msg="reboot reported" invocationId=inv-42 deviceId=proc-a lastReboot=2025-01-31T08:00:04.5Z requestId=r-1 status=running version=3`)
	require.Contains(t, out, `deviceId=proc-b lastReboot=2025-01-31T08:00:09Z`)

	// A retry delivers the same batch again: within one batch, duplicates
	// are logged once.
	var events []hostEvent
	for range 2 {
		events = append(events,
			twinChangeEvent("dup", 1, map[string]any{"lastReboot": "2025-01-31T08:00:00Z"}),
			twinChangeEvent("dup", 2, map[string]any{"lastReboot": "2025-01-31T08:00:00Z", "status": "running"}))
	}
	res := invokeProcessor(t, app, hostBatch(t, 0, events))
	require.Len(t, rebootLines(res.Logs), 1)
	require.Contains(t, res.Logs[len(res.Logs)-1], "events=4 twinChanges=4 reboots=1 duplicates=3")
}

// trimAfterVersion drops the enqueued time and sequence number, which
// depend on the run.
func trimAfterVersion(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i], _, _ = strings.Cut(l, " enqueuedTime=")
	}
	return out
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
			[]string{"twinChanges=0 reboots=0 duplicates=0 ignored=1"}},
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
	require.Contains(t, res.Logs[20], "partition=3 events=50 twinChanges=0 reboots=0 duplicates=0 ignored=0 malformed=50 warnings=50")
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

// BenchmarkTwinChangeProcessor measures the processor end to end (decode
// the host's envelope, filter, parse, dedupe, log through slog, encode the
// response) on batches where every event is a reboot, the worst case. Run
// with -cpu 1 for the one-core figure.
func BenchmarkTwinChangeProcessor(b *testing.B) {
	client, err := handlers.NewHubClient(handlers.Config{ConnectionString: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0", Endpoint: "https://127.0.0.1:1"}, nil)
	require.NoError(b, err)
	srv := handlers.NewServer(handlers.Deps{Hub: client, Logger: handlers.NewLogger(io.Discard, io.Discard, nil)})
	for _, size := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("events=%d", size), func(b *testing.B) {
			events := make([]hostEvent, size)
			base := time.Date(2025, 1, 31, 8, 0, 0, 0, time.UTC)
			for i := range events {
				events[i] = twinChangeEvent(fmt.Sprintf("device-%05d", i), int64(i), map[string]any{
					"lastReboot": base.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
					"status":     "running",
					"requestId":  fmt.Sprintf("6f1c0a52-3f0e-4a57-9a39-%012d", i),
				})
			}
			body := hostBatch(b, 0, events)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			start := time.Now()
			n := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/TwinChangeProcessor", bytes.NewReader(body)))
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
				n++
			}
			b.ReportMetric(float64(n*size)/time.Since(start).Seconds(), "events/s")
		})
	}
}
