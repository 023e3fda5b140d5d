package mqttgw

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/localhub/internal/routing"
	"github.com/iothub-reboot/devmgmt/localhub/internal/tlsca"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

const (
	testHost     = "localhost"
	goAPIVersion = "api-version=2020-09-30"
	// waitLimit bounds every wait for an event that should come promptly.
	waitLimit = 10 * time.Second
)

// testHub is a gateway on a loopback TLS listener with a real registry and
// event log in t.TempDir().
type testHub struct {
	gw     *Gateway
	reg    *registry.Store
	events *eventlog.Log
	addr   string
	tls    *tls.Config // trusts the hub's CA
	caPEM  []byte
}

func newTestHub(t testing.TB) *testHub {
	t.Helper()
	return newTestHubWith(t, Config{})
}

// newTestHubWith starts a gateway with cfg's Now and WriteTimeout.
func newTestHubWith(t testing.TB, cfg Config) *testHub {
	t.Helper()
	return newTestHubWrapped(t, cfg, nil)
}

// newTestHubWrapped is newTestHubWith with the gateway's TLS listener
// wrapped by wrap (nil: as it is).
func newTestHubWrapped(t testing.TB, cfg Config, wrap func(net.Listener) net.Listener) *testHub {
	t.Helper()
	dir := t.TempDir()
	bundle, err := tlsca.LoadOrCreate(filepath.Join(dir, "tls"), []string{testHost})
	require.NoError(t, err)
	reg, err := registry.Open(registry.Options{Path: filepath.Join(dir, "registry.db")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = reg.Close() })
	events, err := eventlog.Open(eventlog.Options{Dir: filepath.Join(dir, "events")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = events.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cfg.Hostname = testHost
	cfg.Listener = tls.NewListener(ln, bundle.ServerTLSConfig())
	if wrap != nil {
		cfg.Listener = wrap(cfg.Listener)
	}
	cfg.Registry = reg
	cfg.Router = routing.New(routing.Options{Hostname: testHost, Events: events})
	cfg.Logger = testLogger(t)
	gw, err := Start(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, gw.Close()) })

	clientTLS := bundle.ClientTLSConfig()
	clientTLS.ServerName = testHost
	return &testHub{gw: gw, reg: reg, events: events, addr: ln.Addr().String(), tls: clientTLS, caPEM: bundle.CACertPEM}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// createDevice registers a device and returns its primary key.
func (h *testHub) createDevice(t testing.TB, id string) registry.Device {
	t.Helper()
	d, err := h.reg.CreateDevice(registry.Device{DeviceID: id})
	require.NoError(t, err)
	return d
}

// goToken is the token the Go SDK sends: sr = the hub host, no skn.
func goToken(t testing.TB, key string) string {
	t.Helper()
	tok, err := sas.New(testHost, "", key, time.Now().Add(time.Hour))
	require.NoError(t, err)
	return tok
}

// testDevice is a paho client standing in for a device SDK.
type testDevice struct {
	paho.Client
	lost chan error // receives once when the hub drops the connection
}

type deviceOption func(*paho.ClientOptions)

func withCleanSession(clean bool) deviceOption {
	return func(o *paho.ClientOptions) { o.SetCleanSession(clean) }
}

func withCredentials(user, password string) deviceOption {
	return func(o *paho.ClientOptions) { o.SetUsername(user); o.SetPassword(password) }
}

func withDefaultHandler(fn paho.MessageHandler) deviceOption {
	return func(o *paho.ClientOptions) { o.SetDefaultPublishHandler(fn) }
}

// dial connects clientID with Go-SDK-style credentials for key unless an
// option overrides them, and returns the CONNECT outcome.
func (h *testHub) dial(t testing.TB, clientID, key string, opts ...deviceOption) (*testDevice, *paho.ConnectToken) {
	t.Helper()
	d := &testDevice{lost: make(chan error, 1)}
	o := paho.NewClientOptions().
		AddBroker("tls://" + h.addr).
		SetTLSConfig(h.tls).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetConnectTimeout(waitLimit).
		SetKeepAlive(30 * time.Second).
		SetConnectionLostHandler(func(_ paho.Client, err error) { d.lost <- err })
	if key != "" {
		o.SetUsername(testHost + "/" + clientID + "/" + goAPIVersion)
		o.SetPassword(goToken(t, key))
	}
	for _, opt := range opts {
		opt(o)
	}
	d.Client = paho.NewClient(o)
	tok := d.Connect().(*paho.ConnectToken)
	if !tok.WaitTimeout(waitLimit) {
		t.Fatalf("CONNECT of %q did not complete", clientID)
	}
	if tok.Error() == nil {
		t.Cleanup(func() { d.Disconnect(0) })
	}
	return d, tok
}

// connect dials and requires success.
func (h *testHub) connect(t testing.TB, clientID, key string, opts ...deviceOption) *testDevice {
	t.Helper()
	d, tok := h.dial(t, clientID, key, opts...)
	require.NoError(t, tok.Error())
	return d
}

func wait(t testing.TB, tok paho.Token) {
	t.Helper()
	require.True(t, tok.WaitTimeout(waitLimit), "MQTT operation did not complete")
	require.NoError(t, tok.Error())
}

// subscribe subscribes and returns the messages received on filter.
func (d *testDevice) subscribe(t testing.TB, filter string, qos byte) <-chan paho.Message {
	t.Helper()
	msgs := make(chan paho.Message, 100)
	wait(t, d.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { msgs <- m }))
	return msgs
}

