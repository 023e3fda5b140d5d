// Package mqttdev connects simulated devices to IoT Hub over MQTT with
// github.com/amenzhinsky/iothub's device transport.
//
// It uses the transport (iotdevice/transport/mqtt) directly, not
// iotdevice.Client: the client's method mux answers 500
// {"error":"unexpected end of JSON input"} to an empty body by itself and
// sends no reply at all for a method nobody registered (the caller then
// waits for 504 GatewayTimeout). Our dispatcher hands every call, whatever
// its name or body, to the device, which always answers.
package mqttdev

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"

	"github.com/amenzhinsky/iothub/common"
	"github.com/amenzhinsky/iothub/iotdevice"
	"github.com/amenzhinsky/iothub/iotdevice/transport/mqtt"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
)

// Options say where devices connect. The zero value is right for Azure IoT
// Hub: each device dials its connection string's HostName on port 8883 and
// trusts the SDK's built-in Azure roots.
type Options struct {
	// BrokerAddr, as host:port, is where every device dials instead (the
	// local hub's MQTT address). TLS still checks the certificate against
	// the connection string's HostName.
	BrokerAddr string
	// ExtraRootsPEM are CA certificates to trust besides the Azure roots
	// (the local hub's ca.pem).
	ExtraRootsPEM []byte
	Logger        *slog.Logger
}

// Dialer makes device transports. One Dialer serves a whole fleet, which
// shares its certificate pool and TLS configurations.
type Dialer struct {
	broker *url.URL // nil: the SDK's default
	roots  *x509.CertPool
	log    *slog.Logger

	mu   sync.Mutex
	tlsc map[string]*tls.Config // by hub host name
}

// NewDialer checks opts and returns a Dialer.
func NewDialer(opts Options) (*Dialer, error) {
	d := &Dialer{roots: common.RootCAs(), log: opts.Logger, tlsc: map[string]*tls.Config{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if len(opts.ExtraRootsPEM) > 0 && !d.roots.AppendCertsFromPEM(opts.ExtraRootsPEM) {
		return nil, errors.New("no PEM certificate found in the extra CA certificates")
	}
	if opts.BrokerAddr != "" {
		if _, _, err := net.SplitHostPort(opts.BrokerAddr); err != nil {
			return nil, fmt.Errorf("MQTT address %q: want host:port: %w", opts.BrokerAddr, err)
		}
		d.broker = &url.URL{Scheme: "tls", Host: opts.BrokerAddr}
	}
	return d, nil
}

// Transport returns the transport for a device connection string
// (HostName=...;DeviceId=...;SharedAccessKey=...) and the device id.
func (d *Dialer) Transport(connectionString string) (deviceID string, tr device.Transport, err error) {
	creds, err := iotdevice.ParseConnectionString(connectionString)
	if err != nil {
		return "", nil, fmt.Errorf("device connection string: %w", err)
	}
	if creds.HostName == "" {
		return "", nil, errors.New("device connection string: HostName is required")
	}
	return creds.DeviceID, &transport{dialer: d, creds: creds, tlsc: d.tlsConfig(creds.HostName)}, nil
}

// tlsConfig is shared by every device of a hub: one pool, not a pool per
// connection as the SDK's default would build.
//
// Devices offer the classic key exchanges, X25519 and P-256, not Go's
// default hybrid post-quantum X25519MLKEM768: device TLS stacks offer
// those, Azure IoT Hub negotiates TLS 1.2 with classic ECDHE (its "TLS
// support in IoT Hub" page), and the hybrid share (1.2 KB) makes every
// ClientHello five times larger and every handshake dearer on both sides
// (the ML-KEM key generation alone was 6 % of a connect storm's CPU, and
// the hub keeps a buffer the size of the largest record it read for as
// long as the device stays connected).
func (d *Dialer) tlsConfig(hostName string) *tls.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.tlsc[hostName]
	if !ok {
		c = &tls.Config{
			RootCAs:          d.roots,
			ServerName:       hostName,
			MinVersion:       tls.VersionTLS12,
			CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256},
		}
		d.tlsc[hostName] = c
	}
	return c
}

type transport struct {
	dialer *Dialer
	creds  *iotdevice.SharedAccessKeyCredentials
	tlsc   *tls.Config
}

