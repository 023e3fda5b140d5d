package conformance

import (
	"log/slog"
	"strconv"
	"testing"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// TestNodeEventHubs runs node/eventhubs.js — Microsoft's JS Event Hubs
// client, @azure/event-hubs at the version package-lock.json pins,
// unmodified — against a fresh in-process hub: it reads the twin-change
// event of a device's reported-property update (the event
// TwinChangeProcessor reads in Azure) over AMQP with TLS and over the
// plain listener with UseDevelopmentEmulator=true, and sends a batch.
//
// Unlike the service SDK, the JS client takes a port in its endpoint, so
// the hub listens on random loopback ports and needs no privilege.
func TestNodeEventHubs(t *testing.T) {
	node, npm, _ := nodeTools(t)
	var logs lockedBuffer
	t.Cleanup(func() {
		if t.Failed() && logs.Len() > 0 {
			t.Logf("hub log (warnings and errors):\n%s", logs.String())
		}
	})
	hub := localhubtest.New(t, &localhub.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	const deviceID = "js-reader"
	dev := localhubtest.NewDevice(t, hub, deviceID, localhubtest.Reply(200, `{}`))
	const lastReboot = "2026-03-01T12:00:00.000Z"
	version := dev.ReportJSON(t, map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"lastReboot": lastReboot}}})

	tlsCS, err := hub.EventHubConnectionString("service", false)
	if err != nil {
		t.Fatal(err)
	}
	emulatorCS, err := hub.EventHubConnectionString("service", true)
	if err != nil {
		t.Fatal(err)
	}
	ownerCS, err := hub.EventHubConnectionString("iothubowner", false)
	if err != nil {
		t.Fatal(err)
	}
	installSDKs(t, npm)
	runScript(t, node, "eventhubs.js",
		"NODE_EXTRA_CA_CERTS="+hub.CAFile(),
		"TLS_CONNECTION_STRING="+tlsCS,
		"EMULATOR_CONNECTION_STRING="+emulatorCS,
		"OWNER_CONNECTION_STRING="+ownerCS,
		"CONSUMER_GROUP=localdev",
		"PARTITION_ID="+strconv.Itoa(hub.Events().PartitionFor(deviceID)),
		"PARTITION_COUNT="+strconv.Itoa(hub.Events().PartitionCount()),
		"HUB_NAME="+hub.EventHubName(),
		"DEVICE_ID="+deviceID,
		"REPORTED_VERSION="+strconv.FormatInt(version, 10),
		"LAST_REBOOT="+lastReboot,
	)
}
