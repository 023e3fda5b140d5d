package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// tryBlock is what localdev prints once everything runs. It holds no
// secrets: connection strings stay in the data dir (localhub
// connection-string prints them).
var tryBlock = template.Must(template.New("try").Parse(`
Local system running. Stop it with Ctrl+C.
  Function app   {{.App}}   (function keys are not checked locally)
  IoT Hub        REST {{.HubURL}}   MQTT {{.MQTT}}   CA {{.CA}}
  Events         Event Hub {{.EventHub}} over AMQP: {{.AMQP}} (TLS){{if .AMQPPlain}}, {{.AMQPPlain}} (plain, UseDevelopmentEmulator=true){{end}}
                 connection string: bin/localhub eventhub-connection-string --data-dir {{.DataDir}} [--emulator]
  Devices        {{.Devices}}

What to try:
  # Reboot {{.Device}} and wait for the device's answer (200 with its reply and a statusUrl)
  curl -s -X POST {{.App}}/api/devices/{{.Device}}/reboot

  # The same, asynchronously: 202 Accepted with a Location header; poll it until it answers 200
  curl -si -X POST -H 'Prefer: respond-async' {{.App}}/api/devices/{{.Device}}/reboot
  curl -si '<the Location (statusUrl) from that answer>'

  # The reboot report: every device's lastReboot, status and requestId (one page; follow nextLink)
  curl -s {{.App}}/api/reboots

  # Reboot every device in waves of a quarter, one IoT Hub job at a time, stopping if more than 20% fail:
  # 202 with a Location; poll it (the timer moves the waves on every 10 s), or POST <Location>/cancel
  curl -si -X POST {{.App}}/api/reboots -H 'Idempotency-Key: demo-1' -d '{"query":"*","waves":{"percent":25},"abort":{"maxFailedPercent":20}}'
  curl -s '<the Location from that answer>'

  # The API as OpenAPI 2.0 (for a Logic Apps custom connector)
  curl -s {{.App}}/api/openapi.json

  # When a device is back from its reboot, TwinChangeProcessor logs one line to this log (stderr):
  #   … reboot reported deviceId={{.Device}} lastReboot=2025-06-01T12:00:05.123Z …
{{- if not .Simulated}}

  # No devices are connected: a reboot answers 404 DeviceNotFound. Build the simulator
  # (make build) and start again, or connect your own device (localhub device create).
{{- end}}

`))

type tryData struct {
	App, HubURL, MQTT, CA, Devices, Device string
	EventHub, AMQP, AMQPPlain, DataDir     string
	Simulated                              bool
}

func printTryBlock(w io.Writer, cfg config, appURL string, hub *localhub.Hub, simulated bool) error {
	ca, err := filepath.Abs(hub.CAFile())
	if err != nil {
		return err
	}
	d := tryData{
		App:       appURL,
		HubURL:    hub.HTTPSURL(),
		MQTT:      hub.MQTTAddr(),
		CA:        ca,
		EventHub:  hub.EventHubName(),
		AMQP:      hub.AMQPAddr(),
		AMQPPlain: hub.AMQPPlainAddr(),
		DataDir:   hub.DataDir(),
		Device:    cfg.prefix + "0001",
		Simulated: simulated,
		Devices:   "none (no simulator running)",
	}
	if simulated {
		d.Devices = fmt.Sprintf("%s0001 … %s%04d from %s", cfg.prefix, cfg.prefix, cfg.devices, cfg.simulator)
		if cfg.devices == 1 {
			d.Devices = fmt.Sprintf("%s0001 from %s", cfg.prefix, cfg.simulator)
		}
	}
	var b strings.Builder
	if err := tryBlock.Execute(&b, d); err != nil {
		return err
	}
	_, err = io.WriteString(w, b.String())
	return err
}