// Connect opens a new MQTT connection: CONNECT with a fresh SAS token,
// then SUBSCRIBE $iothub/methods/POST/#. The SDK's own reconnect is off, so
// a lost connection shows as Lost and the device reconnects on its terms.
func (t *transport) Connect(ctx context.Context, onMethod device.MethodHandler, onLost func()) (device.Session, error) {
	s := &session{lost: make(chan struct{}), onLost: onLost}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.tr = mqtt.New(
		mqtt.WithLogger(sdkLogger{t.dialer.log, t.creds.DeviceID}),
		mqtt.WithClientOptionsConfig(func(o *paho.ClientOptions) {
			if t.dialer.broker != nil {
				o.Servers = []*url.URL{t.dialer.broker}
			}
			o.SetTLSConfig(t.tlsc)
			o.SetAutoReconnect(false)
			// Each incoming message is handled on a goroutine of its own
			// (the SDK's handlers parse topics, ours answers methods), so
			// paho's long-lived router goroutine never grows its stack for
			// them: 2 KB less for every connected device. Order does not
			// matter here: method calls are independent, twin responses
			// carry their request id.
			o.SetOrderMatters(false)
			o.SetConnectRetry(false)
			o.SetConnectionLostHandler(func(paho.Client, error) { s.markLost() })
		}),
	)
	if err := s.tr.Connect(ctx, t.creds); err != nil {
		s.cancel()
		return nil, fmt.Errorf("connect: %w", err)
	}
	// The dispatcher's context outlives this call: the SDK publishes
	// method replies with it.
	if err := s.tr.RegisterDirectMethods(s.ctx, dispatcher{ctx: s.ctx, handle: onMethod}); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("subscribe to direct methods: %w", err)
	}
	return s, nil
}

type session struct {
	tr       *mqtt.Transport
	ctx      context.Context
	cancel   context.CancelFunc
	lost     chan struct{}
	onLost   func()
	lostOnce sync.Once
}

func (s *session) ReportProperties(ctx context.Context, patch []byte) error {
	_, err := s.tr.UpdateTwinProperties(ctx, patch)
	return err
}

func (s *session) Lost() <-chan struct{} { return s.lost }

func (s *session) markLost() {
	s.lostOnce.Do(func() {
		close(s.lost)
		s.onLost()
	})
}

func (s *session) Close() error {
	s.cancel()
	return s.tr.Close()
}

// dispatcher implements the SDK's transport.MethodDispatcher. It never
// returns an error, because the SDK then sends no reply at all.
type dispatcher struct {
	ctx    context.Context
	handle device.MethodHandler
}

// Dispatch runs on the MQTT client's long-lived receive goroutine. The
// handler (JSON decoding, logging) runs on a goroutine of its own, so that
// the stack it grows is freed when it returns rather than kept by every
// device that ever answered a call.
func (d dispatcher) Dispatch(name string, payload []byte) (int, []byte, error) {
	type answer struct {
		status int
		reply  []byte
	}
	done := make(chan answer, 1)
	go func() {
		status, reply := d.handle(d.ctx, name, payload)
		done <- answer{status, reply}
	}()
	a := <-done
	return a.status, a.reply, nil
}

// sdkLogger routes the SDK's printf-style logging to slog. It adds the
// device id per record rather than holding a logger with it, which would
// cost every connected device the attribute rendered ahead of time.
type sdkLogger struct {
	l        *slog.Logger
	deviceID string
}

func (s sdkLogger) Errorf(format string, v ...any) { s.logf(slog.LevelError, format, v) }
func (s sdkLogger) Warnf(format string, v ...any)  { s.logf(slog.LevelWarn, format, v) }
func (s sdkLogger) Infof(format string, v ...any)  { s.logf(slog.LevelDebug, format, v) }
func (s sdkLogger) Debugf(format string, v ...any) { s.logf(slog.LevelDebug, format, v) }

func (s sdkLogger) logf(level slog.Level, format string, v []any) {
	if s.l.Enabled(context.Background(), level) {
		s.l.Log(context.Background(), level, "iothub sdk: "+fmt.Sprintf(format, v...), "deviceId", s.deviceID)
	}
}
