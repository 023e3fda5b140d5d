package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// brokerConfig configures the floor: a bare mochi-mqtt broker.
type brokerConfig struct {
	// DataDir is the hub's: the broker serves the hub's certificate.
	DataDir string `json:"dataDir"`
	// Host is the address to listen on (port chosen by the system).
	Host string `json:"host"`
}

type brokerInfo struct {
	MQTTAddr string `json:"mqttAddr"`
}

// floorTLS is the hub's server TLS configuration (tlsca.ServerTLSConfig:
// TLS 1.2 at least, Go's defaults otherwise) with the hub's own ECDSA
// P-256 certificate, so the floor's handshakes and record encryption cost
// what the hub's do. TestFloorTLSMatchesHub holds the two together.
func floorTLS(dataDir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dataDir, "tls", "server.pem"), filepath.Join(dataDir, "tls", "server-key.pem"))
	if err != nil {
		return nil, fmt.Errorf("the hub's certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// runBroker is the floor the hub's direct methods are measured against: a
// mochi-mqtt broker, the library the hub's device endpoint is built on,
// with its default options, no authentication and no IoT Hub behaviour.
// Devices and the requester exchange request and response through it (see
// floorRequestTopic). The one option changed is how often mochi refreshes its
// $SYS topics, which reads runtime.MemStats and so stops the world: once an
// hour, as the hub does, instead of every second.
func runBroker(_ context.Context, cfg brokerConfig) (any, handler, func(), error) {
	tlsConf, err := floorTLS(cfg.DataDir)
	if err != nil {
		return nil, nil, nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
	if err != nil {
		return nil, nil, nil, err
	}
	server := mqtt.New(&mqtt.Options{
		Logger:                 slog.New(slog.DiscardHandler),
		SysTopicResendInterval: int64(time.Hour / time.Second),
	})
	if err := server.AddHook(new(allowAll), nil); err != nil {
		return nil, nil, nil, err
	}
	if err := server.AddListener(listeners.NewNet("floor", tls.NewListener(ln, tlsConf))); err != nil {
		return nil, nil, nil, err
	}
	if err := server.Serve(); err != nil {
		return nil, nil, nil, err
	}
	return brokerInfo{MQTTAddr: ln.Addr().String()}, nil, func() { _ = server.Close() }, nil
}

// allowAll lets every client connect and use every topic: the floor has no
// authentication or topic rules. (mochi's own auth.AllowHook would bring
// in a YAML library for nothing.)
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }

func (allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }
