// Package mqttgw is the local hub's device endpoint: MQTT 3.1.1 over TLS on
// mochi-mqtt, speaking IoT Hub's topics (telemetry, direct methods, twins).
//
// Every PUBLISH a device sends is consumed by the gateway (telemetry goes to
// the event log, method and twin traffic is answered here); nothing is ever
// routed to another MQTT client. Hub-to-device messages are written to the
// one connection they are meant for, because every device subscribes to the
// same filters ($iothub/methods/POST/# ...).
package mqttgw

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/localhub/internal/routing"
)

// MaxTelemetryBody is the largest device-to-cloud message body IoT Hub
// accepts; a device that sends more is disconnected.
const MaxTelemetryBody = 256 * 1024

// Connection tuning. A connected device costs the hub 35 to 38 KB at
// 10,000 devices (make perf; where it goes is in docs/performance.md): 20
// KB of stack for mochi's two goroutines per connection (its reader parks
// with 6 KB of frames, too deep for the GC to shrink its stack below 16 KB,
// and its idle writer keeps 4 KB), TLS state, mochi's client state, and
// what the connection storm leaves scattered over the heap. The buffers
// below are what the gateway controls; the outbound queue and its writer
// (outbox.go) exist only while a device has packets waiting.
const (
	// connectDeadline bounds the TLS handshake and the CONNECT packet; after
	// CONNECT mochi applies the client's keep-alive.
	connectDeadline = 30 * time.Second
	// sessionExpiry is how long a CleanSession=0 session (its
	// subscriptions) outlives its connection.
	sessionExpiry = 7 * 24 * time.Hour
	// maxPacketSize admits a full telemetry body plus the longest topic.
	maxPacketSize = MaxTelemetryBody + 64*1024 + 16
	// mochi reads the fixed header byte by byte and the rest with
	// io.ReadFull, which bypasses a small bufio buffer for large packets;
	// the TLS connection below buffers a whole decrypted record anyway, so
	// a buffer that holds the small packets whole (acknowledgements,
	// PINGREQ, SUBSCRIBE) is enough: 64 bytes instead of 512 saves 448
	// per connection.
	readBufferSize = 64
	// The write buffer is allocated only while writes queue up.
	writeBufferSize = 2 * 1024
	// writesPending sizes mochi's per-client outbound queue, which the
	// gateway never uses (it writes packets itself); mochi's default of
	// 8192 slots costs 64 KB per client.
	writesPending = 8
)

// Config wires the gateway.
type Config struct {
	// Hostname is the hub host name devices use in usernames and tokens.
	Hostname string
	// Listener is already bound (and TLS-wrapped by the caller).
	Listener net.Listener
	Registry *registry.Store
	// Router takes telemetry and connection-state notifications.
	Router *routing.Router
	Logger *slog.Logger
	Now    func() time.Time
	// WriteTimeout bounds every write to a device (default 30 s); a device
	// that does not take a packet in that time is disconnected.
	WriteTimeout time.Duration
}

// Gateway serves devices. Safe for concurrent use.
type Gateway struct {
	hostname string
	registry *registry.Store
	router   *routing.Router
	log      *slog.Logger
	now      func() time.Time

	server *mqtt.Server
	ln     *trackingListener

	done      chan struct{}
	closeOnce sync.Once
	closeErr  error

	// sessions maps a live *mqtt.Client to its session, for the hot
	// per-packet lookups that must not take mu.
	sessions sync.Map

	mu        sync.Mutex
	devices   map[string]*device
	connected int

	calls   pendingCalls
	nextRID atomic.Uint64
}

// session is one authenticated connection of a device.
type session struct {
	client       *mqtt.Client
	generationID string
	authMethod   string // iothub-connection-auth-method annotation value
	modelID      string
	announced    atomic.Bool // deviceConnected was emitted
	// out queues what the hub sends the device (outbox.go).
	out outbox
	// expiry ends the connection when its SAS token does; out.mu guards it.
	expiry *time.Timer
}

// device is what the gateway tracks per device id: its live session and
// the InvokeMethod calls made to it.
type device struct {
	sess *session
	// changed, when a waiter asked for it, is closed on the next change of
	// sess or of its subscriptions.
	changed chan struct{}
	waiters int
	// calls counts the InvokeMethod calls in progress, bounded by
	// maxCallsPerDevice: incremented under g.mu, decremented without it.
	calls atomic.Int32
	// live mirrors sess != nil for readers without g.mu.
	live atomic.Bool
}

