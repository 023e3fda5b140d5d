package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// hubConfig configures the hub child.
type hubConfig struct {
	DataDir string `json:"dataDir"`
	Devices int    `json:"devices"`
	// DevicesFile receives the devices' connection strings, one a line.
	DevicesFile string `json:"devicesFile"`
}

// hubInfo is what the hub child answers when it is ready.
type hubInfo struct {
	Hostname     string  `json:"hostname"`
	MQTTAddr     string  `json:"mqttAddr"`
	HTTPSURL     string  `json:"httpsURL"`
	CAFile       string  `json:"caFile"`
	Service      string  `json:"service"` // connection string of the "service" policy
	CreateSecond float64 `json:"createSeconds"`
}

// deviceID is the i-th device (from 0). Seven characters, as many as
// "$iothub", so that the floor's topics ({id}/methods/...) are as long as
// the hub's ($iothub/methods/...).
func deviceID(i int) string { return fmt.Sprintf("d%06d", i+1) }

// runHub starts a local hub (localhub.Start, as cmd/localhub does) and
// registers the devices; the time that takes is reported, not measured
// against a target.
//
// The hub's host name is a random loopback address and it serves MQTT on
// port 8883 there, because Microsoft's Node.js device SDK dials
// HostName:8883 and cannot be told another port.
func runHub(ctx context.Context, cfg hubConfig) (any, handler, func(), error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("process", "hub")
	var hub *localhub.Hub
	for attempt := 0; ; attempt++ {
		ip := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(254), rand.IntN(256), 1+rand.IntN(254))
		var err error
		hub, err = localhub.Start(ctx, localhub.Options{
			DataDir:   cfg.DataDir,
			Hostname:  ip,
			MQTTAddr:  net.JoinHostPort(ip, "8883"),
			HTTPSAddr: net.JoinHostPort(ip, "0"),
			Logger:    logger,
		})
		if err == nil {
			break
		}
		if attempt < 5 && (errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL)) {
			continue
		}
		return nil, nil, nil, err
	}
	stop := func() {
		if err := hub.Close(); err != nil {
			logger.Warn("close", "err", err)
		}
	}

	start := time.Now()
	css := make([]string, cfg.Devices)
	var g errgroup.Group
	g.SetLimit(64) // the registry commits concurrent creations together
	for i := range css {
		g.Go(func() error {
			cs, err := hub.CreateDevice(deviceID(i))
			css[i] = cs
			return err
		})
	}
	if err := g.Wait(); err != nil {
		stop()
		return nil, nil, nil, err
	}
	created := time.Since(start)
	service, err := hub.ServiceConnectionString("service")
	if err == nil {
		err = os.WriteFile(cfg.DevicesFile, []byte(strings.Join(css, "\n")+"\n"), 0o600)
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return hubInfo{
		Hostname:     hub.Hostname(),
		MQTTAddr:     hub.MQTTAddr(),
		HTTPSURL:     hub.HTTPSURL(),
		CAFile:       hub.CAFile(),
		Service:      service,
		CreateSecond: created.Seconds(),
	}, nil, stop, nil
}
