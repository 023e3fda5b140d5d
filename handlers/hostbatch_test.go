package handlers_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// hostEvent is one event of an Event Hubs batch with the metadata the
// Functions host sends for it.
type hostEvent struct {
	Body []byte
	// SystemProperties: AMQP properties and message annotations, plus the
	// extension's own entries (added by hostBatch).
	SystemProperties map[string]any
	Properties       map[string]string
	EnqueuedTime     time.Time
	SequenceNumber   int64
	Offset           string
}

// hostBatch renders events as the host's invocation body for an Event Hubs
// trigger with cardinality "many" and dataType "string"
// (functions-custom-handler.md §3.1-3.2): Data.events is a string holding a
// JSON array of the bodies as strings; every *Array metadata field is a
// string holding a JSON array; PartitionContext and sys are objects; times
// in the arrays are UTC without a zone designator.
func hostBatch(t testing.TB, partition int, events []hostEvent) []byte {
	t.Helper()
	return renderHostBatch(t, partition, events, false)
}

// hostBatchBinary is hostBatch for dataType "binary": the host sends each
// body as base64 of its bytes (byte[][] serialized by Newtonsoft).
func hostBatchBinary(t testing.TB, partition int, events []hostEvent) []byte {
	t.Helper()
	return renderHostBatch(t, partition, events, true)
}

func renderHostBatch(t testing.TB, partition int, events []hostEvent, binary bool) []byte {
	t.Helper()
	n := len(events)
	bodies := make([]string, n)
	sys := make([]map[string]any, n)
	props := make([]map[string]string, n)
	times := make([]string, n)
	seqs := make([]int64, n)
	offsets := make([]string, n)
	keys := make([]*string, n)
	for i, e := range events {
		bodies[i] = string(e.Body)
		if binary {
			bodies[i] = base64.StdEncoding.EncodeToString(e.Body)
		}
		enqueued := e.EnqueuedTime.UTC()
		times[i] = enqueued.Format("2006-01-02T15:04:05.9999999")
		seqs[i] = e.SequenceNumber
		offsets[i] = e.Offset
		s := maps.Clone(e.SystemProperties)
		if s == nil {
			s = map[string]any{}
		}
		off, _ := strconv.ParseInt(e.Offset, 10, 64)
		s["x-opt-sequence-number"] = e.SequenceNumber
		s["x-opt-offset"] = e.Offset
		s["x-opt-enqueued-time"] = enqueued.Format("2006-01-02T15:04:05.999Z")
		s["SequenceNumber"] = e.SequenceNumber
		s["Offset"] = off
		s["OffsetString"] = e.Offset
		s["PartitionKey"] = nil
		s["EnqueuedTimeUtc"] = times[i]
		sys[i] = s
		props[i] = e.Properties
		if props[i] == nil {
			props[i] = map[string]string{}
		}
	}
	str := func(v any) string {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return string(b)
	}
	pc := map[string]any{"FullyQualifiedNamespace": "localhost", "EventHubName": "localhost", "ConsumerGroup": "localdev", "PartitionId": strconv.Itoa(partition)}
	body, err := json.Marshal(map[string]any{
		"Data": map[string]any{"events": str(bodies)},
		"Metadata": map[string]any{
			"PartitionKeyArray":       str(keys),
			"OffsetArray":             str(offsets),
			"OffsetStringArray":       str(offsets),
			"SequenceNumberArray":     str(seqs),
			"EnqueuedTimeUtcArray":    str(times),
			"PropertiesArray":         str(props),
			"SystemPropertiesArray":   str(sys),
			"TriggerPartitionContext": pc,
			"PartitionContext":        pc,
			"sys":                     map[string]any{"MethodName": "TwinChangeProcessor", "UtcNow": time.Now().UTC().Format(time.RFC3339Nano), "RandGuid": "00000000-0000-4000-8000-000000000000"},
		},
	})
	require.NoError(t, err)
	return body
}

// hubBatches reads every event the local hub recorded on its built-in
// endpoint and renders each partition's events as one host batch, the way
// the Event Hubs trigger would deliver them.
func hubBatches(t testing.TB, hub *localhub.Hub) [][]byte {
	t.Helper()
	return newHubFeed(hub).batches(t)
}

