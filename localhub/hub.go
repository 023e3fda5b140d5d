// Package localhub is a local Azure IoT Hub: the device registry, device
// twins, direct methods and the service REST API over HTTPS, devices over
// MQTT 3.1.1/TLS, and the built-in events endpoint, served to Event Hubs
// clients over AMQP 1.0 (TLS, and plain for UseDevelopmentEmulator=true
// connection strings), with state kept in a data directory. Real IoT Hub clients use it unmodified except for the host
// and port they dial and trusting its local CA.
//
// Tests start one in-process with [Start] (or localhubtest.New); the
// localhub command is a thin adapter over the same code.
package localhub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventhubs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/mqttgw"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/localhub/internal/rest"
	"github.com/iothub-reboot/devmgmt/localhub/internal/routing"
	"github.com/iothub-reboot/devmgmt/localhub/internal/tlsca"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// Options configure Start. The zero value is a hub for tests: hostname
// localhost, every listener on 127.0.0.1:0, TLS with a generated CA, and
// state in a temporary directory removed by Close.
type Options struct {
	// DataDir holds the registry, keys, TLS material and the events log
	// (events/). Empty: a temporary directory removed on Close.
	DataDir string
	// Hostname is the hub host name in connection strings and tokens.
	// Default "localhost".
	Hostname string
	// MQTTAddr and HTTPSAddr are listen addresses. Default "127.0.0.1:0".
	MQTTAddr  string
	HTTPSAddr string
	// BearerToken, when set, is accepted as "Authorization: Bearer <token>"
	// with full data-plane rights: a stand-in for Entra ID, whose tokens
	// cannot be validated offline.
	BearerToken string
	// Quotas throttle service operations with 429; none by default.
	Quotas Quotas
	// Partitions of the events endpoint (default 4; fixed once the data
	// dir has an events log, 0 keeps its count) and their retention
	// (default 24h).
	Partitions int
	Retention  time.Duration
	// AMQPAddr is where the built-in endpoint serves Event Hubs clients
	// over AMQP with TLS (the localhub command uses 127.0.0.1:5671, the
	// port Event Hubs clients dial). Default "127.0.0.1:0".
	AMQPAddr string
	// AMQPPlainAddr serves the same without TLS, for connection strings
	// with UseDevelopmentEmulator=true (port 5672 for the command).
	// Default "127.0.0.1:0"; "off" serves none. SAS keys and events cross
	// it in the clear, so it must be a loopback address unless
	// AllowRemotePlainAMQP is set.
	AMQPPlainAddr        string
	AllowRemotePlainAMQP bool
	// ConsumerGroups of the built-in endpoint besides $Default (at most
	// 19). Nil means DefaultConsumerGroups, the groups infra/ creates in
	// Azure.
	ConsumerGroups []string
	// Routes are the sources routed to the built-in endpoint. Zero means
	// DefaultRoutes: what infra/ routes in Azure.
	Routes Routes
	// Logger defaults to a logger that discards everything.
	Logger *slog.Logger

	// MQTTListener, HTTPSListener, AMQPListener and AMQPPlainListener,
	// when set, are sockets the caller already listens on (inherited from
	// a parent process, say: socket activation, or a test that restarts
	// a hub on the same ports), served instead of listening on the
	// matching address, which is then ignored. The hub adds TLS where the
	// address would have it, and closes them on Close or when Start
	// fails. AMQPPlainListener is refused on a non-loopback address unless
	// AllowRemotePlainAMQP is set, as AMQPPlainAddr is.
	MQTTListener      net.Listener
	HTTPSListener     net.Listener
	AMQPListener      net.Listener
	AMQPPlainListener net.Listener
}

// Routes is a set of routing sources, IoT Hub's names for what a route
// takes: device telemetry and the kinds of notifications.
type Routes = routing.Sources

