package amqp_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// ehApp is the least an Event Hubs endpoint must answer for the real
// azeventhubs client to work on this server: CBS accepting any token,
// $management READ with the exact types the client checks, one partition
// serving generated events, and a producer link. The real Event Hubs
// layer is built elsewhere on the same API; this checks the AMQP layer
// against the client's actual link patterns (a new session per CBS
// put-token ended without detaching, request/response pairs, credit 300,
// settle-mode echo, batch transfers).
type ehApp struct {
	created  time.Time
	body     []byte
	received chan *amqp.Delivery
}

func newEHApp() *ehApp {
	return &ehApp{
		created:  time.UnixMilli(1700000000000).UTC(),
		body:     bytes.Repeat([]byte("x"), 1024),
		received: make(chan *amqp.Delivery, 16),
	}
}

func (a *ehApp) attach(ctx context.Context, l *amqp.Link) (amqp.LinkOptions, error) {
	addr := l.Address()
	switch {
	case (addr == "$cbs" || addr == "$management") && l.Role() == frame.RoleReceiver:
		go func() { _ = amqp.ServeRequests(l.Context(), l, a.request) }()
	case addr == "$cbs" || addr == "$management":
		// reply links
	case strings.HasSuffix(addr, "/Partitions/0") && l.Role() == frame.RoleSender:
		go a.serve(l)
	case addr == "hub" && l.Role() == frame.RoleReceiver:
		go func() {
			for {
				d, err := l.Receive(l.Context())
				if err != nil {
					return
				}
				a.received <- d
				d.Accept()
			}
		}()
	default:
		return amqp.LinkOptions{}, amqp.Errorf(frame.CondNotFound, "The messaging entity '%s' could not be found.", addr)
	}
	return amqp.LinkOptions{}, nil
}

func (a *ehApp) request(ctx context.Context, req *codec.Message) *codec.Message {
	op, _ := req.ApplicationProperties.Get("operation")
	typ, _ := req.ApplicationProperties.Get("type")
	resp := &codec.Message{ApplicationProperties: codec.Map{
		{Key: "status-code", Value: int32(200)},
		{Key: "status-description", Value: "OK"},
	}}
	switch {
	case op == "put-token":
		resp.ApplicationProperties[0].Value = int32(202)
		resp.ApplicationProperties[1].Value = "Accepted"
	case op == "READ" && typ == "com.microsoft:eventhub":
		resp.Value, resp.HasValue = codec.Map{
			{Key: "name", Value: "hub"},
			{Key: "created_at", Value: a.created},
			{Key: "partition_ids", Value: []string{"0"}},
			{Key: "georeplication_factor", Value: int32(1)},
		}, true
	case op == "READ" && typ == "com.microsoft:partition":
		resp.Value, resp.HasValue = codec.Map{
			{Key: "name", Value: "hub"},
			{Key: "partition", Value: "0"},
			{Key: "begin_sequence_number", Value: int64(0)},
			{Key: "last_enqueued_sequence_number", Value: int64(-1)},
			{Key: "last_enqueued_offset", Value: "-1"},
			{Key: "last_enqueued_time_utc", Value: a.created},
			{Key: "is_partition_empty", Value: true},
		}, true
	default:
		resp.ApplicationProperties[0].Value = int32(400)
		resp.ApplicationProperties[1].Value = "unknown operation"
	}
	return resp
}

// serve sends events numbered from 0, each encoded as it goes out.
func (a *ehApp) serve(l *amqp.Link) {
	for seq := int64(0); ; seq++ {
		m := &codec.Message{
			Annotations: codec.Map{
				{Key: codec.Symbol("x-opt-sequence-number"), Value: seq},
				{Key: codec.Symbol("x-opt-offset"), Value: strconv.FormatInt(seq*1100, 10)},
				{Key: codec.Symbol("x-opt-enqueued-time"), Value: a.created},
				{Key: codec.Symbol("iothub-connection-device-id"), Value: "dev-1"},
				{Key: codec.Symbol("iothub-message-source"), Value: "Telemetry"},
			},
			Data: [][]byte{a.body},
		}
		if err := l.SendMessage(l.Context(), m); err != nil {
			return
		}
	}
}

