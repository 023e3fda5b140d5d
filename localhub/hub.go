// Package localhub is a local Azure IoT Hub: the device registry, device
// twins, direct methods and the service REST API over HTTPS, devices over
// MQTT 3.1.1/TLS, and the built-in events endpoint, with state kept in a
// data directory. Real IoT Hub clients use it unmodified except for the host
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
	"sync"
	"time"

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
	// Logger defaults to a logger that discards everything.
	Logger *slog.Logger
}

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
	h.router = routing.New(routing.Options{Hostname: h.hostname, Events: h.events})
	if h.store, err = registry.Open(registry.Options{
		Path:     filepath.Join(h.dataDir, "registry.db"),
		OnChange: h.route,
	}); err != nil {
		return nil, fmt.Errorf("localhub: registry: %w", err)
	}

	mqttLn, err := listen(ctx, opts.MQTTAddr, h.tls.ServerTLSConfig())
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

	httpsLn, err := listen(ctx, opts.HTTPSAddr, h.tls.ServerTLSConfig())
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
		if err = writeHubFile(h.dataDir, h.hostname); err != nil {
			return nil, fmt.Errorf("localhub: %w", err)
		}
		if err = h.writeRunFile(); err != nil {
			return nil, fmt.Errorf("localhub: %w", err)
		}
	}
	h.logger.Info("local IoT Hub started", "hostname", h.hostname, "https", h.httpsURL, "mqtt", h.mqttAddr, "dataDir", h.dataDir)
	return h, nil
}

func listen(ctx context.Context, addr string, cfg *tls.Config) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
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

// Events is the built-in events endpoint's log.
func (h *Hub) Events() *eventlog.Log { return h.events }
