package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// TestTryBlockNamesTheBuiltInEndpoint: the events' AMQP listeners and how
// to get their connection string, without printing a key.
func TestTryBlockNamesTheBuiltInEndpoint(t *testing.T) {
	hub := localhubtest.New(t, nil)
	var out strings.Builder
	require.NoError(t, printTryBlock(&out, config{prefix: "sim-", devices: 3, simulator: "bin/simulator"}, "http://127.0.0.1:7071", hub, true))
	require.Contains(t, out.String(), "Events         Event Hub localhost over AMQP: "+hub.AMQPAddr()+" (TLS), "+hub.AMQPPlainAddr()+" (plain, UseDevelopmentEmulator=true)")
	require.Contains(t, out.String(), "bin/localhub eventhub-connection-string --data-dir "+hub.DataDir())
	require.NotContains(t, out.String(), "SharedAccessKey=", "no secrets in the banner")
	require.Contains(t, out.String(), `curl -si -X POST http://127.0.0.1:7071/api/reboots -H 'Idempotency-Key: demo-1' -d '{"query":"*","waves":{"percent":25},"abort":{"maxFailedPercent":20}}'`,
		"a fleet reboot of the simulated devices")
}