func ehConnectionString(addr string) string {
	return fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=service;SharedAccessKey=c2VjcmV0;EntityPath=hub;UseDevelopmentEmulator=true", addr)
}

// TestAzEventHubsClient runs the real azeventhubs v2 consumer and producer
// against the server.
func TestAzEventHubsClient(t *testing.T) {
	app := newEHApp()
	_, addr := startServer(t, amqp.Options{Attach: app.attach})
	cs := ehConnectionString(addr)

	cc, err := azeventhubs.NewConsumerClientFromConnectionString(cs, "", azeventhubs.DefaultConsumerGroup, nil)
	require.NoError(t, err)
	defer cc.Close(context.Background())

	props, err := cc.GetEventHubProperties(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, "hub", props.Name)
	require.Equal(t, []string{"0"}, props.PartitionIDs)
	require.True(t, props.CreatedOn.Equal(app.created))

	pprops, err := cc.GetPartitionProperties(ctx(t), "0", nil)
	require.NoError(t, err)
	require.True(t, pprops.IsEmpty)
	require.Equal(t, int64(-1), pprops.LastEnqueuedSequenceNumber)

	pc, err := cc.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{
		StartPosition: azeventhubs.StartPosition{Earliest: &[]bool{true}[0]},
		OwnerLevel:    &[]int64{1}[0],
	})
	require.NoError(t, err)
	defer pc.Close(context.Background())
	want := int64(0)
	for want < 1000 { // past the first 300: credit must be re-granted
		events, err := pc.ReceiveEvents(ctx(t), 300, nil)
		require.NoError(t, err)
		for _, e := range events {
			require.Equal(t, want, e.SequenceNumber)
			require.Equal(t, strconv.FormatInt(want*1100, 10), e.Offset)
			require.Equal(t, "dev-1", e.SystemProperties["iothub-connection-device-id"])
			require.Equal(t, app.body, e.Body)
			want++
		}
	}

	pr, err := azeventhubs.NewProducerClientFromConnectionString(cs, "", nil)
	require.NoError(t, err)
	defer pr.Close(context.Background())
	batch, err := pr.NewEventDataBatch(ctx(t), nil)
	require.NoError(t, err, "needs max-message-size in the attach reply")
	for i := range 200 { // more than one 64 KiB frame
		require.NoError(t, batch.AddEventData(&azeventhubs.EventData{Body: bytes.Repeat([]byte{byte(i)}, 1000)}, nil))
	}
	require.NoError(t, pr.SendEventDataBatch(ctx(t), batch, nil))
	d := <-app.received
	require.Equal(t, uint32(0x80013700), d.Format)
	m, err := d.Message()
	require.NoError(t, err)
	require.Len(t, m.Data, 200, "one data section per event")
}

// BenchmarkAzEventHubsConsumer: 1 KB events to one azeventhubs partition
// client (credit 300), pre-settled, over loopback, each event encoded as
// it is sent. The Event Hubs stack's target is 50,000 events/s here.
func BenchmarkAzEventHubsConsumer(b *testing.B) {
	app := newEHApp()
	_, addr := startServer(b, amqp.Options{Attach: app.attach})
	cc, err := azeventhubs.NewConsumerClientFromConnectionString(ehConnectionString(addr), "", azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close(context.Background())
	pc, err := cc.NewPartitionClient("0", &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &[]bool{true}[0]}})
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(context.Background())
	events := 0
	b.ReportAllocs()
	for b.Loop() {
		got, err := pc.ReceiveEvents(context.Background(), 100, nil)
		if err != nil {
			b.Fatal(err)
		}
		events += len(got)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
