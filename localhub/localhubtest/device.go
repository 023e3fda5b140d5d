package localhubtest

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// DeviceTimeout bounds every MQTT handshake of a Device and every wait for
// the hub's answer, so a broken hub fails a test instead of hanging it.
const DeviceTimeout = 10 * time.Second

// recordSize is how many method calls or desired notifications a Device
// holds for the test; it covers every test that reads what it caused.
const recordSize = 128

// MethodCall is a direct-method request as the device received it.
type MethodCall struct {
	Name    string
	Payload []byte
}

// MethodReply is a device's answer to a direct method.
type MethodReply struct {
	Status  int
	Payload []byte
}

// MethodHandler answers a direct method. A nil reply leaves the call
// unanswered, which is how a test makes the hub time out.
type MethodHandler func(MethodCall) *MethodReply

// Reply returns a handler that answers every method alike, the usual
// device for tests that care about the caller's side.
func Reply(status int, payload string) MethodHandler {
	return func(MethodCall) *MethodReply { return &MethodReply{Status: status, Payload: []byte(payload)} }
}

// Silent never answers, so the hub's response timeout runs out.
func Silent(MethodCall) *MethodReply { return nil }

// Device is a device played by paho over MQTT/TLS, speaking IoT Hub's
// topics as the device SDKs do, so tests exercise the hub's real wire path.
type Device struct {
	ID string
	// Calls records every method request in arrival order. Once it holds
	// recordSize unread calls the device stops answering until it is read
	// or closed, so tests making more calls than that must drain it.
	Calls <-chan MethodCall
	// Desired records every desired-properties notification body, with the
	// same bound as Calls.
	Desired <-chan []byte

	client  mqtt.Client
	handler MethodHandler
	calls   chan MethodCall
	desired chan []byte
	// closed releases paho callbacks waiting on a full record, so Close
	// never hangs on a record nobody reads.
	closed    chan struct{}
	closeOnce sync.Once

	rid     atomic.Int64
	mu      sync.Mutex
	pending map[string]chan twinResponse // by $rid
}

type twinResponse struct {
	status  int
	version int64
}

// NewDevice registers id on hub and connects it: the one-line device for
// tests that need no particular registration.
func NewDevice(t testing.TB, hub *localhub.Hub, id string, handler MethodHandler) *Device {
	t.Helper()
	connStr, err := hub.CreateDevice(id)
	if err != nil {
		t.Fatalf("localhubtest: create device %s: %v", id, err)
	}
	return ConnectDevice(t, hub, connStr, handler)
}

// ConnectDevice is StartDevice for a test: it fails t on error and
// disconnects in t.Cleanup.
func ConnectDevice(t testing.TB, hub *localhub.Hub, deviceConnStr string, handler MethodHandler) *Device {
	t.Helper()
	d, err := StartDevice(hub, deviceConnStr, handler)
	if err != nil {
		t.Fatalf("localhubtest: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// StartDevice connects the device of deviceConnStr to hub and subscribes
// to methods, twin responses and desired properties. It takes no testing.TB
// so that examples and goroutines (which must not call t.Fatal) can use it.
func StartDevice(hub *localhub.Hub, deviceConnStr string, handler MethodHandler) (*Device, error) {
	cs, err := sas.ParseConnectionString(deviceConnStr)
	if err != nil {
		return nil, fmt.Errorf("device connection string: %w", err)
	}
	token, err := sas.New(cs.HostName+"/devices/"+cs.DeviceID, "", cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("device %s: token: %w", cs.DeviceID, err)
	}
	d := &Device{
		ID:      cs.DeviceID,
		handler: handler,
		calls:   make(chan MethodCall, recordSize),
		desired: make(chan []byte, recordSize),
		closed:  make(chan struct{}),
		pending: map[string]chan twinResponse{},
	}
	d.Calls, d.Desired = d.calls, d.desired
	opts := mqtt.NewClientOptions().
		AddBroker("tls://" + hub.MQTTAddr()).
		SetClientID(cs.DeviceID).
		SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12").
		SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: hub.CertPool(), ServerName: hub.Hostname(), MinVersion: tls.VersionTLS12}).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(DeviceTimeout).
		// Method handlers publish their replies; unordered delivery keeps
		// paho's router from blocking on our own publishes.
		SetOrderMatters(false)
	d.client = mqtt.NewClient(opts)
	if err := wait(d.client.Connect()); err != nil {
		return nil, fmt.Errorf("device %s: connect: %w", d.ID, err)
	}
	for filter, handle := range map[string]mqtt.MessageHandler{
		"$iothub/methods/POST/#":                  d.onMethod,
		"$iothub/twin/res/#":                      d.onTwinResponse,
		"$iothub/twin/PATCH/properties/desired/#": d.onDesired,
	} {
		if err := wait(d.client.Subscribe(filter, 1, handle)); err != nil {
			d.Close()
			return nil, fmt.Errorf("device %s: subscribe %s: %w", d.ID, filter, err)
		}
	}
	return d, nil
}

// Close disconnects the device. It is safe to call twice, since tests
// often both defer it and register it as a cleanup.
func (d *Device) Close() {
	d.closeOnce.Do(func() {
		close(d.closed)
		d.client.Disconnect(250)
	})
}

// NextCall returns the next method call the device received, failing t
// if none arrives within DeviceTimeout.
func (d *Device) NextCall(t testing.TB) MethodCall {
	t.Helper()
	select {
	case c := <-d.calls:
		return c
	case <-time.After(DeviceTimeout):
		t.Fatalf("localhubtest: device %s received no method call", d.ID)
		return MethodCall{}
	}
}

// Report publishes a reported-properties patch and waits for the hub's
// answer, returning the new reported $version.
func (d *Device) Report(patch string) (int64, error) {
	rid := strconv.FormatInt(d.rid.Add(1), 10)
	ch := make(chan twinResponse, 1)
	d.mu.Lock()
	d.pending[rid] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, rid)
		d.mu.Unlock()
	}()
	if err := wait(d.client.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 1, false, patch)); err != nil {
		return 0, fmt.Errorf("device %s: publish reported patch: %w", d.ID, err)
	}
	select {
	case res := <-ch:
		if res.status/100 != 2 {
			return 0, fmt.Errorf("device %s: reported patch: status %d", d.ID, res.status)
		}
		return res.version, nil
	case <-time.After(DeviceTimeout):
		return 0, fmt.Errorf("device %s: reported patch: no twin response within %s", d.ID, DeviceTimeout)
	}
}