// requireLost waits for the hub to drop the connection.
func (d *testDevice) requireLost(t testing.TB) {
	t.Helper()
	select {
	case <-d.lost:
	case <-time.After(waitLimit):
		t.Fatal("the hub did not close the connection")
	}
}

func receive(t testing.TB, msgs <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(waitLimit):
		t.Fatal("no message received")
		return nil
	}
}

// answerMethods makes d answer every direct method with status and an
// echo of the request body, reporting the first requests on the returned
// channel.
func (d *testDevice) answerMethods(t testing.TB, status int) <-chan paho.Message {
	t.Helper()
	reqs := make(chan paho.Message, 100)
	wait(t, d.Subscribe(methodsFilter, 0, func(c paho.Client, m paho.Message) {
		select {
		case reqs <- m:
		default: // nobody is looking (benchmarks)
		}
		topic, err := methodReplyTopic(m.Topic(), status)
		if err != nil {
			return
		}
		c.Publish(topic, 1, false, m.Payload())
	}))
	return reqs
}

// methodReplyTopic is what a device publishes to answer the request on
// requestTopic.
func methodReplyTopic(requestTopic string, status int) (string, error) {
	_, rid, err := parseMethodRequest(requestTopic)
	if err != nil {
		return "", err
	}
	return Topic{Kind: TopicMethodResponse, Status: status, RID: rid}.String(), nil
}

// parseMethodRequest splits $iothub/methods/POST/{method}/?$rid={rid}.
func parseMethodRequest(topic string) (method, rid string, err error) {
	rest := topic[len(methodReqPrefix):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '/' {
			rid, err = requestID(topic, rest[i+1:])
			return rest[:i], rid, err
		}
	}
	return "", "", topicError(topic, "no request id")
}

// eventReader reads one device's events from the log in order.
type eventReader struct {
	log      *eventlog.Log
	deviceID string
	next     int64
}

func (h *testHub) eventsOf(deviceID string) *eventReader {
	return &eventReader{log: h.events, deviceID: deviceID}
}

// nextEvent returns the device's next event, waiting for it.
func (r *eventReader) nextEvent(t testing.TB) eventlog.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for {
		evs, err := r.log.Read(ctx, r.log.PartitionFor(r.deviceID), r.next, 1)
		require.NoError(t, err, "waiting for an event of %s", r.deviceID)
		r.next = evs[0].SequenceNumber + 1
		if evs[0].DeviceID == r.deviceID {
			return evs[0]
		}
	}
}

// invokeResult is an InvokeMethod outcome delivered on a channel.
type invokeResult struct {
	status int
	body   []byte
	err    error
}

func (h *testHub) invokeAsync(deviceID, method string, payload []byte, response, connect time.Duration) <-chan invokeResult {
	out := make(chan invokeResult, 1)
	go func() {
		st, body, err := h.gw.InvokeMethod(context.Background(), deviceID, method, payload, response, connect)
		out <- invokeResult{st, body, err}
	}()
	return out
}

func awaitResult(t testing.TB, results <-chan invokeResult) invokeResult {
	t.Helper()
	select {
	case r := <-results:
		return r
	case <-time.After(waitLimit):
		t.Fatal("InvokeMethod did not return")
		return invokeResult{}
	}
}

// policyToken is a shared-access-policy token for the hub.
func policyToken(t testing.TB, policy, key string) string {
	t.Helper()
	tok, err := sas.New(testHost, policy, key, time.Now().Add(time.Hour))
	require.NoError(t, err)
	return tok
}
