package iothub_test

import (
	"crypto/tls"
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
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// mqttTimeout bounds every MQTT handshake in these tests.
const mqttTimeout = 10 * time.Second

// methodCall is a direct-method request as the device received it.
type methodCall struct {
	Name    string
	Payload []byte
}

// methodReply is the device's answer; a nil *methodReply means "stay silent".
type methodReply struct {
	Status  int
	Payload []byte
}

// methodHandler answers direct methods.
type methodHandler func(call methodCall) *methodReply

// testDevice is a device played by paho over MQTT/TLS, speaking IoT Hub's
// topics the way the Go device SDK does.
type testDevice struct {
	id     string
	client mqtt.Client

	// Calls receives every method request, in arrival order.
	Calls chan methodCall
	// Desired receives every desired-properties notification body.
	Desired chan []byte

	handler methodHandler
	ridSeq  atomic.Int64

	mu      sync.Mutex
	pending map[string]chan twinResponse
}

type twinResponse struct {
	status  int
	version int64
}

// startDevice connects the device named in deviceConnStr to hub and
// subscribes to methods, twin responses and desired properties.
func startDevice(hub *localhub.Hub, deviceConnStr string, handler methodHandler) (*testDevice, error) {
	cs, err := sas.ParseConnectionString(deviceConnStr)
	if err != nil {
		return nil, fmt.Errorf("device connection string: %w", err)
	}
	token, err := sas.New(cs.HostName+"/devices/"+cs.DeviceID, "", cs.SharedAccessKey, time.Now().Add(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("device token: %w", err)
	}
	d := &testDevice{
		id:      cs.DeviceID,
		Calls:   make(chan methodCall, 64),
		Desired: make(chan []byte, 64),
		handler: handler,
		pending: map[string]chan twinResponse{},
	}
	opts := mqtt.NewClientOptions().
		AddBroker("tls://" + hub.MQTTAddr()).
		SetClientID(cs.DeviceID).
		SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12").
		SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: hub.CertPool(), ServerName: hub.Hostname(), MinVersion: tls.VersionTLS12}).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(mqttTimeout).
		// Handlers publish replies; unordered delivery keeps paho from
		// blocking its router on our own publishes.
		SetOrderMatters(false)
	d.client = mqtt.NewClient(opts)
	if err := wait(d.client.Connect()); err != nil {
		return nil, fmt.Errorf("device %s: connect: %w", d.id, err)
	}
	for filter, handle := range map[string]mqtt.MessageHandler{
		"$iothub/methods/POST/#":                  d.onMethod,
		"$iothub/twin/res/#":                      d.onTwinResponse,
		"$iothub/twin/PATCH/properties/desired/#": d.onDesired,
	} {
		if err := wait(d.client.Subscribe(filter, 1, handle)); err != nil {
			d.Close()
			return nil, fmt.Errorf("device %s: subscribe %s: %w", d.id, filter, err)
		}
	}
	return d, nil
}

// connectDevice is startDevice for tests: it fails t on error and
// disconnects in t.Cleanup.
func connectDevice(t testing.TB, hub *localhub.Hub, deviceConnStr string, handler methodHandler) *testDevice {
	t.Helper()
	d, err := startDevice(hub, deviceConnStr, handler)
	require.NoError(t, err)
	t.Cleanup(d.Close)
	return d
}

// Close disconnects the device.
func (d *testDevice) Close() { d.client.Disconnect(250) }

// onMethod handles $iothub/methods/POST/{name}/?$rid={rid}.
func (d *testDevice) onMethod(_ mqtt.Client, msg mqtt.Message) {
	rest, ok := strings.CutPrefix(msg.Topic(), "$iothub/methods/POST/")
	if !ok {
		return
	}
	name, query, _ := strings.Cut(rest, "/?")
	props, err := url.ParseQuery(query)
	if err != nil {
		return
	}
	call := methodCall{Name: name, Payload: append([]byte(nil), msg.Payload()...)}
	d.Calls <- call
	reply := d.handler(call)
	if reply == nil {
		return
	}
	topic := "$iothub/methods/res/" + strconv.Itoa(reply.Status) + "/?$rid=" + props.Get("$rid")
	d.client.Publish(topic, 1, false, reply.Payload)
}

// onTwinResponse handles $iothub/twin/res/{status}/?$rid={rid}[&$version={v}].
func (d *testDevice) onTwinResponse(_ mqtt.Client, msg mqtt.Message) {
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
		ch <- twinResponse{status: status, version: version}
	}
}

func (d *testDevice) onDesired(_ mqtt.Client, msg mqtt.Message) {
	d.Desired <- append([]byte(nil), msg.Payload()...)
}

// Report publishes a reported-properties patch and waits for the hub's
// answer, returning the new reported $version.
func (d *testDevice) Report(patch string) (int64, error) {
	rid := strconv.FormatInt(d.ridSeq.Add(1), 16)
	ch := make(chan twinResponse, 1)
	d.mu.Lock()
	d.pending[rid] = ch
	d.mu.Unlock()
	if err := wait(d.client.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 1, false, patch)); err != nil {
		return 0, fmt.Errorf("publish reported: %w", err)
	}
	select {
	case res := <-ch:
		if res.status/100 != 2 {
			return 0, fmt.Errorf("reported patch: status %d", res.status)
		}
		return res.version, nil
	case <-time.After(mqttTimeout):
		return 0, errors.New("reported patch: no twin response")
	}
}

// wait waits for a paho token and returns its error.
func wait(tok mqtt.Token) error {
	if !tok.WaitTimeout(mqttTimeout) {
		return errors.New("timed out")
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