// hubFeed reads the hub's built-in endpoint as the Event Hubs trigger
// does: each call to batches returns the events recorded since the last,
// one host batch per partition that has any.
type hubFeed struct {
	hub  *localhub.Hub
	next map[int]int64 // per partition, the next sequence number to read
}

func newHubFeed(hub *localhub.Hub) *hubFeed { return &hubFeed{hub: hub, next: map[int]int64{}} }

// batches renders new events as host batches. The hub's AMQP properties
// and annotations become SystemProperties entries under their AMQP names,
// as the Event Hubs extension exposes them.
func (f *hubFeed) batches(t testing.TB) [][]byte {
	t.Helper()
	log := f.hub.Events()
	var batches [][]byte
	for p := range log.PartitionCount() {
		info, err := log.Info(p)
		require.NoError(t, err)
		if info.Empty || info.LastSequenceNumber < 0 {
			continue
		}
		from, ok := f.next[p]
		if !ok {
			from = info.BeginningSequenceNumber
		}
		if from > info.LastSequenceNumber {
			continue
		}
		evs, err := log.Read(t.Context(), p, from, 100_000)
		require.NoError(t, err)
		if len(evs) == 0 {
			continue
		}
		f.next[p] = evs[len(evs)-1].SequenceNumber + 1
		events := make([]hostEvent, len(evs))
		for i, e := range evs {
			sys := map[string]any{}
			if e.MessageID != "" {
				sys["message-id"] = e.MessageID
			}
			if e.CorrelationID != "" {
				sys["correlation-id"] = e.CorrelationID
			}
			if e.ContentType != "" {
				sys["content-type"] = e.ContentType
			}
			if e.ContentEncoding != "" {
				sys["content-encoding"] = e.ContentEncoding
			}
			if e.UserID != nil {
				sys["user-id"] = base64.StdEncoding.EncodeToString(e.UserID)
			}
			for k, v := range e.Annotations {
				if tm, ok := v.(time.Time); ok {
					v = tm.UTC().Format("2006-01-02T15:04:05.999Z")
				}
				sys[k] = v
			}
			sys["iothub-connection-device-id"] = e.DeviceID
			sys["iothub-enqueuedtime"] = e.EnqueuedTime.UTC().Format("2006-01-02T15:04:05.999Z")
			events[i] = hostEvent{
				Body:             e.Body,
				SystemProperties: sys,
				Properties:       e.Properties,
				EnqueuedTime:     e.EnqueuedTime,
				SequenceNumber:   e.SequenceNumber,
				Offset:           e.Offset,
			}
		}
		batches = append(batches, hostBatch(t, p, events))
	}
	return batches
}

// twinChangeEvent is a reported-properties updateTwin notification as IoT
// Hub routes it, for device id, with reboot as iothubDM.reboot.
func twinChangeEvent(id string, seq int64, reboot map[string]any) hostEvent {
	body, _ := json.Marshal(map[string]any{
		"version": 4,
		"properties": map[string]any{"reported": map[string]any{
			"iothubDM":  map[string]any{"reboot": reboot},
			"$metadata": map[string]any{"$lastUpdated": "2025-01-31T08:00:05.1234567Z", "iothubDM": map[string]any{"$lastUpdated": "2025-01-31T08:00:05.1234567Z", "reboot": map[string]any{"$lastUpdated": "2025-01-31T08:00:05.1234567Z", "lastReboot": map[string]any{"$lastUpdated": "2025-01-31T08:00:05.1234567Z"}}}},
			"$version":  seq + 1,
		}},
	})
	return hostEvent{
		Body: body,
		SystemProperties: map[string]any{
			"content-type": "application/json", "content-encoding": "utf-8",
			"correlation-id": fmt.Sprintf("%032x", seq), "user-id": "bXlodWI=",
			"iothub-connection-device-id": id, "iothub-message-source": "twinChangeEvents",
			"iothub-enqueuedtime": "2025-01-31T08:00:05.123Z",
		},
		Properties: map[string]string{
			"hubName": "myhub", "deviceId": id, "operationTimestamp": "2025-01-31T08:00:05.1234567Z",
			"iothub-message-schema": "twinChangeNotification", "opType": "updateTwin",
		},
		EnqueuedTime:   time.Date(2025, 1, 31, 8, 0, 5, 123_000_000, time.UTC),
		SequenceNumber: seq,
		Offset:         strconv.FormatInt(seq*512, 10),
	}
}
