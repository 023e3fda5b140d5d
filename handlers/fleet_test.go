package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost"
	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// Fleet reboots end to end: the local hub in process (jobs, twins,
// queries, one active job at a time as on S1), the real handler under the
// local Functions host with FleetRebootTimer firing every second, and
// devices over MQTT that follow the reboot contract.

// fleetWait bounds every wait for a fleet reboot's progress.
const fleetWait = 60 * time.Second

// fleetAppPolicy is the app's shared access policy: fleet reboots create
// jobs (RegistryWrite) and query devices.jobs (ServiceConnect).
const fleetAppPolicy = "serviceAndRegistryReadWrite"

// fleetDevice follows the device contract over MQTT: it keeps its reboot
// state (iothubDM.reboot) and reports all of it at every connection, as
// the simulator does; on a reboot call it answers, reports "rebooting"
// with the request id, then "running" with a new lastReboot.
type fleetDevice struct {
	id      string
	connStr string
	calls   atomic.Int32
	dev     atomic.Pointer[localhubtest.Device]

	mu    sync.Mutex
	state map[string]any
	// refuse, when set, decides whether a call is refused (500 and a
	// "failed" report, as the simulator's --fail-share does).
	refuse func(d *fleetDevice) bool
	// hold, when set, decides whether a call waits for gate to close.
	hold func(d *fleetDevice) bool
	gate chan struct{}
	// held counts the calls waiting at gate until they have updated the
	// device's state: a test that reconnects the device after opening the
	// gate waits for none to be left, so the reconnect reports what they
	// did.
	held atomic.Int32
	// waveOf reads the device's wave from its tags (service side).
	waveOf func(id string) int
}

// set changes the device's behaviour under its lock: its method handler
// runs on another goroutine, and the race detector does not count the
// network as synchronisation.
func (d *fleetDevice) set(f func(d *fleetDevice)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *fleetDevice) handle(call localhubtest.MethodCall) *localhubtest.MethodReply {
	d.calls.Add(1)
	var p struct {
		RequestID string `json:"requestId"`
	}
	json.Unmarshal(call.Payload, &p)
	d.mu.Lock()
	gate, hold, refuse := d.gate, d.hold, d.refuse
	d.mu.Unlock()
	if hold != nil && hold(d) {
		d.held.Add(1)
		defer d.held.Add(-1)
		select {
		case <-gate:
		case <-time.After(fleetWait):
		}
	}
	if refuse != nil && refuse(d) {
		d.setState(map[string]any{"status": "failed", "reason": "injected fault", "requestId": p.RequestID}, true)
		return &localhubtest.MethodReply{Status: 500, Payload: []byte(`{"error":"Reboot failed"}`)}
	}
	d.setState(map[string]any{"status": "rebooting", "requestId": p.RequestID}, true)
	go func() {
		d.setState(map[string]any{"status": "running", "requestId": p.RequestID, "lastReboot": time.Now().UTC().Format(time.RFC3339Nano)}, true)
	}()
	return &localhubtest.MethodReply{Status: 200, Payload: []byte(`{"result":"Reboot started"}`)}
}

// setState merges patch into the device's state and reports the whole
// state; a report that fails (the hub is gone) is sent at the next
// connection.
func (d *fleetDevice) setState(patch map[string]any, report bool) {
	d.mu.Lock()
	if d.state == nil {
		d.state = map[string]any{}
	}
	for k, v := range patch {
		d.state[k] = v
	}
	body, _ := json.Marshal(map[string]any{"iothubDM": map[string]any{"reboot": d.state}})
	d.mu.Unlock()
	if dev := d.dev.Load(); report && dev != nil {
		dev.Report(string(body))
	}
}

// connect connects the device to hub and reports its state.
func (d *fleetDevice) connect(t *testing.T, hub *localhub.Hub) {
	t.Helper()
	dev, err := localhubtest.StartDevice(hub, d.connStr, d.handle)
	require.NoError(t, err)
	t.Cleanup(dev.Close)
	d.dev.Store(dev)
	d.mu.Lock()
	has := d.state != nil
	d.mu.Unlock()
	if has {
		d.setState(nil, true)
	}
}

func (d *fleetDevice) disconnect() {
	if dev := d.dev.Swap(nil); dev != nil {
		dev.Close()
	}
}

// fleetEnv is a hub, the function app under the local host, and devices.
type fleetEnv struct {
	t       *testing.T
	dataDir string
	appRoot string
	hub     *localhub.Hub
	host    *funchost.Host
	svc     *iothub.Client
	logs    *syncBuffer
	devices map[string]*fleetDevice
}

// appRoot is the function app (funchosttest.AppRoot's layout), built once
// for the test binary and removed by TestMain.
var appRoot struct {
	once sync.Once
	dir  string
	err  error
}