// ReportJSON is Report for a test that builds its patch as a Go value: it
// marshals patch and fails t unless the hub accepts it.
func (d *Device) ReportJSON(t testing.TB, patch any) int64 {
	t.Helper()
	body, err := json.Marshal(patch)
	if err != nil {
		t.Fatalf("localhubtest: marshal reported patch: %v", err)
	}
	version, err := d.Report(string(body))
	if err != nil {
		t.Fatalf("localhubtest: %v", err)
	}
	return version
}

// SendTelemetry publishes a device-to-cloud message and waits for the
// hub's PUBACK, so the message is in the hub's event log on return.
func (d *Device) SendTelemetry(body string) error {
	if err := wait(d.client.Publish("devices/"+d.ID+"/messages/events/", 1, false, body)); err != nil {
		return fmt.Errorf("device %s: send telemetry: %w", d.ID, err)
	}
	return nil
}

// onMethod handles $iothub/methods/POST/{name}/?$rid={rid}. It records the
// call before answering, so a caller whose request returned can read it.
func (d *Device) onMethod(_ mqtt.Client, msg mqtt.Message) {
	rest, ok := strings.CutPrefix(msg.Topic(), "$iothub/methods/POST/")
	if !ok {
		return
	}
	name, query, _ := strings.Cut(rest, "/?")
	props, err := url.ParseQuery(query)
	if err != nil {
		return
	}
	call := MethodCall{Name: name, Payload: append([]byte(nil), msg.Payload()...)}
	select {
	case d.calls <- call:
	case <-d.closed:
		return
	}
	reply := d.handler(call)
	if reply == nil {
		return
	}
	topic := "$iothub/methods/res/" + strconv.Itoa(reply.Status) + "/?$rid=" + props.Get("$rid")
	d.client.Publish(topic, 1, false, reply.Payload)
}

// onTwinResponse handles $iothub/twin/res/{status}/?$rid={rid}[&$version={v}].
func (d *Device) onTwinResponse(_ mqtt.Client, msg mqtt.Message) {
	rest, ok := strings.CutPrefix(msg.Topic(), "$iothub/twin/res/")
	if !ok {
		return
	}
	statusText, query, _ := strings.Cut(rest, "/?")
	props, err := url.ParseQuery(query)
	if err != nil {
		return
	}
	status, _ := strconv.Atoi(statusText)
	version, _ := strconv.ParseInt(props.Get("$version"), 10, 64)
	d.mu.Lock()
	ch := d.pending[props.Get("$rid")]
	delete(d.pending, props.Get("$rid"))
	d.mu.Unlock()
	if ch != nil {
		ch <- twinResponse{status: status, version: version} // buffered for this one answer
	}
}

func (d *Device) onDesired(_ mqtt.Client, msg mqtt.Message) {
	select {
	case d.desired <- append([]byte(nil), msg.Payload()...):
	case <-d.closed:
	}
}

// wait waits for a paho token. A refused subscription is an error here:
// paho reports it only in the SUBACK codes, and a device that silently
// misses its topics would make tests time out far from the cause.
func wait(tok mqtt.Token) error {
	if !tok.WaitTimeout(DeviceTimeout) {
		return errors.New("MQTT operation timed out")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	if sub, ok := tok.(*mqtt.SubscribeToken); ok {
		for topic, code := range sub.Result() {
			if code == 0x80 {
				return fmt.Errorf("subscription to %s refused", topic)
			}
		}
	}
	return nil
}