// The routing sources.
const (
	// RouteDeviceMessages is device-to-cloud telemetry (IoT Hub's fallback
	// route sends it to the built-in endpoint).
	RouteDeviceMessages = routing.DeviceMessages
	// RouteTwinChangeEvents is twin-change notifications.
	RouteTwinChangeEvents = routing.TwinChangeEvents
	// RouteDeviceLifecycleEvents is device created/deleted notifications.
	RouteDeviceLifecycleEvents = routing.DeviceLifecycleEvents
	// RouteDeviceConnectionStateEvents is connected/disconnected
	// notifications.
	RouteDeviceConnectionStateEvents = routing.DeviceConnectionStateEvents
)

// DefaultRoutes are what infra/modules/iothub.bicep routes to the
// built-in endpoint in Azure: twin-change events (route
// TwinChangesToEvents) and telemetry (the fallback route). Code tested
// locally then sees the event mix it gets in Azure.
const DefaultRoutes = RouteDeviceMessages | RouteTwinChangeEvents

// DefaultConsumerGroups are the consumer groups infra/main.bicep creates
// on the built-in endpoint: one for the function app in Azure, one for
// local development (IOTHUB_CONSUMER_GROUP in local.settings.json).
var DefaultConsumerGroups = []string{"functions", "localdev"}

// DefaultConsumerGroup is the group every Event Hub has.
const DefaultConsumerGroup = eventhubs.DefaultConsumerGroup

// ParseRoutes reads a comma-separated list of routing sources:
// DeviceMessages, TwinChangeEvents, DeviceLifecycleEvents,
// DeviceConnectionStateEvents (any case).
func ParseRoutes(list string) (Routes, error) { return routing.ParseSources(list) }

// Hub is a running local IoT Hub.
type Hub struct {
	hostname string
	dataDir  string
	tempDir  bool
	logger   *slog.Logger

	tls      *tlsca.Bundle
	store    *registry.Store
	events   *eventlog.Log
	router   *routing.Router
	gateway  *mqttgw.Gateway
	jobs     *jobs.Engine
	httpSrv  *http.Server
	httpsURL string
	mqttAddr string
	quotas   Quotas

	endpoint      *eventhubs.Server
	amqpAddr      string
	amqpPlainAddr string // "" when off

	closeOnce sync.Once
	closeErr  error
}