func sharedAppRoot(t *testing.T) string {
	t.Helper()
	appRoot.once.Do(func() {
		appRoot.dir, appRoot.err = os.MkdirTemp("", "handlers-app")
		if appRoot.err != nil {
			return
		}
		repo := funchosttest.RepoRoot(t)
		funchosttest.Build(t, repo, "./cmd/handler", filepath.Join(appRoot.dir, "handler"))
		copyInto := func(from, to string) {
			b, err := os.ReadFile(from)
			if err == nil {
				err = os.MkdirAll(filepath.Dir(to), 0o755)
			}
			if err == nil {
				err = os.WriteFile(to, b, 0o644)
			}
			appRoot.err = errors.Join(appRoot.err, err)
		}
		copyInto(filepath.Join(repo, "host.json"), filepath.Join(appRoot.dir, "host.json"))
		fns, _ := filepath.Glob(filepath.Join(repo, "functions", "*", "function.json"))
		for _, f := range fns {
			copyInto(f, filepath.Join(appRoot.dir, filepath.Base(filepath.Dir(f)), "function.json"))
		}
	})
	require.NoError(t, appRoot.err)
	require.FileExists(t, filepath.Join(appRoot.dir, "handler"), "the handler did not build (see the first test that needed it)")
	return appRoot.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if appRoot.dir != "" {
		os.RemoveAll(appRoot.dir)
	}
	os.Exit(code)
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	e := &fleetEnv{t: t, dataDir: t.TempDir(), appRoot: sharedAppRoot(t), logs: &syncBuffer{}, devices: map[string]*fleetDevice{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host log:\n%s", e.logs)
		}
	})
	e.startHub()
	e.startApp()
	return e
}

func (e *fleetEnv) startHub() {
	t := e.t
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: e.dataDir, Quotas: localhub.Quotas{ConcurrentJobs: 1}})
	require.NoError(t, err)
	t.Cleanup(func() { hub.Close() })
	e.hub = hub
	cs, err := hub.ServiceConnectionString("iothubowner")
	require.NoError(t, err)
	e.svc, err = iothub.NewClientFromConnectionString(cs, &iothub.ClientOptions{Endpoint: hub.HTTPSURL(),
		ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()}})
	require.NoError(t, err)
}

func (e *fleetEnv) startApp() {
	t := e.t
	cs, err := e.hub.ServiceConnectionString(fleetAppPolicy)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), fleetWait)
	defer cancel()
	host, err := funchost.Start(ctx, funchost.Options{
		ScriptRoot: e.appRoot,
		Settings: map[string]string{
			"IOTHUB_CONNECTION_STRING":                  cs,
			"IOTHUB_ENDPOINT":                           e.hub.HTTPSURL(),
			"IOTHUB_CA_FILE":                            e.hub.CAFile(),
			"FLEET_REBOOT_SCHEDULE":                     "*/1 * * * * *",
			"AzureWebJobs.TwinChangeProcessor.Disabled": "true",
		},
		DataDir: e.dataDir,
		Logger:  slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	require.NoError(t, err)
	t.Cleanup(func() { host.Close() })
	e.host = host
}

// addDevices registers and connects n devices named prefix-1..n with
// tags.
func (e *fleetEnv) addDevices(prefix string, n int, tags map[string]any) []*fleetDevice {
	t := e.t
	var out []*fleetDevice
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s-%02d", prefix, i)
		cs, err := e.hub.CreateDevice(id)
		require.NoError(t, err)
		if tags != nil {
			_, err = e.svc.UpdateTwin(t.Context(), id, iothub.TwinPatch{Tags: tags}, nil)
			require.NoError(t, err)
		}
		d := &fleetDevice{id: id, connStr: cs, waveOf: e.tagWave}
		d.connect(t, e.hub)
		e.devices[id] = d
		out = append(out, d)
	}
	return out
}

// do sends a request to the app.
func (e *fleetEnv) do(method, path, body string, header map[string]string) (*http.Response, map[string]any) {
	t := e.t
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.host.URL()+path, rd)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	if len(b) > 0 {
		require.NoError(t, json.Unmarshal(b, &m), "body: %s", b)
	}
	return resp, m
}

