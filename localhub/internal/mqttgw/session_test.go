package mqttgw

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

func TestNewConnectionKicksOldOne(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	first := h.connect(t, "d1", key)
	first.answerMethods(t, 200)

	second := h.connect(t, "d1", key)
	first.requireLost(t)
	require.True(t, second.IsConnectionOpen())

	// Method calls now go to the new connection (a clean session, so it
	// must subscribe itself). mochi sends the CONNACK before the session is
	// attached; the SUBACK comes after, so the gateway's view is settled
	// once the subscription is acknowledged.
	reqs := second.answerMethods(t, 202)
	require.True(t, h.gw.Connected("d1"))
	require.Equal(t, 1, h.gw.ConnectedCount())
	status, _, err := h.gw.InvokeMethod(t.Context(), "d1", "m", nil, waitLimit, 0)
	require.NoError(t, err)
	require.Equal(t, 202, status)
	receive(t, reqs)
}

func TestPersistentSessionKeepsSubscriptions(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey

	// Node connects with clean=false and does not re-subscribe after its
	// SAS-renewal reconnect (reference §0.3).
	d := h.connect(t, "d1", key, withCleanSession(false))
	d.subscribe(t, methodsFilter, 0)
	d.Disconnect(0)

	reqs := make(chan paho.Message, 1)
	d = h.connect(t, "d1", key, withCleanSession(false), withDefaultHandler(func(c paho.Client, m paho.Message) {
		reqs <- m
		topic, err := methodReplyTopic(m.Topic(), 200)
		if err == nil {
			c.Publish(topic, 0, false, `"resumed"`)
		}
	}))
	status, body, err := h.gw.InvokeMethod(t.Context(), "d1", "reboot", nil, waitLimit, waitLimit)
	require.NoError(t, err)
	require.Equal(t, 200, status)
	require.Equal(t, `"resumed"`, string(body))
	receive(t, reqs)

	// A clean session forgets them.
	d.Disconnect(0)
	h.connect(t, "d1", key)
	_, _, err = h.gw.InvokeMethod(t.Context(), "d1", "reboot", nil, waitLimit, 0)
	require.ErrorIs(t, err, directmethod.ErrDeviceNotOnline)
}

func TestDisconnectDevice(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key, withCleanSession(false))
	d.subscribe(t, methodsFilter, 0)

	h.gw.DisconnectDevice("d1")
	d.requireLost(t)
	h.gw.DisconnectDevice("never-connected")

	// The persistent session went with it.
	h.connect(t, "d1", key, withCleanSession(false))
	_, _, err := h.gw.InvokeMethod(t.Context(), "d1", "reboot", nil, time.Second, 0)
	require.ErrorIs(t, err, directmethod.ErrDeviceNotOnline)
}

var sequenceNumber = regexp.MustCompile(`^\{"sequenceNumber":"([0-9A-F]{64})"\}$`)

