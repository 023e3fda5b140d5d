package localhub_test

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// Conformance of the built-in endpoint with the real azeventhubs v2
// client, against a whole in-process hub: devices over MQTT (paho), events
// out over AMQP.

// consumerClient connects to hub's built-in endpoint as a user would with
// the connection string the hub prints: over TLS trusting the hub's CA,
// or over the plain listener with UseDevelopmentEmulator=true.
func consumerClient(t testing.TB, hub *localhub.Hub, policy, group string, emulator bool) *azeventhubs.ConsumerClient {
	t.Helper()
	cs, err := hub.EventHubConnectionString(policy, emulator)
	require.NoError(t, err)
	opts := &azeventhubs.ConsumerClientOptions{}
	if !emulator {
		// go-amqp would check the certificate for "localhost:<port>" (the
		// endpoint's host with its port); on 5671 the endpoint has none.
		tlsCfg := hub.TLSConfig()
		tlsCfg.ServerName = hub.Hostname()
		opts.TLSConfig = tlsCfg
	}
	c, err := azeventhubs.NewConsumerClientFromConnectionString(cs, "", group, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func readEvents(t testing.TB, pc *azeventhubs.PartitionClient, n int) []*azeventhubs.ReceivedEventData {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*azeventhubs.ReceivedEventData
	for len(out) < n {
		evs, err := pc.ReceiveEvents(ctx, n-len(out), nil)
		require.NoError(t, err, "after %d of %d events", len(out), n)
		out = append(out, evs...)
	}
	return out
}

func partitionOf(t testing.TB, hub *localhub.Hub, deviceID string) string {
	return strconv.Itoa(hub.Events().PartitionFor(deviceID))
}

// TestTwinChangeEventOverAMQP is the event the function app's
// TwinChangeProcessor reads in Azure: a device reports lastReboot, and an
// Event Hubs consumer of the built-in endpoint gets the twin-change
// notification with every property IoT Hub sets, typed as IoT Hub types
// them (Microsoft's captures: iot-hub-non-telemetry-event-schema).
func TestTwinChangeEventOverAMQP(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	dev := localhubtest.NewDevice(t, hub, "reboot-dev", localhubtest.Reply(200, `{}`))
	before := time.Now().Add(-time.Second)
	version := dev.ReportJSON(t, map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"lastReboot": "2026-03-01T12:00:00Z"}}})

	yes := true
	for _, emulator := range []bool{false, true} {
		name := "TLS"
		if emulator {
			name = "plain, UseDevelopmentEmulator=true"
		}
		t.Run(name, func(t *testing.T) {
			c := consumerClient(t, hub, "service", "localdev", emulator)
			pc, err := c.NewPartitionClient(partitionOf(t, hub, "reboot-dev"), &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &yes}})
			require.NoError(t, err)
			defer pc.Close(context.Background())
			// By default the hub routes what infra/ routes: no lifecycle or
			// connection-state event precedes the twin change.
			e := readEvents(t, pc, 1)[0]

			require.Equal(t, "twinChangeEvents", e.SystemProperties["iothub-message-source"])
			require.Equal(t, "reboot-dev", e.SystemProperties["iothub-connection-device-id"])
			enq, ok := e.SystemProperties["iothub-enqueuedtime"].(time.Time)
			require.True(t, ok, "iothub-enqueuedtime is a timestamp: %T", e.SystemProperties["iothub-enqueuedtime"])
			require.True(t, enq.After(before) && !enq.After(time.Now()), "%v", enq)
			require.Equal(t, int64(0), e.SequenceNumber)
			require.Equal(t, "0", e.Offset)
			require.False(t, e.EnqueuedTime.Before(enq.Truncate(time.Millisecond)), "x-opt-enqueued-time is the log's, after the hub's")
			require.Nil(t, e.PartitionKey, "IoT Hub sets no x-opt-partition-key")
			require.Len(t, e.SystemProperties, 3, "the iothub-* annotations of the captures: %v", e.SystemProperties)
			ann := e.RawAMQPMessage.MessageAnnotations
			require.Len(t, ann, 6, "and Event Hubs' x-opt-*: %v", ann)
			require.IsType(t, int64(0), ann["x-opt-sequence-number"])
			require.IsType(t, "", ann["x-opt-offset"])
			require.IsType(t, time.Time{}, ann["x-opt-enqueued-time"])

			require.Equal(t, map[string]any{
				"hubName":               "localhost",
				"deviceId":              "reboot-dev",
				"iothub-message-schema": "twinChangeNotification",
				"opType":                "updateTwin",
				"operationTimestamp":    e.Properties["operationTimestamp"],
			}, e.Properties)
			require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`, e.Properties["operationTimestamp"])

			require.Equal(t, "application/json", *e.ContentType)
			require.Nil(t, e.MessageID)
			require.Regexp(t, `^[0-9a-f-]{36}$`, e.CorrelationID)
			raw := e.RawAMQPMessage.Properties
			require.Equal(t, "utf-8", *raw.ContentEncoding)
			require.Equal(t, []byte("localhost"), raw.UserID)

			var body struct {
				Version    int64 `json:"version"`
				Properties struct {
					Reported map[string]any `json:"reported"`
				} `json:"properties"`
			}
			require.NoError(t, json.Unmarshal(e.Body, &body), "%s", e.Body)
			require.Equal(t, map[string]any{"reboot": map[string]any{"lastReboot": "2026-03-01T12:00:00Z"}}, body.Properties.Reported["iothubDM"])
			require.Equal(t, float64(version), body.Properties.Reported["$version"])
		})
	}
}

// TestBuiltInEndpointProperties: the Event Hub-compatible name, partitions
// and consumer groups, through $management.
func TestBuiltInEndpointProperties(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, &localhub.Options{Partitions: 3, ConsumerGroups: []string{"alpha"}})
	require.Equal(t, "localhost", hub.EventHubName())
	require.Equal(t, []string{"$Default", "alpha"}, hub.ConsumerGroups())
	c := consumerClient(t, hub, "serviceAndRegistryRead", "alpha", true)
	props, err := c.GetEventHubProperties(t.Context(), nil)
	require.NoError(t, err)
	require.Equal(t, "localhost", props.Name)
	require.Equal(t, []string{"0", "1", "2"}, props.PartitionIDs)
	p, err := c.GetPartitionProperties(t.Context(), "2", nil)
	require.NoError(t, err)
	require.True(t, p.IsEmpty)

	// A group the hub does not have is not found.
	other := consumerClient(t, hub, "service", "localdev", true)
	pc, err := other.NewPartitionClient("0", nil)
	require.NoError(t, err)
	defer pc.Close(context.Background())
	_, err = pc.ReceiveEvents(t.Context(), 1, nil)
	require.ErrorContains(t, err, "could not be found")

	// Policies without ServiceConnect have no connection string.
	_, err = hub.EventHubConnectionString("registryReadWrite", false)
	require.ErrorContains(t, err, "needs ServiceConnect")
}

// TestRoutesAsConfigured: lifecycle and connection-state events reach the
// endpoint only when routed.
func TestRoutesAsConfigured(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, &localhub.Options{Routes: localhub.DefaultRoutes | localhub.RouteDeviceLifecycleEvents | localhub.RouteDeviceConnectionStateEvents})
	dev := localhubtest.NewDevice(t, hub, "routed", localhubtest.Reply(200, `{}`))
	require.NoError(t, dev.SendTelemetry(`{"t":1}`))
	c := consumerClient(t, hub, "service", azeventhubs.DefaultConsumerGroup, true)
	yes := true
	pc, err := c.NewPartitionClient(partitionOf(t, hub, "routed"), &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &yes}})
	require.NoError(t, err)
	defer pc.Close(context.Background())
	evs := readEvents(t, pc, 3)
	var sources []any
	for _, e := range evs {
		sources = append(sources, e.SystemProperties["iothub-message-source"])
	}
	require.Equal(t, []any{"deviceLifecycleEvents", "deviceConnectionStateEvents", "Telemetry"}, sources)
	tel := evs[2]
	require.Equal(t, `{"t":1}`, string(tel.Body))
	require.Equal(t, "routed", tel.SystemProperties["iothub-connection-device-id"])
	require.Equal(t, `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`, tel.SystemProperties["iothub-connection-auth-method"])
	require.IsType(t, "", tel.SystemProperties["iothub-connection-auth-generation-id"])
	require.IsType(t, time.Time{}, tel.SystemProperties["iothub-enqueuedtime"])
}

// TestResumeAfterRestart: a consumer that checkpointed gets exactly the
// events after its checkpoint from a restarted hub, by sequence number or
// by offset; nothing lost, nothing repeated.
func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := func() *localhub.Hub {
		hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dir})
		require.NoError(t, err)
		return hub
	}
	hub := start()
	connStr, err := hub.CreateDevice("resumer")
	require.NoError(t, err)
	dev, err := localhubtest.StartDevice(hub, connStr, localhubtest.Reply(200, `{}`))
	require.NoError(t, err)
	for i := range 10 {
		require.NoError(t, dev.SendTelemetry(strconv.Itoa(i)))
	}
	part := partitionOf(t, hub, "resumer")
	c := consumerClient(t, hub, "service", "functions", true)
	yes := true
	pc, err := c.NewPartitionClient(part, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &yes}})
	require.NoError(t, err)
	first := readEvents(t, pc, 6)
	checkpoint := first[5] // processed 0..5
	require.NoError(t, pc.Close(t.Context()))
	require.NoError(t, c.Close(t.Context()))
	dev.Close()
	require.NoError(t, hub.Close())

	hub = start()
	t.Cleanup(func() { require.NoError(t, hub.Close()) })
	dev = localhubtest.ConnectDevice(t, hub, connStr, localhubtest.Reply(200, `{}`))
	for i := 10; i < 13; i++ {
		require.NoError(t, dev.SendTelemetry(strconv.Itoa(i)))
	}
	want := []string{"6", "7", "8", "9", "10", "11", "12"}
	for _, pos := range []azeventhubs.StartPosition{
		{SequenceNumber: &checkpoint.SequenceNumber},
		{Offset: &checkpoint.Offset},
	} {
		c := consumerClient(t, hub, "service", "functions", true)
		pc, err := c.NewPartitionClient(part, &azeventhubs.PartitionClientOptions{StartPosition: pos})
		require.NoError(t, err)
		got := readEvents(t, pc, len(want))
		var bodies []string
		for i, e := range got {
			bodies = append(bodies, string(e.Body))
			require.Equal(t, checkpoint.SequenceNumber+1+int64(i), e.SequenceNumber, "sequence numbers go on across the restart")
		}
		require.Equal(t, want, bodies)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		more, err := pc.ReceiveEvents(ctx, 1, nil)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Empty(t, more, "nothing repeated, nothing extra")
		require.NoError(t, pc.Close(t.Context()))
	}
}

// TestPlainListenerStaysOnLoopback: the plain listener carries SAS keys
// in the clear, so only loopback addresses, unless allowed explicitly;
// "off" serves none.
func TestPlainListenerStaysOnLoopback(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:5672", "example.com:5672"} {
		_, err := localhub.Start(t.Context(), localhub.Options{AMQPPlainAddr: addr})
		require.ErrorContains(t, err, "not a loopback address", addr)
	}
	hub := localhubtest.New(t, &localhub.Options{AMQPPlainAddr: "off"})
	require.Empty(t, hub.AMQPPlainAddr())
	_, err := hub.EventHubConnectionString("service", true)
	require.ErrorContains(t, err, "plain AMQP listener is off")
	cs, err := hub.EventHubConnectionString("service", false)
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(hub.AMQPAddr())
	require.Contains(t, cs, "Endpoint=sb://localhost:"+port+"/;SharedAccessKeyName=service;SharedAccessKey=")
	require.Contains(t, cs, ";EntityPath=localhost")
}
