package eventhubs

import (
	"errors"
	"fmt"
	"sync"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// Link properties of Event Hubs receivers.
const (
	propEpoch        codec.Symbol = "com.microsoft:epoch"
	propReceiverName codec.Symbol = "com.microsoft:receiver-name"
)

// maxNonEpochReceivers is Event Hubs' limit of receivers without an epoch
// per partition and consumer group ("Exceeded the maximum number of
// allowed receivers per partition in a consumer group which is 5").
const maxNonEpochReceivers = 5

// Reads from the log are sized to about readBytes of events, at most
// maxRead events: a consumer holds one read's worth of events plus what
// its link buffers, however far behind it is.
const (
	readBytes = 64 << 10
	maxRead   = 300
)

// consumer is one receiver on a partition of a consumer group.
type consumer struct {
	link  *amqp.Link
	name  string // com.microsoft:receiver-name, or the link name
	epoch *int64
}

type partKey struct {
	group     string
	partition int
}

// receivers tracks the consumers of each partition of each group, to
// apply Event Hubs' epoch (owner level) rules.
type receivers struct {
	mu sync.Mutex
	m  map[partKey][]*consumer
}

// add admits c on k, or refuses it, as Event Hubs does (the descriptions
// are the service's, as clients log them):
//   - an epoch receiver displaces every receiver with a lower or equal
//     epoch and every receiver without one (amqp:link:stolen; the .NET
//     processor, and so the Functions host, always attaches with epoch 0);
//   - an epoch receiver is refused while one with a higher epoch exists;
//   - a receiver without epoch is refused while an epoch receiver exists,
//     and when 5 receivers without epoch already read the partition.
func (r *receivers) add(k partKey, c *consumer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.m[k]
	if c.epoch == nil {
		for _, o := range cur {
			if o.epoch != nil {
				return amqp.Errorf("amqp:link:stolen", "At least one receiver for the endpoint is created with epoch of '%d', and so non-epoch receiver is not allowed. Either reconnect with a higher epoch, or make sure all epoch receivers are closed or disconnected.", *o.epoch)
			}
		}
		if len(cur) >= maxNonEpochReceivers {
			return amqp.Errorf("amqp:resource-limit-exceeded", "Exceeded the maximum number of allowed receivers per partition in a consumer group which is %d.", maxNonEpochReceivers)
		}
		r.m[k] = append(cur, c)
		return nil
	}
	for _, o := range cur {
		if o.epoch != nil && *o.epoch > *c.epoch {
			return amqp.Errorf("amqp:link:stolen", "Receiver '%s' with a higher epoch '%d' already exists. Receiver '%s' with epoch %d cannot be created. Make sure you are creating receiver with increasing epoch value to ensure connectivity, or ensure all old epoch receivers are closed or disconnected.", o.name, *o.epoch, c.name, *c.epoch)
		}
	}
	for _, o := range cur {
		old := "without epoch"
		if o.epoch != nil {
			old = fmt.Sprintf("with epoch '%d'", *o.epoch)
		}
		o.link.Detach(amqp.Errorf("amqp:link:stolen", "New receiver '%s' with higher epoch of '%d' is created hence current receiver '%s' %s is getting disconnected. If you are recreating the receiver, make sure a higher epoch is used.", c.name, *c.epoch, o.name, old))
	}
	r.m[k] = []*consumer{c}
	return nil
}

func (r *receivers) remove(k partKey, c *consumer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.m[k]
	for i, o := range cur {
		if o == c {
			cur = append(cur[:i], cur[i+1:]...)
			break
		}
	}
	if len(cur) == 0 {
		delete(r.m, k)
	} else {
		r.m[k] = cur
	}
}

// attachConsumer accepts a receiver on a partition: authorised for
// Listen, its start position resolved now (so @latest means the end of
// the partition when the link attaches), admitted by the epoch rules.
// Events then go out pre-settled, as Event Hubs sends them (azeventhubs
// never settles, and go-amqp renews credit only for settled deliveries).
func (s *Server) attachConsumer(l *amqp.Link, a address) (amqp.LinkOptions, error) {
	if err := s.authorize(l, a.path, Listen); err != nil {
		return amqp.LinkOptions{}, err
	}
	var filter codec.Map
	if src := l.Source(); src != nil {
		filter = src.Filter
	}
	pos, err := startPosition(filter)
	if err != nil {
		return amqp.LinkOptions{}, amqp.Errorf("com.microsoft:argument-error", "%v", err)
	}
	next, err := s.events.Seek(a.partition, pos)
	if err != nil {
		if errors.Is(err, eventlog.ErrInvalidPosition) {
			return amqp.LinkOptions{}, amqp.Errorf("com.microsoft:argument-error", "%v", err)
		}
		return amqp.LinkOptions{}, amqp.Errorf("amqp:internal-error", "partition %d: %v", a.partition, err)
	}
	c := &consumer{link: l, name: l.Name()}
	if v, ok := l.Properties().Get(propReceiverName); ok {
		if name, ok := v.(string); ok && name != "" {
			c.name = truncate(name)
		}
	}
	if v, ok := l.Properties().Get(propEpoch); ok && v != nil {
		epoch, ok := toInt64(v)
		if !ok {
			return amqp.LinkOptions{}, amqp.Errorf("com.microsoft:argument-error", "%s is %T, not an integer", propEpoch, v)
		}
		c.epoch = &epoch
	}
	k := partKey{a.group, a.partition}
	if err := s.receivers.add(k, c); err != nil {
		return amqp.LinkOptions{}, err
	}
	s.logger.Debug("eventhubs: consumer attached", "entity", a.path, "receiver", c.name, "from", next)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.receivers.remove(k, c)
		s.pump(l, a.partition, next)
	}()
	return amqp.LinkOptions{SendBuffer: consumerSendBuffer}, nil
}

// consumerSendBuffer bounds the encoded events a consumer's link holds
// for credit: half the AMQP layer's default, still 90 events of 1 KB
// ahead of a client that renews 150 credits at a time.
const consumerSendBuffer = 128 << 10

func toInt64(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint8:
		return int64(v), true
	case uint64:
		if v <= 1<<63-1 {
			return int64(v), true
		}
	}
	return 0, false
}

// pump sends the partition's events from sequence number next until the
// link ends. Read waits for new events without polling; Send waits while
// the link's buffer is full, so a consumer that grants no credit holds at
// most one read's events and its link's buffer, never more.
func (s *Server) pump(l *amqp.Link, partition int, next int64) {
	ctx := l.Context()
	var enc encoder
	limit := 64
	for {
		evs, err := s.events.Read(ctx, partition, next, limit)
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, eventlog.ErrClosed):
				l.Detach(amqp.Errorf("amqp:link:detach-forced", "the local hub is shutting down"))
			default:
				s.logger.Error("eventhubs: reading the events log failed; detaching the consumer", "partition", partition, "err", err)
				l.Detach(amqp.Errorf("amqp:internal-error", "reading partition %d failed", partition))
			}
			return
		}
		bytes := 0
		for i := range evs {
			e := &evs[i]
			bytes += len(e.Body) + 256
			p, err := enc.encode(e)
			if err != nil {
				// Cannot happen for what the log accepts; skip rather than
				// stall the partition for every later event.
				s.logger.Error("eventhubs: event not encodable; skipped", "partition", partition, "sequenceNumber", e.SequenceNumber, "err", err)
				continue
			}
			if err := l.Send(ctx, p); err != nil {
				return
			}
		}
		next = evs[len(evs)-1].SequenceNumber + 1
		limit = min(maxRead, max(1, readBytes*len(evs)/bytes))
	}
}
