package eventhubs

import (
	"errors"
	"fmt"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// BatchFormat is the message-format of an Event Hubs batch: the transfer
// is an envelope whose data sections are each a whole encoded message
// (Microsoft.Azure.Amqp AmqpConstants.AmqpBatchedMessageFormat; Go's
// EventDataBatch uses it for every batch, .NET for two events or more).
const BatchFormat = 0x80013700

// MaxMessageSize is the largest event or batch a producer may send, the
// Event Hubs emulator's limit. It goes in the attach reply: without it Go's
// EventDataBatch has room for nothing and .NET reads -1.
const MaxMessageSize = 1 << 20

// attachProducer accepts a sender to the hub (we choose the partition) or
// to one partition, authorised for Send.
func (s *Server) attachProducer(l *amqp.Link, a address) (amqp.LinkOptions, error) {
	if err := s.authorize(l, a.path, Send); err != nil {
		return amqp.LinkOptions{}, err
	}
	partition := -1
	if a.node == nodePartition {
		partition = a.partition
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.produce(l, partition)
	}()
	return amqp.LinkOptions{MaxMessageSize: MaxMessageSize}, nil
}

// produce stores what a producer sends, one delivery at a time: a batch
// is appended atomically to one partition, then accepted. A message the
// log cannot keep as sent is rejected with why, and the link goes on.
func (s *Server) produce(l *amqp.Link, partition int) {
	ctx := l.Context()
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return
		}
		events, key, err := unpack(d)
		if err != nil {
			cond := codec.Symbol("amqp:decode-error")
			if errors.Is(err, errUnstorable) {
				cond = "amqp:not-implemented"
			}
			d.Reject(amqp.Errorf(cond, "%v", err))
			continue
		}
		p := partition
		if p < 0 {
			p = s.pickPartition(key)
		}
		if _, err := s.events.AppendTo(p, events...); err != nil {
			s.logger.Error("eventhubs: storing a producer's events failed", "partition", p, "err", err)
			d.Reject(amqp.Errorf("amqp:internal-error", "storing the events failed"))
			continue
		}
		d.Accept()
	}
}

// unpack decodes a delivery into the events it carries, and the
// partition key that routes them.
func unpack(d *amqp.Delivery) ([]eventlog.Event, string, error) {
	m, err := d.Message()
	if err != nil {
		return nil, "", err
	}
	if d.Format != BatchFormat {
		e, err := fromProducer(m)
		if err != nil {
			return nil, "", err
		}
		return []eventlog.Event{e}, e.PartitionKey, nil
	}
	// The envelope carries the batch's partition key (Go copies the first
	// event's properties onto it too; only its data sections are events).
	var key string
	if v, ok := m.Annotations.Get(codec.Symbol(annPartitionKey)); ok {
		key, _ = v.(string)
	}
	if len(m.Data) == 0 {
		return nil, "", fmt.Errorf("%w: a batch with no events", errUnstorable)
	}
	events := make([]eventlog.Event, 0, len(m.Data))
	for i, raw := range m.Data {
		var inner codec.Message
		if err := inner.UnmarshalBinary(raw); err != nil {
			return nil, "", fmt.Errorf("batch event %d: %w", i, err)
		}
		e, err := fromProducer(&inner)
		if err != nil {
			return nil, "", fmt.Errorf("batch event %d: %w", i, err)
		}
		if e.PartitionKey == "" {
			e.PartitionKey = key
		}
		events = append(events, e)
	}
	return events, key, nil
}

// pickPartition routes a producer's events: a partition key always to the
// same partition (the hash devices' ids use, so a key equal to a device id
// lands where that device's events do), no key round-robin. Event Hubs'
// own hash is not documented; only stability is promised.
func (s *Server) pickPartition(key string) int {
	if key != "" {
		return s.events.PartitionFor(key)
	}
	return int(s.roundRobin.Add(1) % uint64(s.events.PartitionCount()))
}
