package localhub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/assert"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

var (
	invariantsSeed = flag.Uint64("invariants.seed", 1,
		"seed of TestInvariants' random operations; 0 picks one (and logs it)")
	invariantsDuration = flag.Duration("invariants.duration", 0,
		"run TestInvariants' operations for this long instead of a fixed count (make fuzz sets it)")
)

const (
	invWorkers     = 4   // concurrent callers, each owning its own devices
	invOpsByWorker = 120 // operations per worker without -invariants.duration
	invRegistryIDs = 5   // ids a worker creates, deletes and re-creates
	invMQTTDevices = 2   // devices a worker keeps connected over MQTT
	invOpTimeout   = 15 * time.Second
)

// TestInvariants drives one hub with random valid and invalid operations
// — REST through our client and raw HTTP, MQTT through paho devices — from
// several workers at once, and checks what must hold whatever the order:
//
//   - no request is answered 5xx (bad input is a 4xx, never a crash);
//   - twin version, desired $version and reported $version never go back,
//     and every acknowledged write moves them forward;
//   - nothing acknowledged is lost: each worker owns its devices and keeps
//     a model of them from the hub's acknowledgements; every read must
//     match it, connected devices must receive every desired change, and
//     after the run — and after a restart on the same data dir — every
//     device, key, tag and property the hub acknowledged is there.
//
// A fixed seed makes each worker's sequence of operations repeatable;
// -invariants.seed and -invariants.duration run others for longer.
func TestInvariants(t *testing.T) {
	seed := *invariantsSeed
	if seed == 0 {
		seed = mrand.Uint64()
	}
	t.Logf("seed %d (rerun with -invariants.seed=%d)", seed, seed)
	dataDir := t.TempDir()
	h := newInvHarness(t, localhubtest.New(t, &localhub.Options{DataDir: dataDir}))

	var deadline time.Time
	if *invariantsDuration > 0 {
		deadline = time.Now().Add(*invariantsDuration)
	}
	workers := make([]*invWorker, invWorkers)
	var wg sync.WaitGroup
	for i := range workers {
		workers[i] = newInvWorker(t, h, i, mrand.New(mrand.NewPCG(seed, uint64(i))))
		wg.Go(func() { workers[i].run(deadline) })
	}
	wg.Wait()
	ops := 0
	for _, w := range workers {
		ops += w.ops
	}
	t.Logf("%d operations, %d answered 4xx as expected", ops, h.refused.Load())
	if t.Failed() {
		return
	}

	for _, w := range workers {
		w.checkDesiredDelivered()
		w.checkAll(h)
	}
	h.checkQuery(workers)

	// Acknowledged means durable: a new hub on the same data dir has it all.
	must(t, h.hub.Close(), "close hub")
	h2 := newInvHarness(t, localhubtest.New(t, &localhub.Options{DataDir: dataDir}))
	for _, w := range workers {
		w.checkAll(h2)
	}
	h2.checkQuery(workers)
}

// invHarness is the shared side: the hub and the clients that reach it.
type invHarness struct {
	t        *testing.T
	hub      *localhub.Hub
	client   *iothub.Client // iothubowner, no retries: one request per call
	http     *http.Client
	ownerKey string
	readKey  string // registryRead: may not write
	refused  atomic.Int64
}