// start creates a fleet reboot and returns its id.
func (e *fleetEnv) start(body string, header map[string]string) string {
	t := e.t
	t.Helper()
	resp, st := e.do(http.MethodPost, "/api/reboots", body, header)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", st)
	id, _ := st["id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, "scheduled", st["state"])
	require.Equal(t, e.host.URL()+"/api/reboots/"+id, resp.Header.Get("Location"))
	require.Equal(t, "30", resp.Header.Get("Retry-After"))
	return id
}

// status reads a fleet reboot's status.
func (e *fleetEnv) status(id string) fleetStatusDoc {
	t := e.t
	t.Helper()
	resp, m := e.do(http.MethodGet, "/api/reboots/"+id, "", nil)
	require.Contains(t, []int{http.StatusOK, http.StatusAccepted}, resp.StatusCode, "%v", m)
	b, _ := json.Marshal(m)
	var st fleetStatusDoc
	require.NoError(t, json.Unmarshal(b, &st))
	if st.State == "scheduled" || st.State == "running" {
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.NotEmpty(t, resp.Header.Get("Location"))
	} else {
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	return st
}

// await polls the status until cond holds.
func (e *fleetEnv) await(id, what string, cond func(fleetStatusDoc) bool) fleetStatusDoc {
	t := e.t
	t.Helper()
	var last fleetStatusDoc
	require.Eventually(t, func() bool {
		last = e.status(id)
		return cond(last)
	}, fleetWait, 100*time.Millisecond, "waiting for %s", what)
	return last
}

func (e *fleetEnv) awaitState(id, state string) fleetStatusDoc {
	return e.await(id, "state "+state, func(s fleetStatusDoc) bool {
		if s.State != "scheduled" && s.State != "running" && s.State != state {
			e.t.Fatalf("fleet reboot ended %s (%s), want %s", s.State, s.Reason, state)
		}
		return s.State == state
	})
}

// waveOf reads a device's wave from its tags.
func (e *fleetEnv) waveOf(id string) int {
	twin, err := e.svc.GetTwin(e.t.Context(), id, nil)
	require.NoError(e.t, err)
	fr, _ := twin.Tags["fleetReboot"].(map[string]any)
	w, _ := fr["wave"].(float64)
	return int(w)
}

// tagWave is waveOf for devices' method handlers, which run on other
// goroutines and must not fail the test: 0 when the twin cannot be read.
func (e *fleetEnv) tagWave(id string) int {
	twin, err := e.svc.GetTwin(context.Background(), id, nil)
	if err != nil {
		return 0
	}
	fr, _ := twin.Tags["fleetReboot"].(map[string]any)
	w, _ := fr["wave"].(float64)
	return int(w)
}

// fleetStatusDoc is the status body as a client reads it.
type fleetStatusDoc struct {
	ID                string
	State             string
	Reason            string
	CancelRequestedAt string
	Devices           int
	CurrentWave       int
	Totals            countsDoc
	Waves             []struct {
		Wave  int
		State string
		JobID string
		countsDoc
		Rebooted int
	}
	Rebooted struct {
		Devices int
		Percent float64
	}
	FailedDevices []struct {
		DeviceID, Outcome, Code string
		Wave                    int
	}
	Selection struct {
		Query              string
		Selected, Excluded int
	}
}

type countsDoc struct {
	Devices, Pending, Running, Succeeded, Failed, NotOnline, TimedOut, Cancelled, Skipped int
}

// TestFleetRebootRunsWavesInTurn: nine devices of a site in waves of
// three complete, one IoT Hub job at a time, each device called once, the
// devices outside the selection never; every device reports the new
// lastReboot.
func TestFleetRebootRunsWavesInTurn(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	site := e.addDevices("plant7", 9, map[string]any{"site": "plant-7"})
	other := e.addDevices("plant8", 2, map[string]any{"site": "plant-8"})

	id := e.start(`{"query":"tags.site = 'plant-7'","waves":{"size":3},"abort":{"maxFailedPercent":10,"minDevices":3}}`, nil)
	st := e.awaitState(id, "completed")
	require.Equal(t, 9, st.Devices)
	require.Len(t, st.Waves, 3)
	for i, w := range st.Waves {
		require.Equal(t, i+1, w.Wave)
		require.Equal(t, "finished", w.State)
		require.Equal(t, countsDoc{Devices: 3, Succeeded: 3}, w.countsDoc, "wave %d", w.Wave)
	}
	require.Equal(t, countsDoc{Devices: 9, Succeeded: 9}, st.Totals)
	require.Empty(t, st.FailedDevices)
	require.Equal(t, "tags.site = 'plant-7'", st.Selection.Query)
	for _, d := range site {
		require.EqualValues(t, 1, d.calls.Load(), d.id)
	}
	for _, d := range other {
		require.Zero(t, d.calls.Load(), "%s is outside the selection", d.id)
	}

	// One wave at a time: each wave's job started after the previous ended.
	var prevEnd time.Time
	for _, w := range st.Waves {
		job, err := e.svc.GetJob(t.Context(), w.JobID, nil)
		require.NoError(t, err)
		require.Equal(t, iothub.JobStatusCompleted, job.Status)
		require.Equal(t, fmt.Sprintf("tags.fleetReboot.id = '%s' AND tags.fleetReboot.wave = %d", id, w.Wave), job.QueryCondition)
		require.False(t, job.StartTime.Before(prevEnd), "wave %d started before wave %d ended", w.Wave, w.Wave-1)
		require.NotNil(t, job.EndTime)
		prevEnd = *job.EndTime
	}
	st = e.await(id, "every device back", func(s fleetStatusDoc) bool { return s.Rebooted.Devices == 9 })
	require.Equal(t, 100.0, st.Rebooted.Percent)
}

// TestFleetRebootAbortsBeforeThirdWave: half of the second wave refuses
// the reboot; with more than 20 % of four outcomes failed the rollout
// aborts, and the third wave's devices are never called.
func TestFleetRebootAbortsBeforeThirdWave(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	devs := e.addDevices("abort", 6, map[string]any{"ring": "canary"})
	// The first device of the second wave to be called refuses: 50 %.
	var refusedInWave2 atomic.Bool
	for _, d := range devs {
		d.set(func(d *fleetDevice) {
			d.refuse = func(d *fleetDevice) bool { return d.waveOf(d.id) == 2 && refusedInWave2.CompareAndSwap(false, true) }
		})
	}

	id := e.start(`{"query":"tags.ring = 'canary'","waves":{"size":2},"abort":{"maxFailedPercent":20,"minDevices":4}}`, nil)
	st := e.awaitState(id, "aborted")
	require.Contains(t, st.Reason, "1 of 4 devices with an outcome failed (25.0%), above the abort threshold of 20%")
	require.Equal(t, []string{"finished", "finished", "skipped"}, []string{st.Waves[0].State, st.Waves[1].State, st.Waves[2].State})
	require.Equal(t, countsDoc{Devices: 2, Succeeded: 2}, st.Waves[0].countsDoc)
	require.Equal(t, countsDoc{Devices: 2, Succeeded: 1, Failed: 1}, st.Waves[1].countsDoc)
	require.Equal(t, countsDoc{Devices: 2, Skipped: 2}, st.Waves[2].countsDoc)
	require.Empty(t, st.Waves[2].JobID, "no job for the third wave")
	require.Len(t, st.FailedDevices, 1)
	require.Equal(t, 2, st.FailedDevices[0].Wave)
	require.Equal(t, "refused", st.FailedDevices[0].Outcome)
	for _, d := range devs {
		want := int32(1)
		if e.waveOf(d.id) == 3 {
			want = 0
		}
		require.Equal(t, want, d.calls.Load(), "%s (wave %d)", d.id, e.waveOf(d.id))
	}
	_, err := e.svc.GetJob(t.Context(), "fleetreboot-"+id+"-w3", nil)
	require.Error(t, err, "the third wave's job was never created")
}

// TestFleetRebootCancelStopsLaterWaves: cancelled while its first wave's
// job runs (a running job cannot be cancelled), the first wave finishes
// and no later wave starts; cancelling the ended fleet reboot is 409.
func TestFleetRebootCancelStopsLaterWaves(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	gate := make(chan struct{})
	devs := e.addDevices("cancel", 6, map[string]any{"site": "c"})
	for _, d := range devs {
		d.set(func(d *fleetDevice) { d.gate, d.hold = gate, func(*fleetDevice) bool { return true } })
	}
	id := e.start(`{"query":"tags.site = 'c'","waves":{"size":2}}`, nil)
	// Wave 1 is running: its devices hold their calls.
	e.await(id, "wave 1 running", func(s fleetStatusDoc) bool { return s.State == "running" && s.CurrentWave == 1 })
	require.Eventually(t, func() bool {
		n := 0
		for _, d := range devs {
			n += int(d.calls.Load())
		}
		return n == 2
	}, fleetWait, 10*time.Millisecond)

	resp, body := e.do(http.MethodPost, "/api/reboots/"+id+"/cancel", "", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", body)
	require.NotEmpty(t, body["cancelRequestedAt"])
	require.Equal(t, e.host.URL()+"/api/reboots/"+id, resp.Header.Get("Location"))
	resp, _ = e.do(http.MethodPost, "/api/reboots/"+id+"/cancel", "", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "a retried cancel")
	close(gate)

	st := e.awaitState(id, "cancelled")
	require.Equal(t, "cancelled on request", st.Reason)
	require.Equal(t, countsDoc{Devices: 2, Succeeded: 2}, st.Waves[0].countsDoc, "the running wave finished")
	require.Equal(t, "skipped", st.Waves[1].State)
	require.Equal(t, "skipped", st.Waves[2].State)
	called := 0
	for _, d := range devs {
		called += int(d.calls.Load())
	}
	require.Equal(t, 2, called, "only the first wave's devices were called")

	resp, body = e.do(http.MethodPost, "/api/reboots/"+id+"/cancel", "", nil)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Equal(t, "FleetRebootFinished", body["errorCode"])
}

// TestFleetRebootSurvivesHubAndAppRestarts: the hub and the function app
// both stop while the second wave's calls are in flight, and start again
// on the same data: the rollout completes as it would have, no device is
// called twice, and devices whose call was in flight (IoT Hub records
// their outcome as unknown) count as succeeded because their twins show
// they rebooted.
func TestFleetRebootSurvivesHubAndAppRestarts(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	devs := e.addDevices("restart", 6, map[string]any{"site": "r"})
	// The second wave's calls are held; everything stops while they are
	// in flight.
	gate := make(chan struct{})
	for _, d := range devs {
		d.set(func(d *fleetDevice) { d.gate, d.hold = gate, func(d *fleetDevice) bool { return d.waveOf(d.id) == 2 } })
	}
	id := e.start(`{"query":"tags.site = 'r'","waves":{"size":2},"connectTimeoutSeconds":30,"abort":{"maxFailedPercent":0}}`, nil)
	e.await(id, "wave 2 running", func(s fleetStatusDoc) bool { return s.CurrentWave >= 2 })
	require.Eventually(t, func() bool {
		for _, d := range devs {
			if e.waveOf(d.id) == 2 && d.calls.Load() > 0 {
				return true
			}
		}
		return false
	}, fleetWait, 10*time.Millisecond, "a second-wave call in flight")
	require.NoError(t, e.host.Close())
	for _, d := range devs {
		d.disconnect()
	}
	require.NoError(t, e.hub.Close())
	close(gate) // the held calls complete on the device's side: it reboots
	// Each released call has updated its device's state before the
	// device reconnects and reports it (the hub is down: no new call).
	require.Eventually(t, func() bool {
		for _, d := range devs {
			if d.held.Load() > 0 {
				return false
			}
		}
		return true
	}, fleetWait, 10*time.Millisecond, "the released calls settle")

	e.startHub()
	for _, d := range devs {
		d.connect(t, e.hub)
	}
	e.startApp()

	st := e.awaitState(id, "completed")
	require.Equal(t, countsDoc{Devices: 6, Succeeded: 6}, st.Totals, "the restarts change no outcome")
	// The hub lost the fate of the calls in flight; the twins settled it.
	pager := e.svc.NewDeviceJobsPager("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'fleetreboot-"+id+"-w2'", nil)
	page, err := pager.NextPage(t.Context())
	require.NoError(t, err)
	unknown := 0
	for _, dj := range page.DeviceJobs {
		if dj.Error != nil && dj.Error.Code == "OutcomeUnknown" {
			unknown++
		}
	}
	require.Positive(t, unknown, "a second-wave call was in flight when the hub stopped")
	for _, d := range devs {
		require.EqualValues(t, 1, d.calls.Load(), "%s was called %d times", d.id, d.calls.Load())
	}
	e.await(id, "every device back", func(s fleetStatusDoc) bool { return s.Rebooted.Devices == 6 })
}

// TestFleetRebootIdempotencyKey: the same request sent twice, and twice
// at once, with one Idempotency-Key is one fleet reboot.
func TestFleetRebootIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newFleetEnv(t)
	devs := e.addDevices("idem", 4, map[string]any{"site": "i"})
	body := `{"query":"tags.site = 'i'","waves":{"percent":50}}`
	key := map[string]string{"Idempotency-Key": "08585112233445566778899001122CU77"}

	var wg sync.WaitGroup
	answers := make([]map[string]any, 3)
	codes := make([]int, 3)
	for i := range answers {
		wg.Go(func() {
			resp, m := e.do(http.MethodPost, "/api/reboots", body, key)
			codes[i], answers[i] = resp.StatusCode, m
		})
	}
	wg.Wait()
	replays := 0
	for i, m := range answers {
		require.Equal(t, http.StatusAccepted, codes[i], "%v", m)
		require.Equal(t, answers[0]["id"], m["id"], "one id for one key")
		if m["replayed"] == true {
			replays++
		}
	}
	require.Equal(t, 2, replays, "one request created it, the others found it")
	id := answers[0]["id"].(string)

	resp, again := e.do(http.MethodPost, "/api/reboots", body, key)
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
	require.Equal(t, id, again["id"])

	e.awaitState(id, "completed")
	page, err := e.svc.NewQueryPager("SELECT COUNT() AS n FROM devices WHERE IS_DEFINED(tags.fleetRebootRecord)", nil).NextPage(t.Context())
	require.NoError(t, err)
	require.JSONEq(t, `{"n":1}`, string(page.Items[0]), "one record")
	for _, d := range devs {
		require.EqualValues(t, 1, d.calls.Load(), d.id)
	}

	// After it ended, the same key still names it: nothing starts again.
	resp, again = e.do(http.MethodPost, "/api/reboots", body, key)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "completed", again["state"])
	for _, d := range devs {
		require.EqualValues(t, 1, d.calls.Load(), d.id)
	}
}

// timerEnvelope is the timer's invocation envelope, for tests that move
// fleet reboots on by hand.
const timerEnvelope = `{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},"Metadata":{}}`

// tick runs FleetRebootTimer once against the handler served by app and
// returns the run's Logs.
func tick(t *testing.T, app *testApp) []string {
	t.Helper()
	resp, body := app.do(t, http.MethodPost, "/FleetRebootTimer", timerEnvelope, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var res struct{ Logs []string }
	require.NoError(t, json.Unmarshal(body, &res), "%s", body)
	return res.Logs
}

// okDevices connects devices that answer every reboot call with 200, and
// returns how many calls each got.
func okDevices(t *testing.T, hub *localhub.Hub, ids ...string) map[string]*atomic.Int32 {
	t.Helper()
	calls := make(map[string]*atomic.Int32, len(ids))
	for _, id := range ids {
		n := &atomic.Int32{}
		calls[id] = n
		localhubtest.NewDevice(t, hub, id, func(localhubtest.MethodCall) *localhubtest.MethodReply {
			n.Add(1)
			return &localhubtest.MethodReply{Status: 200, Payload: []byte(`{}`)}
		})
	}
	return calls
}

// TestFleetRebootBadInput: every refusal is a problem document, and
// nothing is written to IoT Hub.
func TestFleetRebootBadInput(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{policy: fleetAppPolicy})
	for _, id := range []string{"bad-1", "bad-2"} {
		_, err := hub.CreateDevice(id)
		require.NoError(t, err)
	}
	tests := []struct {
		name, body string
		status     int
		code       string
		detail     string
	}{
		{"no body", ``, 400, "MalformedJson", "query or deviceIds"},
		{"not an object", `[1]`, 400, "MalformedJson", ""},
		{"unknown field", `{"query":"*","wave":{"size":1}}`, 400, "InvalidArgument", `unknown field "wave"`},
		{"no selection", `{"waves":{"size":1}}`, 400, "InvalidArgument", "query"},
		{"both selections", `{"query":"*","deviceIds":["bad-1"]}`, 400, "InvalidArgument", "not both"},
		{"a whole query", `{"query":"SELECT * FROM devices"}`, 400, "InvalidArgument", "without SELECT or FROM"},
		{"escaping condition", `{"query":"tags.a = 1) OR (1 = 1"}`, 400, "InvalidArgument", "self-contained"},
		{"query the hub refuses", `{"query":"tags.site = "}`, 400, "InvalidQuery", "IoT Hub refused the selection's query: query syntax error"},
		{"unknown function", `{"query":"FOO(tags.a)"}`, 400, "InvalidQuery", ""},
		{"matches nothing", `{"query":"tags.site = 'nowhere'"}`, 400, "NoDevicesSelected", ""},
		{"unknown ids", `{"deviceIds":["ghost-1"]}`, 400, "NoDevicesSelected", ""},
		{"bad device id", `{"deviceIds":["a/b"]}`, 400, "InvalidDeviceId", ""},
		{"duplicate id", `{"deviceIds":["bad-1","bad-1"]}`, 400, "InvalidArgument", "twice"},
		{"empty ids", `{"deviceIds":[]}`, 400, "InvalidArgument", "1 to 100"},
		{"two wave forms", `{"query":"*","waves":{"size":1,"percent":10}}`, 400, "InvalidArgument", "one of size"},
		{"size 0", `{"query":"*","waves":{"size":0}}`, 400, "InvalidArgument", "waves.size"},
		{"percent 101", `{"query":"*","waves":{"percent":101}}`, 400, "InvalidArgument", "waves.percent"},
		{"rate too high", `{"query":"*","waves":{"devicesPerMinute":1001}}`, 400, "InvalidArgument", "devicesPerMinute"},
		{"growth too fast", `{"query":"*","waves":{"size":1,"growthFactor":6}}`, 400, "InvalidArgument", "growthFactor"},
		{"fractional size", `{"query":"*","waves":{"size":1.5}}`, 400, "InvalidArgument", "whole number"},
		{"threshold above 100", `{"query":"*","abort":{"maxFailedPercent":101}}`, 400, "InvalidArgument", "maxFailedPercent"},
		{"threshold missing", `{"query":"*","abort":{"minDevices":3}}`, 400, "InvalidArgument", "maxFailedPercent is required"},
		{"minDevices 0", `{"query":"*","abort":{"maxFailedPercent":5,"minDevices":0}}`, 400, "InvalidArgument", "minDevices"},
		{"timeout too short", `{"query":"*","responseTimeoutSeconds":4}`, 400, "InvalidArgument", "responseTimeoutSeconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := app.do(t, http.MethodPost, "/api/reboots", tt.body, nil)
			p := requireProblem(t, resp, body, tt.status, tt.code)
			require.Contains(t, p["detail"], tt.detail)
		})
	}
	svc := hubClient(t, hub)
	page, err := svc.NewQueryPager("SELECT COUNT() AS n FROM devices WHERE IS_DEFINED(tags.fleetRebootRecord) OR IS_DEFINED(tags.fleetReboot)", nil).NextPage(t.Context())
	require.NoError(t, err)
	require.JSONEq(t, `{"n":0}`, string(page.Items[0]), "nothing was written")

	resp, body := app.do(t, http.MethodGet, "/api/reboots/0f8fad5b-d9cb-469f-a165-70867728950e", "", nil)
	requireProblem(t, resp, body, 404, "FleetRebootNotFound")
	resp, body = app.do(t, http.MethodGet, "/api/reboots/not-a-fleet", "", nil)
	requireProblem(t, resp, body, 400, "InvalidArgument")
	resp, body = app.do(t, http.MethodPost, "/api/reboots/0f8fad5b-d9cb-469f-a165-70867728950e/cancel", "", nil)
	requireProblem(t, resp, body, 404, "FleetRebootNotFound")
	resp, body = app.do(t, http.MethodPost, "/api/reboots", `{"query":"*"}`, map[string]string{"Idempotency-Key": `a"b`})
	requireProblem(t, resp, body, 400, "InvalidArgument")

	// A valid request with too many waves for its devices.
	resp, body = app.do(t, http.MethodPost, "/api/reboots", `{"query":"*","waves":{"size":1}}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	for i := 3; i <= 60; i++ {
		_, err := hub.CreateDevice(fmt.Sprintf("bad-%d", i))
		require.NoError(t, err)
	}
	resp, body = app.do(t, http.MethodPost, "/api/reboots", `{"query":"STARTSWITH(deviceId, 'bad-') AND NOT IS_DEFINED(tags.fleetReboot)","waves":{"size":1}}`, nil)
	p := requireProblem(t, resp, body, 400, "InvalidArgument")
	require.Contains(t, p["detail"], "more than 50 waves")
}

// TestFleetRebootsNeverShareADevice: a second fleet reboot over devices
// of one that has not finished excludes them; once the first ends, they
// are free. A selection of busy devices only is refused. The timer is run
// by hand here, so each step is exact.
func TestFleetRebootsNeverShareADevice(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{policy: fleetAppPolicy})
	svc := hubClient(t, hub)
	calls := okDevices(t, hub, "s-1", "s-2", "s-3", "s-4")

	resp, body := app.do(t, http.MethodPost, "/api/reboots", `{"deviceIds":["s-1","s-2","s-3"]}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	first := decodeJSON(t, body)["id"].(string)

	// The first claimed its first device at once, the others when the
	// timer tags them; the second, over all four, excludes what the first
	// holds.
	resp, body = app.do(t, http.MethodPost, "/api/reboots", `{"deviceIds":["s-1"]}`, nil)
	requireProblem(t, resp, body, 409, "DevicesBusy")
	resp, body = app.do(t, http.MethodPost, "/api/reboots", `{"query":"STARTSWITH(deviceId, 's-')"}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	second := decodeJSON(t, body)
	require.Equal(t, map[string]any{"query": "STARTSWITH(deviceId, 's-')", "selected": 4.0, "excluded": 1.0}, second["selection"])

	members := func(fleet string) []string {
		var ids []string
		pager := svc.NewQueryPager("SELECT deviceId FROM devices WHERE tags.fleetReboot.id = '"+fleet+"'", nil)
		for pager.More() {
			page, err := pager.NextPage(t.Context())
			require.NoError(t, err)
			for _, raw := range page.Items {
				var row struct{ DeviceID string }
				require.NoError(t, json.Unmarshal(raw, &row))
				ids = append(ids, row.DeviceID)
			}
		}
		slices.Sort(ids)
		return ids
	}
	status := func(id string) map[string]any {
		_, body := app.do(t, http.MethodGet, "/api/reboots/"+id, "", nil)
		return decodeJSON(t, body)
	}
	for range 20 {
		if status(first)["state"] == "completed" && status(second["id"].(string))["state"] == "completed" {
			break
		}
		tick(t, app)
	}
	require.Equal(t, "completed", status(first)["state"])
	secondStatus := status(second["id"].(string))
	require.Equal(t, "completed", secondStatus["state"])
	a, b := members(first), members(second["id"].(string))
	require.Contains(t, a, "s-1")
	require.Equal(t, []string{"s-1", "s-2", "s-3", "s-4"}, slices.Sorted(slices.Values(append(slices.Clone(a), b...))), "every device in exactly one")
	require.Equal(t, float64(len(b)), secondStatus["devices"])
	require.Equal(t, float64(4-len(b)), secondStatus["selection"].(map[string]any)["excluded"], "excluded as tagged")
	for id, n := range calls {
		require.EqualValues(t, 1, n.Load(), "%s was called by exactly one fleet reboot", id)
	}

	// Both ended: the devices are free for a third.
	resp, body = app.do(t, http.MethodPost, "/api/reboots", `{"deviceIds":["s-2","s-4"]}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	require.Equal(t, 0.0, decodeJSON(t, body)["selection"].(map[string]any)["excluded"])
}

// TestFleetRebootOnTheHeadOfAnEndedOne: a device that keeps an ended fleet
// reboot's record (cancelled, with results, a reason and more waves) is
// the head of the next: the new record replaces the old one whole, so
// nothing of the old one (its cancel request, its waves, its results)
// leaks into the new one, which runs on its own terms.
func TestFleetRebootOnTheHeadOfAnEndedOne(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{policy: fleetAppPolicy})
	svc := hubClient(t, hub)
	calls := okDevices(t, hub, "h-1", "h-2")
	status := func(id string) map[string]any {
		_, body := app.do(t, http.MethodGet, "/api/reboots/"+id, "", nil)
		return decodeJSON(t, body)
	}

	// The first: two waves, cancelled before any device was called.
	resp, body := app.do(t, http.MethodPost, "/api/reboots", `{"deviceIds":["h-1","h-2"],"waves":{"size":1},"abort":{"maxFailedPercent":0}}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	first := decodeJSON(t, body)["id"].(string)
	resp, body = app.do(t, http.MethodPost, "/api/reboots/"+first+"/cancel", "", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	tick(t, app)
	require.Equal(t, "cancelled", status(first)["state"])

	// The second over its head alone: one wave, no abort rule.
	resp, body = app.do(t, http.MethodPost, "/api/reboots", `{"deviceIds":["h-1"]}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	created := decodeJSON(t, body)
	second := created["id"].(string)
	require.Empty(t, created["cancelRequestedAt"])
	require.Empty(t, created["endedAt"])
	require.Nil(t, created["abort"])
	require.Len(t, created["waves"], 1)
	var logs []string
	for range 10 {
		if status(second)["state"] == "completed" {
			break
		}
		logs = append(logs, tick(t, app)...)
	}
	// The run's progress, in the invocation's Logs (docs/function-app.md).
	job := "fleetreboot-" + second + "-w1"
	require.Contains(t, logs, "fleet reboot wave started fleetRebootId="+second+" wave=1 devices=1 jobId="+job)
	require.Contains(t, logs, "fleet reboot wave finished fleetRebootId="+second+" wave=1 devices=1 succeeded=1 failed=0 notOnline=0 timedOut=0 cancelled=0")
	require.Contains(t, logs, "fleet reboot completed fleetRebootId="+second+" devices=1 succeeded=1 failed=0 cancelled=0")
	st := status(second)
	require.Equal(t, "completed", st["state"], "%v", st)
	require.Equal(t, 1.0, st["devices"])
	require.Equal(t, map[string]any{"devices": 1.0, "pending": 0.0, "running": 0.0, "succeeded": 1.0, "failed": 0.0,
		"notOnline": 0.0, "timedOut": 0.0, "cancelled": 0.0, "skipped": 0.0}, st["totals"])
	require.EqualValues(t, 1, calls["h-1"].Load(), "h-1 was rebooted once, by the second")
	require.Zero(t, calls["h-2"].Load(), "h-2 was in the cancelled one only")

	twin, err := svc.GetTwin(t.Context(), "h-1", nil)
	require.NoError(t, err)
	rec := twin.Tags["fleetRebootRecord"].(map[string]any)
	for _, field := range []string{"cancelRequestedAt", "abort", "reason"} {
		require.NotContains(t, rec, field, "left over from the first fleet reboot")
	}
	require.Equal(t, 1.0, rec["byDeviceIds"])
	require.Equal(t, map[string]any{"1": 1.0}, rec["sizes"])
}

// TestFleetRebootsCreatedTogetherOverOneDevice: requests that race over
// the same device, none of which sees the others' records when it starts,
// make one fleet reboot; the others are refused (DevicesBusy), and no
// record answered with 202 is overwritten by a later one.
func TestFleetRebootsCreatedTogetherOverOneDevice(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{policy: fleetAppPolicy})
	_, err := hub.CreateDevice("race-1")
	require.NoError(t, err)
	const n = 4
	codes := make([]int, n)
	bodies := make([][]byte, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, app.URL+"/api/reboots", strings.NewReader(`{"deviceIds":["race-1"]}`))
			if err != nil {
				return
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			bodies[i], _ = io.ReadAll(resp.Body)
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i := range n {
		switch codes[i] {
		case http.StatusAccepted:
			created++
			id := decodeJSON(t, bodies[i])["id"].(string)
			resp, body := app.do(t, http.MethodGet, "/api/reboots/"+id, "", nil)
			require.Equal(t, http.StatusAccepted, resp.StatusCode, "fleet reboot %s answered 202 and then lost: %s", id, body)
		case http.StatusConflict:
			require.Equal(t, "DevicesBusy", decodeJSON(t, bodies[i])["errorCode"])
		default:
			t.Fatalf("request %d: %d %s", i, codes[i], bodies[i])
		}
	}
	require.Equal(t, 1, created, "one fleet reboot over one device")
}

// TestFleetRebootGoesOnWithoutDevicesItCannotTag: a selected device whose
// tags are full (IoT Hub refuses the record and the membership tag with
// 400) is neither the head nor a member: the request picks another head,
// the tagging leaves it out with a warning, and the others are rebooted;
// the fleet reboot does not wait for it forever.
func TestFleetRebootGoesOnWithoutDevicesItCannotTag(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{policy: fleetAppPolicy})
	svc := hubClient(t, hub)
	calls := okDevices(t, hub, "full-a", "full-b", "full-c")
	// Fill full-a's tags to within a few bytes of their 8 KB (a string
	// holds at most 4 KB).
	fits := func(n int) bool {
		_, err := svc.UpdateTwin(t.Context(), "full-a", iothub.TwinPatch{Tags: map[string]any{
			"filler1": strings.Repeat("x", 4090), "filler2": strings.Repeat("x", n)}}, nil)
		return err == nil
	}
	lo, hi := 0, 4096
	require.True(t, fits(lo))
	require.False(t, fits(hi), "a twin's tags are bounded")
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	require.True(t, fits(lo))

	resp, body := app.do(t, http.MethodPost, "/api/reboots", `{"query":"STARTSWITH(deviceId, 'full-')"}`, nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	id := decodeJSON(t, body)["id"].(string)
	require.Equal(t, 3.0, decodeJSON(t, body)["selection"].(map[string]any)["selected"])
	var st map[string]any
	for range 10 {
		tick(t, app)
		_, body = app.do(t, http.MethodGet, "/api/reboots/"+id, "", nil)
		if st = decodeJSON(t, body); st["state"] == "completed" {
			break
		}
	}
	require.Equal(t, "completed", st["state"], "%v", st)
	require.Equal(t, 2.0, st["devices"], "the full device is left out")
	require.Zero(t, calls["full-a"].Load(), "a device outside the fleet reboot's waves is never called")
	require.EqualValues(t, 1, calls["full-b"].Load())
	require.EqualValues(t, 1, calls["full-c"].Load())
}