// Start starts a hub; ctx bounds start-up only.
func Start(ctx context.Context, opts Options) (_ *Hub, err error) {
	h := &Hub{
		hostname: opts.Hostname,
		dataDir:  opts.DataDir,
		logger:   opts.Logger,
		quotas:   opts.Quotas,
	}
	if h.hostname == "" {
		h.hostname = "localhost"
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			h.Close()
			// Those the hub had started serving are closed already;
			// closing one twice does no harm.
			for _, ln := range []net.Listener{opts.MQTTListener, opts.HTTPSListener, opts.AMQPListener, opts.AMQPPlainListener} {
				if ln != nil {
					_ = ln.Close()
				}
			}
		}
	}()
	if h.dataDir == "" {
		if h.dataDir, err = os.MkdirTemp("", "localhub-"); err != nil {
			return nil, fmt.Errorf("localhub: temporary data dir: %w", err)
		}
		h.tempDir = true
	} else if err = os.MkdirAll(h.dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("localhub: data dir: %w", err)
	}
	if h.tls, err = tlsca.LoadOrCreate(filepath.Join(h.dataDir, "tls"), []string{h.hostname}); err != nil {
		return nil, fmt.Errorf("localhub: TLS material: %w", err)
	}
	if h.events, err = eventlog.Open(eventlog.Options{
		Dir:        filepath.Join(h.dataDir, "events"),
		Partitions: opts.Partitions,
		Retention:  opts.Retention,
		Logger:     h.logger.With("component", "eventlog"),
	}); err != nil {
		return nil, fmt.Errorf("localhub: events log: %w", err)
	}
	routes := opts.Routes
	if routes == 0 {
		routes = DefaultRoutes
	}
	h.router = routing.New(routing.Options{Hostname: h.hostname, Events: h.events, Sources: routes})
	if h.store, err = registry.Open(registry.Options{
		Path:     filepath.Join(h.dataDir, "registry.db"),
		OnChange: h.route,
	}); err != nil {
		return nil, fmt.Errorf("localhub: registry: %w", err)
	}
	if err = h.startEndpoint(ctx, opts); err != nil {
		return nil, err
	}

	mqttLn, err := listen(ctx, opts.MQTTListener, opts.MQTTAddr, h.tls.ServerTLSConfig())
	if err != nil {
		return nil, fmt.Errorf("localhub: MQTT listener: %w", err)
	}
	h.mqttAddr = mqttLn.Addr().String()
	if h.gateway, err = mqttgw.Start(mqttgw.Config{
		Hostname: h.hostname,
		Listener: mqttLn,
		Registry: h.store,
		Router:   h.router,
		Logger:   h.logger.With("component", "mqtt"),
	}); err != nil {
		mqttLn.Close()
		return nil, fmt.Errorf("localhub: MQTT gateway: %w", err)
	}

	// Jobs call devices through the gateway, as direct calls do; running
	// jobs resume here after a restart.
	if h.jobs, err = jobs.Start(jobs.Options{
		Store:                     h.store,
		Devices:                   h.gateway,
		SelectDevices:             rest.SelectDevices(h.store),
		Logger:                    h.logger.With("component", "jobs"),
		MaxActiveJobs:             opts.Quotas.ConcurrentJobs,
		DeviceOperationsPerSecond: opts.Quotas.JobDeviceOperations,
	}); err != nil {
		return nil, fmt.Errorf("localhub: jobs: %w", err)
	}

	httpsLn, err := listen(ctx, opts.HTTPSListener, opts.HTTPSAddr, h.tls.ServerTLSConfig())
	if err != nil {
		return nil, fmt.Errorf("localhub: HTTPS listener: %w", err)
	}
	h.httpsURL = "https://" + httpsLn.Addr().String()
	// Every timeout (headers, body, idle keep-alive, responses) is set by
	// rest.NewHTTPServer: a slow or idle client cannot hold a connection.
	h.httpSrv = rest.NewHTTPServer(rest.Deps{
		Hostname:    h.hostname,
		Registry:    h.store,
		Devices:     h.gateway,
		Jobs:        h.jobs,
		BearerToken: opts.BearerToken,
		Quotas:      opts.Quotas,
		Logger:      h.logger.With("component", "rest"),
	}, rest.Timeouts{})
	go func() {
		if err := h.httpSrv.Serve(httpsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.logger.Error("HTTPS server stopped", "err", err)
		}
	}()
	if !h.tempDir {
		if err = writeHubFile(h.dataDir, hubInfo{Hostname: h.hostname, AMQPAddr: h.amqpAddr, AMQPPlainAddr: h.amqpPlainAddr, PlainOff: h.amqpPlainAddr == ""}); err != nil {
			return nil, fmt.Errorf("localhub: %w", err)
		}
		if err = h.writeRunFile(); err != nil {
			return nil, fmt.Errorf("localhub: %w", err)
		}
	}
	h.logger.Info("local IoT Hub started", "hostname", h.hostname, "https", h.httpsURL, "mqtt", h.mqttAddr,
		"amqps", h.amqpAddr, "amqp", h.amqpPlainAddr, "eventHub", h.EventHubName(), "dataDir", h.dataDir)
	return h, nil
}