func newInvHarness(t *testing.T, hub *localhub.Hub) *invHarness {
	h := &invHarness{t: t, hub: hub}
	transport := &no5xx{t: t, next: hub.HTTPClient().Transport}
	h.http = &http.Client{Transport: transport, Timeout: invOpTimeout}
	ownerCS, err := hub.ServiceConnectionString("iothubowner")
	must(t, err, "owner connection string")
	h.client, err = iothub.NewClientFromConnectionString(ownerCS, &iothub.ClientOptions{
		Endpoint: hub.HTTPSURL(),
		ClientOptions: azcore.ClientOptions{
			Transport: h.http,
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
	})
	must(t, err, "client")
	h.ownerKey = mustParseCS(t, ownerCS).SharedAccessKey
	readCS, err := hub.ServiceConnectionString("registryRead")
	must(t, err, "registryRead connection string")
	h.readKey = mustParseCS(t, readCS).SharedAccessKey
	return h
}

// no5xx fails the test on any 5xx answer, whichever client got it.
type no5xx struct {
	t    *testing.T
	next http.RoundTripper
}

func (n *no5xx) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := n.next.RoundTrip(req)
	if err == nil && resp.StatusCode >= 500 {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		n.t.Errorf("invariant: %s %s answered %d: %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return resp, err
}

// raw sends a request the way no SDK would, signed for policy (or not
// signed when policy is ""), and returns the status and body.
func (h *invHarness) raw(method, path, policy string, body []byte, header map[string]string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(h.t.Context(), invOpTimeout)
	defer cancel()
	u := h.hub.HTTPSURL() + path
	if !strings.Contains(path, "api-version=") {
		u += "?api-version=2021-04-12"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	key := map[string]string{"iothubowner": h.ownerKey, "registryRead": h.readKey, "forged": base64.StdEncoding.EncodeToString(make([]byte, 32))}[policy]
	if policy != "" {
		keyName := policy
		if policy == "forged" {
			keyName = "iothubowner"
		}
		token, err := sas.New(h.hub.Hostname(), keyName, key, time.Now().Add(time.Hour))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// devModel is what the hub has acknowledged about one device.
type devModel struct {
	exists             bool
	primary, secondary string
	status             string
	tags               map[string]any
	desired            map[string]any
	reported           map[string]any
	etag               string // the twin etag last seen
	// The highest versions seen in the device's current life (a device
	// deleted and created again starts over).
	version, desiredVersion, reportedVersion int64
}

// mqttDevice is a connected device and what it has received.
type mqttDevice struct {
	*localhubtest.Device
	maxDesired atomic.Int64 // highest desired $version notified
}

type invWorker struct {
	t      *testing.T
	h      *invHarness
	name   string
	r      *mrand.Rand
	ids    []string // all ids this worker owns, registry ones first
	models map[string]*devModel
	mqtt   map[string]*mqttDevice
	ops    int
	last   []string // recent operations, for failure messages
}

func newInvWorker(t *testing.T, h *invHarness, n int, r *mrand.Rand) *invWorker {
	w := &invWorker{t: t, h: h, name: fmt.Sprintf("w%d", n), r: r, models: map[string]*devModel{}, mqtt: map[string]*mqttDevice{}}
	for i := range invRegistryIDs {
		id := fmt.Sprintf("inv-%s-r%d", w.name, i)
		w.ids = append(w.ids, id)
		w.models[id] = &devModel{}
	}
	for i := range invMQTTDevices {
		id := fmt.Sprintf("inv-%s-m%d", w.name, i)
		cs, err := h.hub.CreateDevice(id)
		must(t, err, "create "+id)
		key := mustParseCS(t, cs).SharedAccessKey
		// The device answers every method with its payload.
		echo := func(c localhubtest.MethodCall) *localhubtest.MethodReply {
			return &localhubtest.MethodReply{Status: 200, Payload: c.Payload}
		}
		d := &mqttDevice{Device: localhubtest.ConnectDevice(t, h.hub, cs, echo)}
		go drain(t, d)
		w.ids = append(w.ids, id)
		w.mqtt[id] = d
		// Created in-process: the keys and an empty twin are all we know.
		w.models[id] = &devModel{exists: true, primary: key, status: "enabled",
			tags: map[string]any{}, desired: map[string]any{}, reported: map[string]any{}}
		must(t, w.readTwin(id), "read the new twin")
		// A new twin starts at desired $version 1 without a notification.
		d.maxDesired.Store(w.models[id].desiredVersion)
	}
	return w
}

// drain reads what a device records, so it never stops answering, and
// keeps the highest desired $version it was sent.
func drain(t *testing.T, d *mqttDevice) {
	for {
		select {
		case <-t.Context().Done():
			return
		case <-d.Calls:
		case body := <-d.Desired:
			var patch struct {
				Version int64 `json:"$version"`
			}
			if json.Unmarshal(body, &patch) == nil {
				for {
					cur := d.maxDesired.Load()
					if patch.Version <= cur || d.maxDesired.CompareAndSwap(cur, patch.Version) {
						break
					}
				}
			}
		}
	}
}

func (w *invWorker) run(deadline time.Time) {
	type op struct {
		weight int
		fn     func() error
	}
	ops := []op{
		{6, w.opCreateDevice},
		{2, w.opCreateDeviceWithKeys},
		{3, w.opDeleteDevice},
		{2, w.opDisableOrEnable},
		{4, w.opGetDevice},
		{6, w.opGetTwin},
		{10, w.opPatchTwin},
		{3, w.opReplaceTwin},
		{8, w.opReportMQTT},
		{4, w.opInvokeMethod},
		{3, w.opQueryOne},
		{6, w.opInvalidREST},
		{2, w.opInvalidMQTT},
	}
	total := 0
	for _, o := range ops {
		total += o.weight
	}
	for i := 0; ; i++ {
		if deadline.IsZero() && i >= invOpsByWorker || !deadline.IsZero() && time.Now().After(deadline) {
			return
		}
		if w.t.Failed() {
			return // one violation is enough; later ones would only echo it
		}
		pick := w.r.IntN(total)
		for _, o := range ops {
			if pick -= o.weight; pick < 0 {
				if err := o.fn(); err != nil {
					w.t.Errorf("invariant (%s, operation %d): %v\nrecent operations:\n  %s", w.name, i, err, strings.Join(w.last, "\n  "))
				}
				break
			}
		}
		w.ops++
	}
}

// note records an operation for failure messages.
func (w *invWorker) note(format string, a ...any) {
	w.last = append(w.last, fmt.Sprintf(format, a...))
	if len(w.last) > 8 {
		w.last = w.last[1:]
	}
}

func (w *invWorker) anyID() string { return w.ids[w.r.IntN(len(w.ids))] }

func (w *invWorker) registryID() string { return w.ids[w.r.IntN(invRegistryIDs)] }

func (w *invWorker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(w.t.Context(), invOpTimeout)
}

// status is the HTTP status of a failed client call, 0 when it is not an
// HTTP answer.
func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

func (w *invWorker) refused(got, want int, what string) error {
	if got != want {
		return fmt.Errorf("%s: status %d, want %d", what, got, want)
	}
	w.h.refused.Add(1)
	return nil
}

// --- registry operations ---

func (w *invWorker) opCreateDevice() error {
	id := w.registryID()
	m := w.models[id]
	w.note("create %s (exists %v)", id, m.exists)
	ctx, cancel := w.ctx()
	defer cancel()
	resp, err := w.h.client.CreateDevice(ctx, id, nil)
	if m.exists {
		return w.refused(status(err), http.StatusConflict, "create of an existing device")
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	keys := resp.Device.Authentication.SymmetricKey
	if keys.PrimaryKey == "" || keys.SecondaryKey == "" {
		return fmt.Errorf("create %s: no generated keys", id)
	}
	*m = devModel{exists: true, primary: keys.PrimaryKey, secondary: keys.SecondaryKey, status: "enabled",
		tags: map[string]any{}, desired: map[string]any{}, reported: map[string]any{}}
	return nil
}

func (w *invWorker) opCreateDeviceWithKeys() error {
	id := w.registryID()
	m := w.models[id]
	primary, secondary := newKey(), newKey()
	w.note("create %s with keys (exists %v)", id, m.exists)
	ctx, cancel := w.ctx()
	defer cancel()
	_, err := w.h.client.CreateDevice(ctx, id, &iothub.CreateDeviceOptions{PrimaryKey: primary, SecondaryKey: secondary})
	if m.exists {
		return w.refused(status(err), http.StatusConflict, "create of an existing device")
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", id, err)
	}
	*m = devModel{exists: true, primary: primary, secondary: secondary, status: "enabled",
		tags: map[string]any{}, desired: map[string]any{}, reported: map[string]any{}}
	return nil
}

func (w *invWorker) opDeleteDevice() error {
	id := w.registryID()
	m := w.models[id]
	var ifMatch *azcore.ETag
	stale := false
	if m.exists && w.r.IntN(3) == 0 {
		// A device etag from the registry, or a made-up one.
		if w.r.IntN(2) == 0 {
			if etag, err := w.deviceETag(id); err == nil {
				ifMatch = &etag
			}
		} else {
			etag := azcore.ETag("AAAAAAAAAAA=")
			ifMatch, stale = &etag, true
		}
	}
	w.note("delete %s (exists %v, if-match %v)", id, m.exists, ifMatch != nil)
	ctx, cancel := w.ctx()
	defer cancel()
	_, err := w.h.client.DeleteDevice(ctx, id, &iothub.DeleteDeviceOptions{IfMatch: ifMatch})
	switch {
	case !m.exists:
		return w.refused(status(err), http.StatusNotFound, "delete of a missing device")
	case stale:
		return w.refused(status(err), http.StatusPreconditionFailed, "delete with a stale etag")
	case err != nil:
		return fmt.Errorf("delete %s: %w", id, err)
	}
	*m = devModel{}
	return nil
}

func (w *invWorker) deviceETag(id string) (azcore.ETag, error) {
	ctx, cancel := w.ctx()
	defer cancel()
	resp, err := w.h.client.GetDevice(ctx, id, nil)
	return resp.Device.ETag, err
}

func (w *invWorker) opDisableOrEnable() error {
	id := w.registryID()
	m := w.models[id]
	next := "disabled"
	if m.status == "disabled" {
		next = "enabled"
	}
	w.note("set %s %s (exists %v)", id, next, m.exists)
	body, _ := json.Marshal(map[string]any{
		"deviceId": id, "status": next,
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]string{"primaryKey": m.primary, "secondaryKey": m.secondary}},
	})
	code, resp, err := w.h.raw(http.MethodPut, "/devices/"+id, "iothubowner", body, map[string]string{"If-Match": "*"})
	if err != nil {
		return err
	}
	if !m.exists {
		return w.refused(code, http.StatusNotFound, "update of a missing device")
	}
	if code != http.StatusOK {
		return fmt.Errorf("set %s %s: status %d: %s", id, next, code, resp)
	}
	m.status = next
	return nil
}

func (w *invWorker) opGetDevice() error {
	id := w.anyID()
	m := w.models[id]
	w.note("get device %s (exists %v)", id, m.exists)
	ctx, cancel := w.ctx()
	defer cancel()
	resp, err := w.h.client.GetDevice(ctx, id, nil)
	if !m.exists {
		return w.refused(status(err), http.StatusNotFound, "get of a missing device")
	}
	if err != nil {
		return fmt.Errorf("get device %s: %w", id, err)
	}
	return m.checkDevice(resp.Device)
}

func (m *devModel) checkDevice(d iothub.Device) error {
	if d.Authentication.SymmetricKey.PrimaryKey != m.primary {
		return fmt.Errorf("device %s: primary key %q, acknowledged %q", d.DeviceID, d.Authentication.SymmetricKey.PrimaryKey, m.primary)
	}
	if m.secondary != "" && d.Authentication.SymmetricKey.SecondaryKey != m.secondary {
		return fmt.Errorf("device %s: secondary key changed", d.DeviceID)
	}
	if d.Status != m.status {
		return fmt.Errorf("device %s: status %q, acknowledged %q", d.DeviceID, d.Status, m.status)
	}
	return nil
}

// --- twins ---

func (w *invWorker) opGetTwin() error {
	id := w.anyID()
	m := w.models[id]
	w.note("get twin %s (exists %v)", id, m.exists)
	if !m.exists {
		ctx, cancel := w.ctx()
		defer cancel()
		_, err := w.h.client.GetTwin(ctx, id, nil)
		return w.refused(status(err), http.StatusNotFound, "get twin of a missing device")
	}
	return w.readTwin(id)
}

// readTwin reads a twin and checks it against the model.
func (w *invWorker) readTwin(id string) error {
	ctx, cancel := w.ctx()
	defer cancel()
	resp, err := w.h.client.GetTwin(ctx, id, nil)
	if err != nil {
		return fmt.Errorf("get twin %s: %w", id, err)
	}
	return w.models[id].observe(resp.Twin, false)
}

// observe checks a twin the hub returned against the model; after a write
// (advanced) the versions it changed must have moved forward.
func (m *devModel) observe(t iothub.Twin, advanced bool) error {
	desired, dv, err := section(t.Properties.Desired)
	if err != nil {
		return fmt.Errorf("twin %s desired: %w", t.DeviceID, err)
	}
	reported, rv, err := section(t.Properties.Reported)
	if err != nil {
		return fmt.Errorf("twin %s reported: %w", t.DeviceID, err)
	}
	for _, c := range []struct {
		name      string
		got, want map[string]any
	}{{"tags", t.Tags, m.tags}, {"desired", desired, m.desired}, {"reported", reported, m.reported}} {
		if !jsonEqual(c.got, c.want) {
			return fmt.Errorf("twin %s %s: hub has %s, acknowledged %s", t.DeviceID, c.name, mustJSON(c.got), mustJSON(c.want))
		}
	}
	if t.Status != m.status {
		return fmt.Errorf("twin %s: status %q, acknowledged %q", t.DeviceID, t.Status, m.status)
	}
	if t.Version < m.version || dv < m.desiredVersion || rv < m.reportedVersion {
		return fmt.Errorf("twin %s: versions went back: version %d→%d, desired %d→%d, reported %d→%d",
			t.DeviceID, m.version, t.Version, m.desiredVersion, dv, m.reportedVersion, rv)
	}
	if advanced && t.Version == m.version {
		return fmt.Errorf("twin %s: an acknowledged write left version at %d", t.DeviceID, t.Version)
	}
	m.version, m.desiredVersion, m.reportedVersion, m.etag = t.Version, dv, rv, string(t.ETag)
	return nil
}

// section splits a desired or reported section into its properties and
// its $version.
func section(s map[string]any) (map[string]any, int64, error) {
	props := map[string]any{}
	var version int64
	for k, v := range s {
		switch k {
		case "$metadata":
		case "$version":
			f, ok := v.(float64)
			if !ok {
				return nil, 0, fmt.Errorf("$version is %v", v)
			}
			version = int64(f)
		default:
			props[k] = v
		}
	}
	return props, version, nil
}

func (w *invWorker) opPatchTwin() error {
	id := w.anyID()
	m := w.models[id]
	var patch iothub.TwinPatch
	switch w.r.IntN(3) {
	case 0:
		patch.Tags = w.patch(m.tags)
	case 1:
		patch.Desired = w.patch(m.desired)
	default:
		patch.Tags, patch.Desired = w.patch(m.tags), w.patch(m.desired)
	}
	var opts iothub.UpdateTwinOptions
	stale := false
	switch w.r.IntN(4) {
	case 0:
		if m.etag != "" {
			etag := azcore.ETag(m.etag)
			opts.IfMatch = &etag
		}
	case 1:
		etag := azcore.ETag("AAAAAAAAAAA=") // no twin ever has it: versions start higher
		opts.IfMatch, stale = &etag, m.exists
	}
	w.note("patch twin %s tags=%s desired=%s (exists %v, stale %v)", id, mustJSON(patch.Tags), mustJSON(patch.Desired), m.exists, stale)
	ctx, cancel := w.ctx()
	defer cancel()
	resp, err := w.h.client.UpdateTwin(ctx, id, patch, &opts)
	switch {
	case !m.exists:
		return w.refused(status(err), http.StatusNotFound, "patch of a missing twin")
	case stale:
		return w.refused(status(err), http.StatusPreconditionFailed, "patch with a stale etag")
	case err != nil:
		return fmt.Errorf("patch twin %s: %w", id, err)
	}
	before := m.desiredVersion
	if patch.Tags != nil {
		m.tags = merge(m.tags, patch.Tags)
	}
	if patch.Desired != nil {
		m.desired = merge(m.desired, patch.Desired)
	}
	if err := m.observe(resp.Twin, true); err != nil {
		return err
	}
	if patch.Desired != nil && m.desiredVersion <= before {
		return fmt.Errorf("twin %s: a desired patch left $version at %d", id, m.desiredVersion)
	}
	return nil
}

func (w *invWorker) opReplaceTwin() error {
	id := w.anyID()
	m := w.models[id]
	tags, desired := w.patch(nil), w.patch(nil)
	body, _ := json.Marshal(map[string]any{"tags": tags, "properties": map[string]any{"desired": desired}})
	w.note("replace twin %s with %s (exists %v)", id, body, m.exists)
	code, resp, err := w.h.raw(http.MethodPut, "/twins/"+id, "iothubowner", body, nil)
	if err != nil {
		return err
	}
	if !m.exists {
		return w.refused(code, http.StatusNotFound, "replace of a missing twin")
	}
	if code != http.StatusOK {
		return fmt.Errorf("replace twin %s: status %d: %s", id, code, resp)
	}
	var twin iothub.Twin
	if err := json.Unmarshal(resp, &twin); err != nil {
		return fmt.Errorf("replace twin %s: %w", id, err)
	}
	before := m.desiredVersion
	m.tags, m.desired = merge(nil, tags), merge(nil, desired)
	if err := m.observe(twin, true); err != nil {
		return err
	}
	if m.desiredVersion <= before {
		return fmt.Errorf("twin %s: a replace left desired $version at %d", id, m.desiredVersion)
	}
	return nil
}

// --- the device side ---

func (w *invWorker) mqttID() string {
	return w.ids[invRegistryIDs+w.r.IntN(invMQTTDevices)]
}

func (w *invWorker) opReportMQTT() error {
	id := w.mqttID()
	m := w.models[id]
	patch := w.patch(m.reported)
	body := mustJSON(patch)
	w.note("report %s %s", id, body)
	version, err := w.mqtt[id].Report(body)
	if err != nil {
		return fmt.Errorf("report %s: %w", id, err)
	}
	if version <= m.reportedVersion {
		return fmt.Errorf("twin %s: a reported patch was acknowledged with $version %d after %d", id, version, m.reportedVersion)
	}
	m.reported = merge(m.reported, patch)
	m.reportedVersion = version
	return w.readTwin(id)
}

func (w *invWorker) opInvokeMethod() error {
	id := w.anyID()
	m := w.models[id]
	_, connected := w.mqtt[id]
	payload := mustJSON(w.patch(nil))
	w.note("invoke on %s (exists %v, connected %v)", id, m.exists, connected)
	ctx, cancel := w.ctx()
	defer cancel()
	resp, err := w.h.client.InvokeMethod(ctx, id, iothub.MethodRequest{
		MethodName: "echo", Payload: json.RawMessage(payload), ResponseTimeout: 5 * time.Second,
	}, nil)
	if !connected {
		return w.refused(status(err), http.StatusNotFound, "method on a device that is not connected")
	}
	if err != nil {
		return fmt.Errorf("invoke on %s: %w", id, err)
	}
	if resp.Status != 200 || !jsonEqualRaw(resp.Payload, []byte(payload)) {
		return fmt.Errorf("invoke on %s: got %d %s, the device echoes 200 %s", id, resp.Status, resp.Payload, payload)
	}
	return nil
}

func (w *invWorker) opQueryOne() error {
	id := w.anyID()
	m := w.models[id]
	w.note("query %s (exists %v)", id, m.exists)
	ctx, cancel := w.ctx()
	defer cancel()
	pager := w.h.client.NewQueryPager(fmt.Sprintf("SELECT * FROM devices WHERE deviceId = '%s'", id), nil)
	var twins []iothub.Twin
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("query %s: %w", id, err)
		}
		for _, item := range page.Items {
			var t iothub.Twin
			if err := json.Unmarshal(item, &t); err != nil {
				return fmt.Errorf("query %s: %w", id, err)
			}
			twins = append(twins, t)
		}
	}
	if !m.exists {
		if len(twins) != 0 {
			return fmt.Errorf("query %s: a deleted device is still found", id)
		}
		return nil
	}
	if len(twins) != 1 {
		return fmt.Errorf("query %s: %d twins, want 1", id, len(twins))
	}
	return m.observe(twins[0], false)
}

// --- bad input: refused with a 4xx, and it changes nothing ---

func (w *invWorker) opInvalidREST() error {
	id := w.anyID()
	twin := "/twins/" + id
	cases := []struct {
		name         string
		method, path string
		policy       string
		body         string
		want         int
	}{
		{"malformed JSON twin patch", http.MethodPatch, twin, "iothubowner", `{"tags":{"a":`, 400},
		{"twin patch that is an array", http.MethodPatch, twin, "iothubowner", `[1,2]`, 400},
		{"desired key with $", http.MethodPatch, twin, "iothubowner", `{"properties":{"desired":{"$bad":1}}}`, 400},
		{"desired key with a dot", http.MethodPatch, twin, "iothubowner", `{"properties":{"desired":{"a.b":1}}}`, 400},
		{"tag key with a space", http.MethodPatch, twin, "iothubowner", `{"tags":{"a b":1}}`, 400},
		{"desired string over 4 KB", http.MethodPatch, twin, "iothubowner", `{"properties":{"desired":{"big":"` + strings.Repeat("x", 5000) + `"}}}`, 400},
		{"desired deeper than 10 levels", http.MethodPatch, twin, "iothubowner", `{"properties":{"desired":` + strings.Repeat(`{"d":`, 12) + "1" + strings.Repeat("}", 12) + `}}`, 400},
		{"no credentials", http.MethodPatch, twin, "", `{"tags":{"k0":1}}`, 401},
		{"a forged key", http.MethodGet, twin, "forged", ``, 401},
		{"registryRead writing", http.MethodPut, "/devices/" + id, "registryRead", `{"deviceId":"` + id + `"}`, 401},
		{"device id with a space", http.MethodPut, "/devices/bad%20id", "iothubowner", `{"deviceId":"bad id"}`, 400},
		{"device id over 128 characters", http.MethodPut, "/devices/" + strings.Repeat("d", 129), "iothubowner", `{}`, 400},
		{"device id in the body differs", http.MethodPut, "/devices/" + id + "-x", "iothubowner", `{"deviceId":"` + id + `"}`, 400},
		{"method timeout below 5 s", http.MethodPost, twin + "/methods", "iothubowner", `{"methodName":"echo","payload":{},"responseTimeoutInSeconds":1}`, 400},
		{"method without a name", http.MethodPost, twin + "/methods", "iothubowner", `{"payload":{}}`, 400},
		{"query that does not parse", http.MethodPost, "/devices/query", "iothubowner", `{"query":"SELEKT * FROM devices"}`, 400},
		{"list with top 0", http.MethodGet, "/devices?top=0&api-version=2021-04-12", "iothubowner", ``, 400},
		{"no api-version", http.MethodGet, twin + "?x=1&api-version=", "iothubowner", ``, 400},
		{"an unknown route", http.MethodGet, "/nothing/here", "iothubowner", ``, 404},
	}
	c := cases[w.r.IntN(len(cases))]
	w.note("invalid: %s on %s", c.name, id)
	code, body, err := w.h.raw(c.method, c.path, c.policy, []byte(c.body), nil)
	if err != nil {
		return err
	}
	// A twin patch aimed at a missing device may be refused as missing.
	if code == http.StatusNotFound && !w.models[id].exists && strings.HasPrefix(c.path, twin) && c.want == 400 {
		w.h.refused.Add(1)
		return nil
	}
	if code != c.want {
		return fmt.Errorf("%s: status %d, want %d: %s", c.name, code, c.want, body)
	}
	w.h.refused.Add(1)
	if w.models[id].exists && w.r.IntN(2) == 0 {
		return w.readTwin(id) // and nothing changed
	}
	return nil
}

func (w *invWorker) opInvalidMQTT() error {
	id := w.mqttID()
	bodies := []string{`{"a":`, `[1]`, `"text"`, `{"$bad":1}`, `{"a.b":1}`, `{"big":"` + strings.Repeat("x", 5000) + `"}`}
	body := bodies[w.r.IntN(len(bodies))]
	w.note("invalid report %s %.40s", id, body)
	_, err := w.mqtt[id].Report(body)
	if err == nil || !strings.Contains(err.Error(), "status 400") {
		return fmt.Errorf("report %.40s from %s: %v, want status 400", body, id, err)
	}
	w.h.refused.Add(1)
	return w.readTwin(id)
}

// --- after the run ---

// checkDesiredDelivered: every acknowledged desired change reached the
// connected devices (the last notification carries the last $version).
func (w *invWorker) checkDesiredDelivered() {
	for id, d := range w.mqtt {
		want := w.models[id].desiredVersion
		assert.EventuallyWithT(w.t, func(c *assert.CollectT) {
			got := d.maxDesired.Load()
			assert.Equalf(c, want, got, "invariant: device %s was last notified of desired $version %d; the twin is at %d", id, got, want)
		}, localhubtest.DeviceTimeout, 10*time.Millisecond)
	}
}

// checkAll reads every device of the worker from h and checks it against
// what was acknowledged.
func (w *invWorker) checkAll(h *invHarness) {
	ctx, cancel := w.ctx()
	defer cancel()
	for _, id := range w.ids {
		m := w.models[id]
		dev, err := h.client.GetDevice(ctx, id, nil)
		if !m.exists {
			if status(err) != http.StatusNotFound {
				w.t.Errorf("invariant: deleted device %s: %v", id, err)
			}
			continue
		}
		if err != nil {
			w.t.Errorf("invariant: acknowledged device %s lost: %v", id, err)
			continue
		}
		if err := m.checkDevice(dev.Device); err != nil {
			w.t.Errorf("invariant: %v", err)
		}
		twin, err := h.client.GetTwin(ctx, id, nil)
		if err != nil {
			w.t.Errorf("invariant: twin of %s lost: %v", id, err)
			continue
		}
		if err := m.observe(twin.Twin, false); err != nil {
			w.t.Errorf("invariant: %v", err)
		}
	}
}

// checkQuery pages through every twin (small pages, so continuation
// tokens are used) and checks they are exactly the acknowledged devices.
func (h *invHarness) checkQuery(workers []*invWorker) {
	ctx, cancel := context.WithTimeout(h.t.Context(), invOpTimeout)
	defer cancel()
	want := map[string]*devModel{}
	for _, w := range workers {
		for id, m := range w.models {
			if m.exists {
				want[id] = m
			}
		}
	}
	var got []string
	pager := h.client.NewQueryPager("SELECT * FROM devices", &iothub.QueryOptions{PageSize: 7})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			h.t.Errorf("invariant: query all twins: %v", err)
			return
		}
		for _, item := range page.Items {
			var t iothub.Twin
			if err := json.Unmarshal(item, &t); err != nil {
				h.t.Errorf("invariant: query all twins: %v", err)
				return
			}
			got = append(got, t.DeviceID)
			if m := want[t.DeviceID]; m != nil {
				if err := m.observe(t, false); err != nil {
					h.t.Errorf("invariant: query: %v", err)
				}
			}
		}
	}
	slices.Sort(got)
	wantIDs := slices.Sorted(maps.Keys(want))
	if !slices.Equal(got, wantIDs) {
		h.t.Errorf("invariant: the query found %v, the acknowledged devices are %v", got, wantIDs)
	}
}