func (d *device) notify() {
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
}

// Start begins serving on cfg.Listener.
func Start(cfg Config) (*Gateway, error) {
	switch {
	case cfg.Listener == nil:
		return nil, errors.New("mqttgw: Config.Listener is nil")
	case cfg.Registry == nil:
		return nil, errors.New("mqttgw: Config.Registry is nil")
	case cfg.Router == nil:
		return nil, errors.New("mqttgw: Config.Router is nil")
	case cfg.Hostname == "":
		return nil, errors.New("mqttgw: Config.Hostname is empty")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	writeTimeout := cfg.WriteTimeout
	if writeTimeout <= 0 {
		writeTimeout = defaultWriteTimeout
	}

	g := &Gateway{
		hostname: cfg.Hostname,
		registry: cfg.Registry,
		router:   cfg.Router,
		log:      logger,
		now:      now,
		ln:       newTrackingListener(cfg.Listener, writeTimeout, logger),
		done:     make(chan struct{}),
		devices:  make(map[string]*device),
		calls:    pendingCalls{m: make(map[uint64]*pendingCall)},
	}
	g.server = mqtt.New(&mqtt.Options{
		Capabilities:             capabilities(),
		ClientNetWriteBufferSize: writeBufferSize,
		ClientNetReadBufferSize:  readBufferSize,
		Logger:                   slog.New(mochiLogHandler{logger.Handler()}).With("component", "mochi"),
		// $SYS topics are never delivered (devices may not subscribe to
		// them), so mochi never refreshes them: each refresh reads
		// MemStats, which stops the world.
		SysTopicResendInterval: sysTopicsNever,
	})
	if err := g.server.AddHook(&hook{}, &hookConfig{gw: g}); err != nil {
		return nil, fmt.Errorf("mqttgw: add hook: %w", err)
	}
	if err := g.server.AddListener(listeners.NewNet(listenerID, g.ln)); err != nil {
		return nil, fmt.Errorf("mqttgw: add listener: %w", err)
	}
	if err := g.server.Serve(); err != nil {
		return nil, fmt.Errorf("mqttgw: serve: %w", err)
	}
	dropRetained(g.server)
	return g, nil
}

// sysTopicsNever is mochi's $SYS refresh interval, in seconds: a century,
// the longest a time.Ticker takes.
const sysTopicsNever = 100 * 365 * 24 * 60 * 60

// dropRetained deletes the retained messages mochi keeps: only its own
// $SYS topics, published once by Serve (IoT Hub stores no retained
// message, and devices may not subscribe to $SYS). While any is retained,
// every SUBSCRIBE makes mochi walk the topic tree under the filter, copying
// each level's map, for retained messages to send: that was 60 µs per
// subscription with 10,000 devices connected.
func dropRetained(s *mqtt.Server) {
	for topic := range s.Topics.Retained.GetAll() {
		s.Topics.RetainMessage(packets.Packet{TopicName: topic})
	}
}

// listenerID names the gateway's one mochi listener.
const listenerID = "mqtts"

func capabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumQos = 1
	c.RetainAvailable = 0 // IoT Hub does not store retained messages
	c.MaximumClientWritesPending = writesPending
	c.MaximumSessionExpiryInterval = uint32(sessionExpiry / time.Second)
	c.MaximumPacketSize = maxPacketSize
	c.TopicAliasMaximum = 0
	c.SharedSubAvailable = 0
	c.MinimumProtocolVersion = 4
	return c
}

// Close disconnects every device and stops serving. Safe to call twice.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		close(g.done)
		// Mark mochi's listener closed with a no-op client closer, so that
		// server.Close below never runs mochi's own closer: it lists clients
		// with Clients.GetByListener, which takes the clients read lock
		// twice and deadlocks when a clean-session client leaving at the
		// same moment waits for the write lock in between.
		g.server.Listeners.Close(listenerID, func(string) {})
		// Closing every accepted connection ends every client, including
		// connections that never sent CONNECT, which mochi does not know
		// about and would otherwise wait for.
		g.ln.shutdown()
		// Waits for every client goroutine; takes no clients lock.
		g.closeErr = g.server.Close()
	})
	return g.closeErr
}

// Connected reports whether the device has a live connection.
func (g *Gateway) Connected(deviceID string) bool {
	return g.liveSession(deviceID) != nil
}

// ConnectedCount is the number of connected devices.
func (g *Gateway) ConnectedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.connected
}

