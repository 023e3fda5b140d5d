package handlers_test

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
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// mqttWait bounds each MQTT handshake of the test devices.
const mqttWait = 10 * time.Second

// methodCall is a direct method as the device received it.
type methodCall struct {
	Name    string
	Payload []byte
}

// methodReply is the device's answer to a method; nil means no answer.
type methodReply struct {
	Status  int
	Payload string
}

// testDevice is an IoT Hub device played by paho over MQTT/TLS with IoT
// Hub's topics: it answers direct methods and reports properties.
type testDevice struct {
	id     string
	client mqtt.Client
	answer func(methodCall) *methodReply
	// calls receives every method call, in order.
	calls chan methodCall

	rid     atomic.Int64
	mu      sync.Mutex
	waiting map[string]chan int // $rid -> twin response status
}

// replyWith answers every method with status and payload.
func replyWith(status int, payload string) func(methodCall) *methodReply {
	return func(methodCall) *methodReply { return &methodReply{Status: status, Payload: payload} }
}

// newDevice registers id on the hub and connects it.
func newDevice(t testing.TB, hub *localhub.Hub, id string, answer func(methodCall) *methodReply) *testDevice {
	t.Helper()
	connStr, err := hub.CreateDevice(id)
	require.NoError(t, err)
	return connectDevice(t, hub, connStr, answer)
}

// connectDevice connects the device of connStr and subscribes to methods
// and twin responses; it disconnects in t.Cleanup.
func connectDevice(t testing.TB, hub *localhub.Hub, connStr string, answer func(methodCall) *methodReply) *testDevice {
	t.Helper()
	cs, err := sas.ParseConnectionString(connStr)
	require.NoError(t, err)
	token, err := sas.New(cs.HostName+"/devices/"+cs.DeviceID, "", cs.SharedAccessKey, time.Now().Add(time.Hour))
	require.NoError(t, err)
	d := &testDevice{id: cs.DeviceID, answer: answer, calls: make(chan methodCall, 100), waiting: map[string]chan int{}}
	opts := mqtt.NewClientOptions().
		AddBroker("tls://" + hub.MQTTAddr()).
		SetClientID(cs.DeviceID).
		SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12").
		SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: hub.CertPool(), ServerName: hub.Hostname(), MinVersion: tls.VersionTLS12}).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(mqttWait).
		SetOrderMatters(false) // handlers publish; don't block paho's router
	d.client = mqtt.NewClient(opts)
	require.NoError(t, waitToken(d.client.Connect()), "connect %s", d.id)
	t.Cleanup(func() { d.client.Disconnect(100) })
	require.NoError(t, waitToken(d.client.Subscribe("$iothub/methods/POST/#", 1, d.onMethod)))
	require.NoError(t, waitToken(d.client.Subscribe("$iothub/twin/res/#", 1, d.onTwinResponse)))
	return d
}

// onMethod handles $iothub/methods/POST/{name}/?$rid={rid}.
func (d *testDevice) onMethod(_ mqtt.Client, msg mqtt.Message) {
	rest, _ := strings.CutPrefix(msg.Topic(), "$iothub/methods/POST/")
	name, query, _ := strings.Cut(rest, "/?")
	q, _ := url.ParseQuery(query)
	call := methodCall{Name: name, Payload: append([]byte(nil), msg.Payload()...)}
	d.calls <- call
	if reply := d.answer(call); reply != nil {
		d.client.Publish("$iothub/methods/res/"+strconv.Itoa(reply.Status)+"/?$rid="+q.Get("$rid"), 1, false, reply.Payload)
	}
}

// onTwinResponse handles $iothub/twin/res/{status}/?$rid={rid}&….
func (d *testDevice) onTwinResponse(_ mqtt.Client, msg mqtt.Message) {
	rest, _ := strings.CutPrefix(msg.Topic(), "$iothub/twin/res/")
	statusText, query, _ := strings.Cut(rest, "/?")
	q, _ := url.ParseQuery(query)
	status, _ := strconv.Atoi(statusText)
	d.mu.Lock()
	ch := d.waiting[q.Get("$rid")]
	delete(d.waiting, q.Get("$rid"))
	d.mu.Unlock()
	if ch != nil {
		ch <- status
	}
}

// report publishes a reported-properties patch and waits for the hub to
// accept it.
func (d *testDevice) report(t testing.TB, patch any) {
	t.Helper()
	body, err := json.Marshal(patch)
	require.NoError(t, err)
	rid := strconv.FormatInt(d.rid.Add(1), 10)
	ch := make(chan int, 1)
	d.mu.Lock()
	d.waiting[rid] = ch
	d.mu.Unlock()
	require.NoError(t, waitToken(d.client.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 1, false, body)))
	select {
	case status := <-ch:
		require.Equal(t, 2, status/100, "reported patch of %s: status %d", d.id, status)
	case <-time.After(mqttWait):
		t.Fatalf("device %s: no answer to its reported patch", d.id)
	}
}

// reportReboot reports the iothubDM.reboot section.
func (d *testDevice) reportReboot(t testing.TB, section map[string]any) {
	t.Helper()
	d.report(t, map[string]any{"iothubDM": map[string]any{"reboot": section}})
}

// nextCall returns the next method call the device received.
func (d *testDevice) nextCall(t testing.TB) methodCall {
	t.Helper()
	select {
	case c := <-d.calls:
		return c
	case <-time.After(mqttWait):
		t.Fatalf("device %s received no method call", d.id)
		return methodCall{}
	}
}

func waitToken(tok mqtt.Token) error {
	if !tok.WaitTimeout(mqttWait) {
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

// sendTelemetry publishes a device-to-cloud message.
func (d *testDevice) sendTelemetry(t testing.TB, body string) {
	t.Helper()
	require.NoError(t, waitToken(d.client.Publish("devices/"+d.id+"/messages/events/", 1, false, body)))
}