// startEndpoint serves the built-in endpoint to Event Hubs clients: AMQP
// over TLS, and plain AMQP on loopback unless turned off.
func (h *Hub) startEndpoint(ctx context.Context, opts Options) error {
	plain := opts.AMQPPlainAddr
	if opts.AMQPPlainListener != nil {
		plain = opts.AMQPPlainListener.Addr().String()
	}
	if plain == "" {
		plain = "127.0.0.1:0"
	}
	if plain != "off" && !opts.AllowRemotePlainAMQP && !isLoopback(plain) {
		return fmt.Errorf("localhub: plain AMQP address %s is not a loopback address: SAS keys and events would cross the network unencrypted (allow it explicitly, or use the TLS listener)", plain)
	}
	groups := opts.ConsumerGroups
	if groups == nil {
		groups = DefaultConsumerGroups
	}
	var err error
	if h.endpoint, err = eventhubs.NewServer(eventhubs.Options{
		Events:         h.events,
		Hostname:       h.hostname,
		Name:           h.EventHubName(),
		ConsumerGroups: groups,
		Policy:         h.endpointPolicy,
		Logger:         h.logger.With("component", "eventhubs"),
	}); err != nil {
		return fmt.Errorf("localhub: built-in endpoint: %w", err)
	}
	tlsLn, err := listen(ctx, opts.AMQPListener, opts.AMQPAddr, h.tls.ServerTLSConfig())
	if err != nil {
		return fmt.Errorf("localhub: AMQP listener: %w", err)
	}
	h.amqpAddr = tlsLn.Addr().String()
	go h.serveAMQP(tlsLn)
	if plain != "off" {
		plainLn, err := listen(ctx, opts.AMQPPlainListener, plain, nil)
		if err != nil {
			return fmt.Errorf("localhub: plain AMQP listener: %w", err)
		}
		h.amqpPlainAddr = plainLn.Addr().String()
		go h.serveAMQP(plainLn)
	}
	return nil
}

func (h *Hub) serveAMQP(ln net.Listener) {
	if err := h.endpoint.Serve(ln); err != nil && !errors.Is(err, eventhubs.ErrServerClosed) {
		h.logger.Error("AMQP listener stopped", "addr", ln.Addr().String(), "err", err)
	}
}

// isLoopback reports whether a listen address can only be reached from
// this machine: a loopback IP or "localhost", not an empty host (every
// interface).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// endpointPolicy is a shared access policy as the built-in endpoint sees
// it: ServiceConnect reads it (Listen), as in Azure. Azure lets nobody send
// to it; locally a policy with ServiceConnect and RegistryWrite
// (iothubowner) may, so that tests and tools can publish events.
func (h *Hub) endpointPolicy(name string) (eventhubs.Policy, bool) {
	p, ok := h.store.Policy(name)
	if !ok {
		return eventhubs.Policy{}, false
	}
	var r eventhubs.Rights
	if p.Rights.Has(registry.ServiceConnect) {
		r |= eventhubs.Listen
		if p.Rights.Has(registry.RegistryWrite) {
			r |= eventhubs.Send
		}
	}
	return eventhubs.Policy{Name: p.KeyName, Keys: []string{p.PrimaryKey, p.SecondaryKey}, Rights: r}, true
}

// listen serves ln if given, or else listens on addr (default
// 127.0.0.1:0), with TLS unless cfg is nil.
func listen(ctx context.Context, ln net.Listener, addr string, cfg *tls.Config) (net.Listener, error) {
	if ln == nil {
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var lc net.ListenConfig
		var err error
		if ln, err = lc.Listen(ctx, "tcp", addr); err != nil {
			return nil, err
		}
	}
	if cfg == nil {
		return ln, nil
	}
	return tls.NewListener(ln, cfg), nil
}

// route turns a committed registry change into what IoT Hub would do with
// it: a routed notification and, for desired-property changes, a
// notification to the connected device. The registry calls it under the
// device's lock, so neither may wait for the network: the gateway only
// queues the notification.
func (h *Hub) route(n registry.Notification) {
	if err := h.router.Change(n); err != nil {
		// The registry change is committed; only its event is lost.
		h.logger.Error("routed notification not stored", "deviceId", n.DeviceID, "source", n.Source, "err", err)
	}
	if n.DesiredPatch != nil && h.gateway != nil {
		h.gateway.SendDesired(n.DeviceID, n.DesiredVersion, n.DesiredPatch)
	}
}