// DisconnectDevice closes the device's connection, if any (device deleted
// or disabled), and drops its persistent session so that a re-created
// device starts with no subscriptions. It never waits for the device: the
// socket is closed under any write in progress.
func (g *Gateway) DisconnectDevice(deviceID string) {
	if s := g.liveSession(deviceID); s != nil {
		g.endSession(s, errDeviceRemoved)
	}
	if cl, ok := g.server.Clients.Get(deviceID); ok {
		cl.Stop(errDeviceRemoved)
		g.server.UnsubscribeClient(cl)
		g.server.Clients.Delete(deviceID)
	}
}

var errDeviceRemoved = errors.New("device disabled or deleted")

// liveSession returns the device's connected session, or nil.
func (g *Gateway) liveSession(deviceID string) *session {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.devices[deviceID]
	if d == nil || d.sess == nil || d.sess.client.Closed() {
		return nil
	}
	return d.sess
}

// sessionOf returns the live session of cl, or nil once it has ended.
func (g *Gateway) sessionOf(cl *mqtt.Client) *session {
	s, ok := g.sessions.Load(cl)
	if !ok {
		return nil
	}
	return s.(*session)
}

// deviceLocked returns the device's entry, creating it. g.mu must be held.
func (g *Gateway) deviceLocked(id string) *device {
	d := g.devices[id]
	if d == nil {
		d = &device{}
		g.devices[id] = d
	}
	return d
}

// forgetLocked drops an entry nobody needs any more. g.mu must be held.
func (g *Gateway) forgetLocked(id string, d *device) {
	if d.sess == nil && d.waiters == 0 && d.calls.Load() == 0 {
		delete(g.devices, id)
	}
}

// attach makes s the device's live session, replacing (and reporting as
// disconnected) any session it takes over.
func (g *Gateway) attach(deviceID string, s *session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.deviceLocked(deviceID)
	if old := d.sess; old != nil {
		g.sessions.Delete(old.client)
		g.retire(old)
		if old.announced.Load() {
			g.connectionState(deviceID, false)
		}
	} else {
		g.connected++
	}
	d.sess = s
	d.live.Store(true)
	g.sessions.Store(s.client, s)
	g.registry.SetConnected(deviceID, true, g.now())
	// A resumed persistent session is already subscribed: the device will
	// not SUBSCRIBE again, so it counts as active right away.
	if s.client.State.Subscriptions.Len() > 0 {
		g.announceLocked(deviceID, s)
	}
	d.notify()
}

// detach ends cl's session if it is still the device's live one.
func (g *Gateway) detach(cl *mqtt.Client) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.devices[cl.ID]
	if d == nil || d.sess == nil || d.sess.client != cl {
		return // taken over: attach already reported it
	}
	// The twin says Disconnected before deviceDisconnected goes out, so a
	// consumer that reads the twin on hearing of it sees the new state.
	g.registry.SetConnected(cl.ID, false, g.now())
	if d.sess.announced.Load() {
		g.connectionState(cl.ID, false)
	}
	g.retire(d.sess)
	g.sessions.Delete(cl)
	d.sess = nil
	d.live.Store(false)
	g.connected--
	d.notify()
	g.forgetLocked(cl.ID, d)
}

// announce emits deviceConnected on the session's first SUBSCRIBE or
// PUBLISH: IoT Hub starts connection-state events only then (reference §4).
func (g *Gateway) announce(cl *mqtt.Client) {
	s := g.sessionOf(cl)
	if s == nil || s.announced.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.devices[cl.ID]; d != nil && d.sess == s {
		g.announceLocked(cl.ID, s)
	}
}

func (g *Gateway) announceLocked(deviceID string, s *session) {
	if s.announced.CompareAndSwap(false, true) {
		// g.mu keeps one device's notifications in order.
		g.connectionState(deviceID, true)
	}
}

// subscriptionsChanged wakes InvokeMethod calls waiting for the device.
func (g *Gateway) subscriptionsChanged(cl *mqtt.Client) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.devices[cl.ID]; d != nil && d.sess != nil && d.sess.client == cl {
		d.notify()
	}
}

// connectionState routes a connection-state notification; the connection
// goes on whether or not its event could be stored.
func (g *Gateway) connectionState(deviceID string, connected bool) {
	if err := g.router.ConnectionState(deviceID, connected); err != nil {
		g.log.Warn("connection-state event not stored", "deviceId", deviceID, "err", err)
	}
}