// --- patches and the model's merge ---

var invKeys = []string{"k0", "k1", "k2", "k3", "k4", "k5", "mode", "site-id", "rate_ms"}

// patch makes a random valid patch for a section whose acknowledged state
// is cur (nil: a replacement, which holds no nulls). It has at least one
// key, so applying it always moves the section's version. Null deletes a
// top-level key, or a nested one where the nested object keeps others.
func (w *invWorker) patch(cur map[string]any) map[string]any {
	p := map[string]any{}
	for range 1 + w.r.IntN(3) {
		k := invKeys[w.r.IntN(len(invKeys))]
		existing, isObject := cur[k].(map[string]any)
		switch n := w.r.IntN(10); {
		case cur != nil && n < 2:
			p[k] = nil
		case cur != nil && n < 3 && isObject && len(existing) > 1:
			nested := slices.Sorted(maps.Keys(existing))
			p[k] = map[string]any{nested[w.r.IntN(len(nested))]: nil}
		case n < 5:
			obj := map[string]any{}
			for range 1 + w.r.IntN(2) {
				obj[invKeys[w.r.IntN(len(invKeys))]] = w.scalar()
			}
			p[k] = obj
		default:
			p[k] = w.scalar()
		}
	}
	return p
}

func (w *invWorker) scalar() any {
	switch w.r.IntN(5) {
	case 0:
		return w.r.IntN(1_000_000) - 500_000
	case 1:
		return float64(w.r.IntN(1000)) / 8
	case 2:
		return w.r.IntN(2) == 0
	case 3:
		return []any{"a", float64(w.r.IntN(9))}
	default:
		return "v-" + strconv.Itoa(w.r.IntN(1000)) + " é"
	}
}

// merge applies an IoT Hub twin patch: objects merge key by key, null
// deletes, anything else replaces. It returns a new map.
func merge(cur, patch map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cur {
		out[k] = v
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			existing, _ := out[k].(map[string]any)
			out[k] = merge(existing, pv)
		default:
			out[k] = v
		}
	}
	return out
}

// --- helpers ---

func newKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// jsonEqual compares two values as JSON documents (numbers as numbers,
// a missing map as an empty one).
func jsonEqual(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return jsonEqualRaw([]byte(mustJSON(a)), []byte(mustJSON(b)))
}

func jsonEqualRaw(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

func mustParseCS(t *testing.T, s string) sas.ConnectionString {
	cs, err := sas.ParseConnectionString(s)
	must(t, err, "parse connection string")
	return cs
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
