package eventhubs_test

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

func ptr[T any](v T) *T { return &v }

// TestProducerBatches sends with the real ProducerClient: a one-event
// batch, a batch larger than a frame (go-amqp splits it), a batch bound
// to a partition key and one to a partition; then reads them back.
func TestProducerBatches(t *testing.T) {
	e := start(t, nil)
	p := e.producer(t, "send")

	send := func(opts *azeventhubs.EventDataBatchOptions, events ...*azeventhubs.EventData) {
		t.Helper()
		b, err := p.NewEventDataBatch(ctx(t), opts)
		require.NoError(t, err, "needs max-message-size in the attach reply")
		for _, ev := range events {
			require.NoError(t, b.AddEventData(ev, nil))
		}
		require.NoError(t, p.SendEventDataBatch(ctx(t), b, nil))
	}

	// One event with every field a Go producer sets, to partition 1.
	send(&azeventhubs.EventDataBatchOptions{PartitionID: ptr("1")}, &azeventhubs.EventData{
		Body:          []byte(`{"t":21.5}`),
		ContentType:   ptr("application/json"),
		MessageID:     ptr("m-1"),
		CorrelationID: "c-1",
		Properties:    map[string]any{"level": "warn", "count": int64(3), "ok": true},
	})
	// 200 KB across frames, to partition 0.
	var big []*azeventhubs.EventData
	for i := range 200 {
		big = append(big, &azeventhubs.EventData{Body: bytes.Repeat([]byte{byte('a' + i%26)}, 1000)})
	}
	send(&azeventhubs.EventDataBatchOptions{PartitionID: ptr("0")}, big...)
	// A partition key: the partition the key hashes to.
	send(&azeventhubs.EventDataBatchOptions{PartitionKey: ptr("dev-7")}, &azeventhubs.EventData{Body: []byte("keyed")})

	c := e.consumer(t, "listen", azeventhubs.DefaultConsumerGroup)
	yes := true
	got := receive(t, partitionClient(t, c, "1", azeventhubs.StartPosition{Earliest: &yes}, nil), 1)[0]
	require.Equal(t, `{"t":21.5}`, string(got.Body))
	require.Equal(t, "application/json", *got.ContentType)
	require.Equal(t, "m-1", *got.MessageID)
	require.Equal(t, "c-1", got.CorrelationID)
	require.Equal(t, map[string]any{"level": "warn", "count": int64(3), "ok": true}, got.Properties, "typed properties keep their types")
	require.Nil(t, got.PartitionKey)

	evs := receive(t, partitionClient(t, c, "0", azeventhubs.StartPosition{Earliest: &yes}, nil), 200)
	for i, ev := range evs {
		require.Equal(t, int64(i), ev.SequenceNumber)
		require.Equal(t, big[i].Body, ev.Body, "event %d", i)
	}

	keyed := strconv.Itoa(e.events.PartitionFor("dev-7"))
	from := int64(1) // after the one event of partition 1
	if keyed == "0" {
		from = 200
	}
	ks := receive(t, partitionClient(t, c, keyed, azeventhubs.StartPosition{SequenceNumber: &from, Inclusive: true}, nil), 1)
	require.Equal(t, "keyed", string(ks[0].Body))
	require.Equal(t, "dev-7", *ks[0].PartitionKey, "x-opt-partition-key, a str")
}

// TestProducerPlainMessages sends one event as a plain (format 0)
// message, as the .NET client does for a single event, and a message the
// log cannot keep, which is rejected with why.
func TestProducerPlainMessages(t *testing.T) {
	e := start(t, nil)
	c := e.authorized(t, "send")
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	snd, err := s.NewSender(ctx(t), "/"+testName+"/Partitions/1", nil)
	require.NoError(t, err)
	require.Equal(t, uint64(1<<20), snd.MaxMessageSize())

	require.NoError(t, snd.Send(ctx(t), &goamqp.Message{
		Data:                  [][]byte{[]byte("plain")},
		ApplicationProperties: map[string]any{"k": "v"},
		Annotations:           goamqp.Annotations{"x-opt-partition-key": "pk", "custom": int32(7)},
	}, nil))
	evs, err := e.events.Read(ctx(t), 1, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, "plain", string(evs[0].Body))
	require.Equal(t, "pk", evs[0].PartitionKey)
	require.Equal(t, map[string]string{"k": "v"}, evs[0].Properties)
	require.Equal(t, map[string]any{"custom": int32(7)}, evs[0].Annotations)

	err = snd.Send(ctx(t), &goamqp.Message{Value: "an amqp-value body"}, nil)
	require.ErrorContains(t, err, "one data section")
	require.Equal(t, "amqp:not-implemented", condition(err))
	err = snd.Send(ctx(t), &goamqp.Message{Data: [][]byte{[]byte("x")}, ApplicationProperties: map[string]any{"list": []any{int32(1)}}}, nil)
	require.Equal(t, "amqp:not-implemented", condition(err), "%v", err)

	oversize := &goamqp.Message{Data: [][]byte{bytes.Repeat([]byte("x"), 1<<20)}}
	err = snd.Send(ctx(t), oversize, nil)
	require.Error(t, err, "more than 1 MiB")

	// The link still works, and nothing of the refused messages was stored.
	require.NoError(t, snd.Send(ctx(t), &goamqp.Message{Data: [][]byte{[]byte("after")}}, nil))
	evs, err = e.events.Read(ctx(t), 1, 1, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"after"}, eventBodies(evs))
}

func eventBodies(evs []eventlog.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Body)
	}
	return out
}

// TestProducerRoundRobin: events without key or partition spread over
// the partitions.
func TestProducerRoundRobin(t *testing.T) {
	e := start(t, nil)
	p := e.producer(t, "owner")
	for range 4 {
		b, err := p.NewEventDataBatch(ctx(t), nil)
		require.NoError(t, err)
		require.NoError(t, b.AddEventData(&azeventhubs.EventData{Body: []byte("x")}, nil))
		require.NoError(t, p.SendEventDataBatch(ctx(t), b, nil))
	}
	for i := range 2 {
		info, err := e.events.Info(i)
		require.NoError(t, err)
		require.Equal(t, int64(1), info.LastSequenceNumber, "partition %d has 2 events", i)
	}
}