// Close stops the hub. Safe to call twice.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		var errs []error
		if h.httpSrv != nil {
			// Let requests in flight finish, briefly. Connections a client
			// dialled but never used count as active for five seconds, so a
			// grace period that ends is normal, not an error: close the rest.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := h.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, h.httpSrv.Close())
			}
			cancel()
		}
		// Jobs stop before the gateway, so that no call in flight is
		// recorded as failed by the gateway's closing.
		if h.jobs != nil {
			errs = append(errs, h.jobs.Close())
		}
		if h.gateway != nil {
			errs = append(errs, h.gateway.Close())
		}
		if h.endpoint != nil {
			errs = append(errs, h.endpoint.Close())
		}
		if h.events != nil {
			errs = append(errs, h.events.Close())
		}
		if h.store != nil {
			errs = append(errs, h.store.Close())
		}
		if h.tempDir {
			errs = append(errs, os.RemoveAll(h.dataDir))
		} else if h.httpsURL != "" {
			errs = append(errs, h.removeRunFile())
		}
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// Hostname is the hub host name used in connection strings.
func (h *Hub) Hostname() string { return h.hostname }

// DataDir is the directory holding the hub's state.
func (h *Hub) DataDir() string { return h.dataDir }

// HTTPSURL is the base URL of the service REST API, e.g. https://127.0.0.1:41234.
func (h *Hub) HTTPSURL() string { return h.httpsURL }

// MQTTAddr is the device endpoint's host:port (MQTT over TLS).
func (h *Hub) MQTTAddr() string { return h.mqttAddr }

// Policies lists the hub's shared access policy names.
func (h *Hub) Policies() []string {
	var names []string
	for _, p := range h.store.Policies() {
		names = append(names, p.KeyName)
	}
	return names
}

// ServiceConnectionString returns the connection string of a shared access
// policy ("iothubowner", "service", "serviceAndRegistryRead", ...). Like
// Azure's, it carries no port: clients reach the local hub through an
// endpoint override (HTTPSURL).
func (h *Hub) ServiceConnectionString(policy string) (string, error) {
	p, ok := h.store.Policy(policy)
	if !ok {
		return "", fmt.Errorf("localhub: no shared access policy %q", policy)
	}
	return sas.ConnectionString{
		HostName:            h.hostname,
		SharedAccessKeyName: p.KeyName,
		SharedAccessKey:     p.PrimaryKey,
	}.String(), nil
}

// DeviceConnectionString returns a device's connection string (primary key).
func (h *Hub) DeviceConnectionString(deviceID string) (string, error) {
	d, err := h.store.GetDevice(deviceID)
	if err != nil {
		return "", fmt.Errorf("localhub: device %q: %w", deviceID, err)
	}
	return h.deviceConnectionString(d), nil
}

func (h *Hub) deviceConnectionString(d registry.Device) string {
	return sas.ConnectionString{
		HostName:        h.hostname,
		DeviceID:        d.DeviceID,
		SharedAccessKey: d.Authentication.SymmetricKey.PrimaryKey,
	}.String()
}

// CreateDevice registers a SAS device with generated keys and returns its
// connection string. It is the in-process equivalent of PUT /devices/{id}
// and emits the same lifecycle event.
func (h *Hub) CreateDevice(deviceID string) (string, error) {
	d, err := h.store.CreateDevice(registry.Device{DeviceID: deviceID})
	if err != nil {
		return "", fmt.Errorf("localhub: create device %q: %w", deviceID, err)
	}
	return h.deviceConnectionString(d), nil
}

// CACertPEM is the local CA certificate in PEM form.
func (h *Hub) CACertPEM() []byte { return h.tls.CACertPEM }

