package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// fleetConfig configures a fleet of paho devices that answer direct
// methods, against the hub (IoT Hub topics and SAS credentials) or the
// floor broker (floorRequestTopic, no credentials). The same code serves both,
// so the two measurements differ only by what is between requester and
// device.
type fleetConfig struct {
	Floor       bool   `json:"floor"`
	Addr        string `json:"addr"`
	CAFile      string `json:"caFile"`
	ServerName  string `json:"serverName"`
	DevicesFile string `json:"devicesFile"` // connection strings
	Concurrency int    `json:"concurrency"`
}

type fleetInfo struct {
	Devices int     `json:"devices"`
	Seconds float64 `json:"seconds"`
}

// fleetStats counts what the fleet saw, so a run that lost devices or
// answered nothing cannot pass for a measurement.
type fleetStats struct {
	Answered int64 `json:"answered"`
	Lost     int64 `json:"lost"`
}

// Topics of a direct method on the floor. A bare broker routes by topic, so
// each device's topics start with its id where IoT Hub's start with
// "$iothub"; device ids are as long as that prefix, so packets are the same
// size on both paths.
func floorRequestTopic(id, method string, rid uint64) string {
	return fmt.Sprintf("%s/methods/POST/%s/?$rid=%d", id, method, rid)
}

// methodReply is the topic a device answers a request on: the request's
// prefix ("$iothub" or the device id), status 200, the same request id.
func methodReply(requestTopic string) (string, bool) {
	prefix, rest, ok := strings.Cut(requestTopic, "/methods/POST/")
	if !ok {
		return "", false
	}
	_, rid, ok := strings.Cut(rest, "/?$rid=")
	if !ok {
		return "", false
	}
	return prefix + "/methods/res/200/?$rid=" + rid, true
}

func runFleet(_ context.Context, cfg fleetConfig) (any, handler, func(), error) {
	b, err := os.ReadFile(cfg.DevicesFile)
	if err != nil {
		return nil, nil, nil, err
	}
	var css []sas.ConnectionString
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" {
			cs, err := sas.ParseConnectionString(line)
			if err != nil {
				return nil, nil, nil, err
			}
			css = append(css, cs)
		}
	}
	caPEM, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, nil, errors.New("no CA certificate in " + cfg.CAFile)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}

	var stats fleetStats
	answer := func(c paho.Client, m paho.Message) {
		if topic, ok := methodReply(m.Topic()); ok {
			c.Publish(topic, 0, false, m.Payload())
			atomic.AddInt64(&stats.Answered, 1)
		}
	}
	clients := make([]paho.Client, len(css))
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(max(cfg.Concurrency, 1))
	for i, cs := range css {
		g.Go(func() error {
			c, err := connectDevice(cfg, cs, tlsConf, answer, &stats.Lost)
			clients[i] = c
			if err != nil {
				return fmt.Errorf("device %s: %w", cs.DeviceID, err)
			}
			return nil
		})
	}
	err = g.Wait()
	stop := func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				wg.Go(func() { c.Disconnect(0) })
			}
		}
		wg.Wait()
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	handle := func(_ context.Context, name, _ string) (any, error) {
		if name != "stats" {
			return nil, fmt.Errorf("unknown command %q", name)
		}
		return fleetStats{Answered: atomic.LoadInt64(&stats.Answered), Lost: atomic.LoadInt64(&stats.Lost)}, nil
	}
	return fleetInfo{Devices: len(clients), Seconds: time.Since(start).Seconds()}, handle, stop, nil
}

// connectDevice connects one device and subscribes it to its requests.
func connectDevice(cfg fleetConfig, cs sas.ConnectionString, tlsConf *tls.Config, answer paho.MessageHandler, lost *int64) (paho.Client, error) {
	o := paho.NewClientOptions().
		AddBroker("tls://" + cfg.Addr).
		SetTLSConfig(tlsConf).
		SetClientID(cs.DeviceID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(time.Minute).
		// IoT Hub's SDKs keep connections alive with a ping every few
		// minutes (the C SDK every 4); 10,000 devices pinging every 30 s,
		// paho's default, would be load of their own.
		SetKeepAlive(4 * time.Minute).
		SetConnectionLostHandler(func(paho.Client, error) { atomic.AddInt64(lost, 1) })
	filter := "$iothub/methods/POST/#"
	if cfg.Floor {
		filter = cs.DeviceID + "/methods/POST/#"
	} else {
		token, err := sas.New(cs.HostName+"/devices/"+cs.DeviceID, "", cs.SharedAccessKey, time.Now().Add(24*time.Hour))
		if err != nil {
			return nil, err
		}
		o.SetUsername(cs.HostName + "/" + cs.DeviceID + "/?api-version=2021-04-12").SetPassword(token)
	}
	c := paho.NewClient(o)
	if err := await(c.Connect()); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := await(c.Subscribe(filter, 0, answer)); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return c, nil
}

func await(t paho.Token) error {
	if !t.WaitTimeout(time.Minute) {
		return errors.New("timed out")
	}
	return t.Error()
}