func TestConnectionStateEvents(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	events := h.eventsOf("d1")

	// A connection that never subscribes or publishes produces no events.
	quiet := h.connect(t, "d1", key)
	quiet.Disconnect(0)

	d := h.connect(t, "d1", key)
	d.subscribe(t, methodsFilter, 0)
	connected := events.nextEvent(t)
	d.Disconnect(0)
	disconnected := events.nextEvent(t)
	twin, err := h.reg.GetTwin("d1")
	require.NoError(t, err)
	require.Equal(t, registry.Disconnected, twin.ConnectionState, "the twin is disconnected once deviceDisconnected is out")

	var seqs []string
	for _, tt := range []struct {
		opType string
		got    func() eventlog.Event
	}{
		{"deviceConnected", func() eventlog.Event { return connected }},
		{"deviceDisconnected", func() eventlog.Event { return disconnected }},
	} {
		e := tt.got()
		m := sequenceNumber.FindStringSubmatch(string(e.Body))
		require.NotNil(t, m, "body %s", e.Body)
		seqs = append(seqs, m[1])
		require.Equal(t, "d1", e.DeviceID)
		require.Equal(t, "application/json", e.ContentType)
		require.Equal(t, "utf-8", e.ContentEncoding)
		require.Equal(t, []byte("localhost"), e.UserID)
		require.NotEmpty(t, e.CorrelationID)
		require.Equal(t, tt.opType, e.Properties["opType"])
		require.Equal(t, "deviceConnectionStateNotification", e.Properties["iothub-message-schema"])
		require.Equal(t, "localhost", e.Properties["hubName"])
		require.Equal(t, "d1", e.Properties["deviceId"])
		require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`, e.Properties["operationTimestamp"])
		require.Equal(t, "d1", e.Annotations["iothub-connection-device-id"])
		require.Equal(t, "deviceConnectionStateEvents", e.Annotations["iothub-message-source"])
	}
	require.Less(t, seqs[0], seqs[1], "sequence numbers strictly increase")
}

func TestTakeoverReportsDisconnectThenConnect(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	events := h.eventsOf("d1")

	first := h.connect(t, "d1", key)
	first.subscribe(t, methodsFilter, 0)
	require.Equal(t, "deviceConnected", events.nextEvent(t).Properties["opType"])

	second := h.connect(t, "d1", key)
	first.requireLost(t)
	require.Equal(t, "deviceDisconnected", events.nextEvent(t).Properties["opType"])
	second.subscribe(t, methodsFilter, 0)
	require.Equal(t, "deviceConnected", events.nextEvent(t).Properties["opType"])
	require.Equal(t, 1, h.gw.ConnectedCount())
}

func TestCloseEndsEverything(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	d.subscribe(t, methodsFilter, 0)
	// A client stuck before CONNECT (TLS done, nothing sent) and one stuck
	// in the TLS handshake.
	idle, err := tls.Dial("tcp", h.addr, h.tls)
	require.NoError(t, err)
	defer idle.Close()
	raw, err := net.Dial("tcp", h.addr)
	require.NoError(t, err)
	defer raw.Close()

	require.NoError(t, h.gw.Close())
	require.NoError(t, h.gw.Close(), "Close is idempotent")
	d.requireLost(t)
	require.False(t, h.gw.Connected("d1"))
	require.Zero(t, h.gw.ConnectedCount())
	d.Disconnect(0)

	// Goroutine exits are not observable events, so poll.
	require.Eventually(t, func() bool { return !strings.Contains(goroutines(), "mochi-mqtt/server") },
		waitLimit, 10*time.Millisecond, "goroutines left in mochi after Close")
}

// goroutines is the stack dump of every goroutine.
func goroutines() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// mochi's Clients.GetByListener takes the clients read lock twice; when a
// clean-session client leaving (Clients.Delete, waiting for the write lock)
// queues between the two, mochi's own client closer deadlocks. The test
// lines that up: it holds a read lock while Close ends the clients, so
// their Deletes queue as writers, then lets them through while anything
// Close does with the clients lock runs in between. That the Deletes queue
// is read off observable state, not goroutine dumps: every client has
// left the gateway (OnDisconnect runs just before Delete), and a read lock
// can no longer be had, which sync.RWMutex refuses only while a writer
// waits.
func TestCloseWhileCleanSessionsLeave(t *testing.T) {
	h := newTestHub(t)
	const n = 20
	for i := range n {
		id := fmt.Sprintf("d%d", i)
		h.connect(t, id, h.createDevice(t, id).Authentication.SymmetricKey.PrimaryKey).subscribe(t, methodsFilter, 0)
	}
	require.Equal(t, n, h.gw.ConnectedCount())
	h.gw.server.Clients.RLock()
	closed := make(chan error, 1)
	go func() { closed <- h.gw.Close() }()
	// Lock queues are not observable events, so poll.
	require.Eventually(t, func() bool {
		if h.gw.ConnectedCount() != 0 {
			return false
		}
		if h.gw.server.Clients.TryRLock() {
			h.gw.server.Clients.RUnlock()
			return false
		}
		return true
	}, waitLimit, time.Millisecond, "clients did not queue to leave")
	h.gw.server.Clients.RUnlock()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(waitLimit):
		t.Fatalf("Close did not return:\n%s", goroutines())
	}
}

// failingListener fails its first Accept calls the way a process out of
// file descriptors does.
type failingListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// A failed Accept (EMFILE: too many open files) must not end the device
// endpoint: mochi stops serving a listener on the first error it returns.
func TestAcceptErrorsDoNotStopTheEndpoint(t *testing.T) {
	var fl *failingListener
	h := newTestHubWrapped(t, Config{}, func(ln net.Listener) net.Listener {
		fl = &failingListener{Listener: ln}
		fl.failures.Store(3)
		return fl
	})
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	d.subscribe(t, methodsFilter, 0)
	require.LessOrEqual(t, fl.failures.Load(), int32(-1), "the failures were seen")
	require.True(t, h.gw.Connected("d1"))
}