// CAFile is the path of the CA certificate file in the data dir.
func (h *Hub) CAFile() string { return h.tls.CAFile }

// CertPool is a pool holding the hub's CA.
func (h *Hub) CertPool() *x509.CertPool { return h.tls.Pool }

// TLSConfig is a client TLS configuration that trusts the hub's CA.
func (h *Hub) TLSConfig() *tls.Config { return h.tls.ClientTLSConfig() }

// HTTPClient returns an HTTP client that trusts the hub's CA. Its timeout
// is above the longest direct-method wait (300 s response + 300 s connect).
func (h *Hub) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = h.tls.ClientTLSConfig()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, Timeout: 11 * time.Minute}
}

// Events is the built-in events endpoint's log, read in process. Event
// Hubs clients read the same events over AMQP (EventHubConnectionString).
func (h *Hub) Events() *eventlog.Log { return h.events }

// EventHubName is the built-in endpoint's Event Hub-compatible name (the
// EntityPath of its connection strings): the hub's name, the first label
// of its host name.
func (h *Hub) EventHubName() string { return routing.HubName(h.hostname) }

// AMQPAddr is the host:port of the built-in endpoint's AMQP over TLS
// listener.
func (h *Hub) AMQPAddr() string { return h.amqpAddr }

// AMQPPlainAddr is the host:port of its plain AMQP listener, "" when off.
func (h *Hub) AMQPPlainAddr() string { return h.amqpPlainAddr }

// ConsumerGroups lists the built-in endpoint's consumer groups, $Default
// first.
func (h *Hub) ConsumerGroups() []string { return h.endpoint.ConsumerGroups() }

// Routes are the sources the hub routes to the built-in endpoint.
func (h *Hub) Routes() Routes { return h.router.Sources() }

// EventHubConnectionString returns the built-in endpoint's Event
// Hub-compatible connection string for a policy, as the portal's
// "Built-in endpoints" page shows it: Endpoint=sb://<host>/ (with the
// port when it is not 5671) for TLS, or with emulator set the
// UseDevelopmentEmulator=true form for the plain listener, which the .NET
// client (the Functions host), azeventhubs and @azure/event-hubs take. The
// policy needs ServiceConnect.
func (h *Hub) EventHubConnectionString(policy string, emulator bool) (string, error) {
	p, ok := h.store.Policy(policy)
	if !ok {
		return "", fmt.Errorf("localhub: no shared access policy %q", policy)
	}
	if !p.Rights.Has(registry.ServiceConnect) {
		return "", fmt.Errorf("localhub: policy %q cannot read the built-in endpoint: it needs ServiceConnect (%s has %s)", policy, policy, p.Rights)
	}
	addr := h.amqpAddr
	if emulator {
		if h.amqpPlainAddr == "" {
			return "", errors.New("localhub: the plain AMQP listener is off, so there is no UseDevelopmentEmulator=true connection string")
		}
		addr = h.amqpPlainAddr
	}
	return eventHubConnectionString(h.hostname, addr, emulator, p.KeyName, p.PrimaryKey), nil
}

// eventHubConnectionString formats a built-in endpoint connection string
// for a listener at addr.
func eventHubConnectionString(hostname, addr string, emulator bool, keyName, key string) string {
	_, port, _ := net.SplitHostPort(addr)
	endpoint := "sb://" + hostname
	switch {
	case emulator:
		endpoint += ":" + port // Go's client wants sb://host:port, no path
	case port != "5671":
		endpoint += ":" + port + "/"
	default:
		endpoint += "/"
	}
	cs := "Endpoint=" + endpoint + ";SharedAccessKeyName=" + keyName + ";SharedAccessKey=" + key + ";EntityPath=" + routing.HubName(hostname)
	if emulator {
		cs += ";UseDevelopmentEmulator=true"
	}
	return cs
}
