package funchost

import (
	"crypto/tls"
	"encoding/json"
	"errors"
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

// device is an IoT Hub device played over MQTT/TLS: it answers every
// direct method with 200 and reports properties on request.
type device struct {
	id      string
	client  mqtt.Client
	methods chan string // names of the methods called

	rid     atomic.Int64
	mu      sync.Mutex
	pending map[string]chan int // $rid -> status of the twin response
}

func newDevice(t testing.TB, hub *localhub.Hub, id string) *device {
	t.Helper()
	connStr, err := hub.CreateDevice(id)
	require.NoError(t, err)
	cs, err := sas.ParseConnectionString(connStr)
	require.NoError(t, err)
	token, err := sas.New(cs.HostName+"/devices/"+id, "", cs.SharedAccessKey, time.Now().Add(time.Hour))
	require.NoError(t, err)
	d := &device{id: id, methods: make(chan string, 16), pending: map[string]chan int{}}
	d.client = mqtt.NewClient(mqtt.NewClientOptions().
		AddBroker("tls://" + hub.MQTTAddr()).
		SetClientID(id).
		SetUsername(cs.HostName + "/" + id + "/?api-version=2021-04-12").
		SetPassword(token).
		SetTLSConfig(&tls.Config{RootCAs: hub.CertPool(), ServerName: hub.Hostname(), MinVersion: tls.VersionTLS12}).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetOrderMatters(false))
	require.NoError(t, wait(d.client.Connect()))
	t.Cleanup(func() { d.client.Disconnect(100) })
	require.NoError(t, wait(d.client.Subscribe("$iothub/methods/POST/#", 1, d.onMethod)))
	require.NoError(t, wait(d.client.Subscribe("$iothub/twin/res/#", 1, d.onTwinResponse)))
	return d
}

// onMethod answers $iothub/methods/POST/{name}/?$rid={rid} with 200.
func (d *device) onMethod(_ mqtt.Client, m mqtt.Message) {
	rest, _ := strings.CutPrefix(m.Topic(), "$iothub/methods/POST/")
	name, query, _ := strings.Cut(rest, "/?")
	q, _ := url.ParseQuery(query)
	d.methods <- name
	d.client.Publish("$iothub/methods/res/200/?$rid="+q.Get("$rid"), 1, false, `{"result":"Reboot started"}`)
}

func (d *device) onTwinResponse(_ mqtt.Client, m mqtt.Message) {
	rest, _ := strings.CutPrefix(m.Topic(), "$iothub/twin/res/")
	status, query, _ := strings.Cut(rest, "/?")
	q, _ := url.ParseQuery(query)
	code, _ := strconv.Atoi(status)
	d.mu.Lock()
	ch := d.pending[q.Get("$rid")]
	delete(d.pending, q.Get("$rid"))
	d.mu.Unlock()
	if ch != nil {
		ch <- code
	}
}

// report sends a reported-properties patch and waits for the hub's 2xx.
func (d *device) report(t testing.TB, patch any) {
	t.Helper()
	body, err := json.Marshal(patch)
	require.NoError(t, err)
	rid := strconv.FormatInt(d.rid.Add(1), 10)
	ch := make(chan int, 1)
	d.mu.Lock()
	d.pending[rid] = ch
	d.mu.Unlock()
	require.NoError(t, wait(d.client.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 1, false, body)))
	select {
	case code := <-ch:
		require.Equal(t, 2, code/100, "reported patch: status %d", code)
	case <-time.After(awaitTimeout):
		t.Fatalf("device %s: no answer to the reported patch", d.id)
	}
}

func wait(tok mqtt.Token) error {
	if !tok.WaitTimeout(awaitTimeout) {
		return errors.New("MQTT operation timed out")
	}
	return tok.Error()
}
