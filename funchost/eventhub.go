package funchost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/go-amqp"
)

// ownerLevel is the owner level (epoch) of every partition receiver: the
// Event Hubs processor the extension runs opens its consumers as
// exclusive, owner level 0 (EventProcessor.CreateConsumer in
// Azure.Messaging.EventHubs), so another reader with the same or a higher
// level takes the partition over, and a non-exclusive one cannot attach.
var ownerLevel = int64(0)

// closeTimeout bounds closing a partition's link or a client's
// connection when a listener stops.
const closeTimeout = 5 * time.Second

// ehListener is the Event Hubs listener of one function: one azeventhubs
// ConsumerClient (one AMQP connection) and one receiver per partition,
// each delivering its partition's events in order, one invocation at a
// time, and checkpointing after each invocation whether it succeeded or
// not, as the extension's EventHubListener does.
type ehListener struct {
	h      *Host
	fn     *function
	t      *eventHubTrigger
	cfg    eventHubsConfig
	client *azeventhubs.ConsumerClient
	logger *slog.Logger
}

// startConsumers starts fn's listener, which runs until ctx ends. The
// returned channel is closed once the listener knows the Event Hub's
// partitions and where each starts (its checkpoint, else host.json's
// initialOffsetOptions), so that Start can wait for it and an event sent
// after Start returns is delivered even fromEnd; or once its first attempt
// failed: the listener then keeps trying in the background and the host
// goes on, as the Functions host does when a listener fails to start.
func (h *Host) startConsumers(ctx context.Context, fn *function) <-chan struct{} {
	ready := make(chan struct{})
	t := fn.eventHub
	client, err := t.conn.consumerClient(t.eventHubName, t.consumerGroup, h.cfg.eventHubs.retry)
	if err != nil {
		// The host marks the function in error and runs the others.
		h.logger.Error("the Event Hubs listener cannot start", "function", fn.name, "err", err)
		close(ready)
		return ready
	}
	l := &ehListener{h: h, fn: fn, t: t, cfg: h.cfg.eventHubs, client: client,
		logger: h.logger.With("function", fn.name)}
	if t.conn.identityBased() {
		l.logger.Warn("identity-based connection: IoT Hub's built-in endpoint takes only SAS connection strings, and so does the local hub; use it for an Event Hub you route to", "fullyQualifiedNamespace", t.namespace())
	}
	if fn.eventHub.untypedMany {
		l.logger.Warn("cardinality many without dataType: the host's encoding is unverified; events are sent as strings")
	}
	h.consumers.Go(func() { l.run(ctx, ready) })
	return ready
}

// run opens the listener (with bounded backoff until it can), then reads
// every partition until ctx ends, and closes the client.
func (l *ehListener) run(ctx context.Context, ready chan<- struct{}) {
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := l.client.Close(closeCtx); err != nil {
			l.logger.Debug("closing the Event Hubs client", "err", err)
		}
	}()
	readyOnce := sync.OnceFunc(func() { close(ready) })
	defer readyOnce()

	starts, err := l.open(ctx, readyOnce)
	if err != nil {
		return // ctx ended
	}
	readyOnce()
	var wg sync.WaitGroup
	for pid, start := range starts {
		wg.Go(func() { l.consumePartition(ctx, pid, start) })
	}
	wg.Wait()
}

// open finds the partitions and their start positions, retrying with
// bounded backoff; after the first failed attempt it releases Start
// (first) and goes on in the background. It fails only when ctx ends.
func (l *ehListener) open(ctx context.Context, first func()) (map[string]azeventhubs.StartPosition, error) {
	b := newBackoff(l.cfg.retry)
	for {
		try, cancel := context.WithTimeout(ctx, l.cfg.retry.tryTimeout)
		starts, err := l.startPositions(try)
		cancel()
		if err == nil {
			l.logger.Info("event hub listener started", "eventHub", l.t.eventHubName, "consumerGroup", l.t.consumerGroup,
				"fullyQualifiedNamespace", l.t.namespace(), "partitions", len(starts), "initialOffset", l.cfg.initial.String(),
				"maxEventBatchSize", l.cfg.maxBatch, "checkpoints", l.h.checkpoints.where())
			return starts, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		delay := b.next()
		l.logger.Error("the Event Hubs listener was unable to start; retrying", "eventHub", l.t.eventHubName,
			"consumerGroup", l.t.consumerGroup, "err", err, "retryIn", delay)
		first()
		if !sleep(ctx, delay) {
			return nil, ctx.Err()
		}
	}
}

// startPositions reads the Event Hub's partitions and where each starts:
// after its checkpoint, else at host.json's initial offset. fromEnd is
// fixed here, at the last event each partition has now, rather than when
// each link attaches.
func (l *ehListener) startPositions(ctx context.Context) (map[string]azeventhubs.StartPosition, error) {
	props, err := l.client.GetEventHubProperties(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("read the Event Hub's properties: %w", err)
	}
	starts := make(map[string]azeventhubs.StartPosition, len(props.PartitionIDs))
	yes := true
	for _, pid := range props.PartitionIDs {
		cp, ok, err := l.h.checkpoints.get(l.key(pid))
		if errors.Is(err, errInvalidCheckpoint) {
			l.logger.Warn("checkpoint ignored: the partition starts at the initial offset", "partition", pid, "err", err)
		} else if err != nil {
			return nil, err
		}
		switch {
		case ok:
			seq := cp.SequenceNumber
			starts[pid] = azeventhubs.StartPosition{SequenceNumber: &seq}
		case l.cfg.initial.typ == fromStart:
			starts[pid] = azeventhubs.StartPosition{Earliest: &yes}
		case l.cfg.initial.typ == fromEnqueuedTime:
			at := l.cfg.initial.at
			starts[pid] = azeventhubs.StartPosition{EnqueuedTime: &at, Inclusive: true}
		default: // fromEnd
			p, err := l.client.GetPartitionProperties(ctx, pid, nil)
			if err != nil {
				return nil, fmt.Errorf("read partition %s's properties: %w", pid, err)
			}
			if p.IsEmpty {
				starts[pid] = azeventhubs.StartPosition{Earliest: &yes}
			} else {
				seq := p.LastEnqueuedSequenceNumber
				starts[pid] = azeventhubs.StartPosition{SequenceNumber: &seq}
			}
		}
	}
	return starts, nil
}

func (l *ehListener) key(pid string) checkpointKey {
	return checkpointKey{namespace: l.t.namespace(), eventHub: l.t.eventHubName, consumerGroup: l.t.consumerGroup, partition: pid}
}

// consumePartition reads one partition until ctx ends. When the receiver
// fails (the client's own retries exhausted, the link taken over) it is
// replaced after a bounded backoff, resuming after the last event
// delivered: a restarted hub or a dropped connection loses nothing.
func (l *ehListener) consumePartition(ctx context.Context, pid string, start azeventhubs.StartPosition) {
	p := &partitionState{
		listener: l,
		pid:      pid,
		pos:      start,
		pc: partitionContext{
			FullyQualifiedNamespace: l.t.namespace(),
			EventHubName:            l.t.eventHubName,
			ConsumerGroup:           l.t.consumerGroup,
			PartitionID:             pid,
		},
	}
	b := newBackoff(l.cfg.retry)
	for {
		pc, err := l.client.NewPartitionClient(pid, &azeventhubs.PartitionClientOptions{
			StartPosition: p.pos,
			OwnerLevel:    &ownerLevel,
			Prefetch:      prefetchOption(l.cfg.prefetch),
		})
		if err == nil {
			err = p.receive(ctx, pc, b)
			closeCtx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			pc.Close(closeCtx)
			cancel()
		}
		if ctx.Err() != nil {
			p.checkpointOnClose()
			return
		}
		delay := b.next()
		l.logReceiverFailure(pid, err, delay)
		if !sleep(ctx, delay) {
			p.checkpointOnClose()
			return
		}
	}
}

// logReceiverFailure says why a partition's receiver stopped: taken over
// by another reader, refused (a setting to fix, so an error), or lost.
func (l *ehListener) logReceiverFailure(pid string, err error, retryIn time.Duration) {
	var ehErr *azeventhubs.Error
	var amqpErr *amqp.Error
	switch {
	case errors.As(err, &ehErr) && ehErr.Code == azeventhubs.ErrorCodeOwnershipLost:
		l.logger.Warn("another reader took the partition over (owner level 0 or higher): is another host reading this consumer group? reading it again",
			"partition", pid, "consumerGroup", l.t.consumerGroup, "retryIn", retryIn)
	case errors.As(err, &ehErr) && ehErr.Code == azeventhubs.ErrorCodeUnauthorizedAccess,
		errors.As(err, &amqpErr) && (amqpErr.Condition == amqp.ErrCondNotFound || amqpErr.Condition == amqp.ErrCondUnauthorizedAccess):
		l.logger.Error("the Event Hub refuses the partition's receiver: check the connection setting, the event hub name and the consumer group; retrying",
			"partition", pid, "consumerGroup", l.t.consumerGroup, "err", err, "retryIn", retryIn)
	default:
		l.logger.Warn("the partition's receiver failed; reconnecting", "partition", pid, "err", err, "retryIn", retryIn)
	}
}

// prefetchOption is prefetchCount as azeventhubs takes it: 0 is its
// default (300), a negative value turns prefetching off.
func prefetchOption(n int) int32 {
	if n == 0 {
		return -1
	}
	return int32(n)
}

// partitionState is one partition's reading: where to resume, and the
// batches delivered since the last checkpoint.
type partitionState struct {
	listener *ehListener
	pid      string
	pc       partitionContext
	// pos is where a new receiver starts: after the last event delivered.
	pos azeventhubs.StartPosition
	// uncheckpointed is the last event delivered and not checkpointed yet
	// (batchCheckpointFrequency above 1), nil if none.
	uncheckpointed *azeventhubs.ReceivedEventData
	batches        int
}

// receive delivers batches from pc until it fails or ctx ends.
func (p *partitionState) receive(ctx context.Context, pc *azeventhubs.PartitionClient, b *backoff) error {
	l := p.listener
	batchSize := l.cfg.maxBatch
	if !l.t.many {
		batchSize = 1 // the extension reads one event per invocation for cardinality one
	}
	for {
		// Wait for the first event, then take what the link has already
		// prefetched, up to a batch: a lone event is delivered at once.
		evs, err := pc.ReceiveEvents(ctx, 1, nil)
		if err != nil {
			return err
		}
		if batchSize > 1 {
			evs = append(evs, prefetched(pc, batchSize-1)...)
		}
		if l.t.many && len(evs) < l.cfg.minBatch {
			evs = p.fill(ctx, pc, evs, batchSize)
		}
		b.reset()
		if !p.deliverBatch(ctx, evs) {
			return ctx.Err()
		}
	}
}

// prefetched returns up to n events the link already holds, without
// waiting for more.
func prefetched(pc *azeventhubs.PartitionClient, n int) []*azeventhubs.ReceivedEventData {
	now, cancel := context.WithCancel(context.Background())
	cancel() // ReceiveEvents then only takes what is prefetched
	evs, _ := pc.ReceiveEvents(now, n, nil)
	return evs
}

// fill waits up to maxWaitTime for minEventBatchSize events.
func (p *partitionState) fill(ctx context.Context, pc *azeventhubs.PartitionClient, evs []*azeventhubs.ReceivedEventData, batchSize int) []*azeventhubs.ReceivedEventData {
	l := p.listener
	wait, cancel := context.WithTimeout(ctx, l.cfg.maxWait)
	defer cancel()
	for len(evs) < l.cfg.minBatch {
		more, err := pc.ReceiveEvents(wait, l.cfg.minBatch-len(evs), nil)
		evs = append(evs, more...)
		if err != nil {
			break // the next receive reports a failed link
		}
	}
	if len(evs) < batchSize {
		evs = append(evs, prefetched(pc, batchSize-len(evs))...)
	}
	return evs
}

// deliverBatch invokes the function with evs (one invocation, or one per
// event for cardinality one) and checkpoints after it, as the extension
// does whether the invocation succeeded or failed. It reports false, and
// checkpoints nothing, when ctx ended first: the events are delivered
// again by the next start.
func (p *partitionState) deliverBatch(ctx context.Context, evs []*azeventhubs.ReceivedEventData) bool {
	l := p.listener
	if !l.h.deliver(ctx, l.fn, p.pc, evs) {
		return false
	}
	last := evs[len(evs)-1]
	seq := last.SequenceNumber
	p.pos = azeventhubs.StartPosition{SequenceNumber: &seq}
	p.uncheckpointed = last
	p.batches++
	if p.batches >= l.cfg.checkpointEvery {
		p.checkpoint()
	}
	return true
}

// checkpoint stores the last event delivered as the partition's
// checkpoint.
func (p *partitionState) checkpoint() {
	e := p.uncheckpointed
	if e == nil {
		return
	}
	l := p.listener
	cp := checkpoint{SequenceNumber: e.SequenceNumber, Offset: e.Offset, Updated: time.Now().UTC()}
	if err := l.h.checkpoints.set(l.key(p.pid), cp); err != nil {
		// The events are delivered again after a restart: nothing is lost.
		l.logger.Error("checkpoint not stored", "partition", p.pid, "sequenceNumber", e.SequenceNumber, "err", err)
		return
	}
	p.uncheckpointed, p.batches = nil, 0
}

// checkpointOnClose stores what batchCheckpointFrequency held back when
// the listener stops, as the extension does on a graceful shutdown.
func (p *partitionState) checkpointOnClose() {
	if p.uncheckpointed != nil {
		p.checkpoint()
	}
}

// deliver invokes fn with evs, re-invoking under the function's retry
// policy with Metadata.RetryContext. Once it gives up the events count as
// delivered, and are checkpointed: they are lost, as in Azure, and the log
// says which. It reports false when ctx ended first.
func (h *Host) deliver(ctx context.Context, fn *function, pc partitionContext, evs []*azeventhubs.ReceivedEventData) bool {
	var retry *retryContext
	for attempt := 1; ; attempt++ {
		id := newGUID()
		start := time.Now()
		body, err := h.eventHubEnvelope(fn, pc, evs, retry)
		if err == nil {
			_, err = h.invoker.invoke(ctx, fn, id, body)
		}
		attrs := []slog.Attr{
			slog.String("function", fn.name), slog.String("invocationId", id),
			slog.String("partition", pc.PartitionID), slog.Int("events", len(evs)),
			slog.Int64("firstSequenceNumber", evs[0].SequenceNumber), slog.Duration("duration", time.Since(start)),
		}
		if retry != nil {
			attrs = append(attrs, slog.Int("retryCount", retry.RetryCount))
		}
		if err == nil {
			h.logger.LogAttrs(ctx, slog.LevelInfo, "Executed 'Functions."+fn.name+"' (Succeeded)", attrs...)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		h.logger.LogAttrs(ctx, slog.LevelError, "Executed 'Functions."+fn.name+"' (Failed)", append(attrs, slog.String("err", err.Error()))...)
		if fn.retry == nil || !fn.retry.allowsRetry(attempt) {
			msg := "no retry policy: the batch is checkpointed anyway and its events are lost (the Event Hubs trigger does the same)"
			if fn.retry != nil {
				msg = "retries exhausted: the batch is checkpointed anyway and its events are lost (the Event Hubs trigger does the same)"
			}
			h.logger.LogAttrs(ctx, slog.LevelError, msg, slog.String("function", fn.name), slog.String("partition", pc.PartitionID),
				slog.Int64("firstSequenceNumber", evs[0].SequenceNumber), slog.Int64("lastSequenceNumber", evs[len(evs)-1].SequenceNumber))
			return true
		}
		delay := fn.retry.delayBefore(attempt)
		h.logger.Info("retrying the invocation", "function", fn.name, "partition", pc.PartitionID, "retry", attempt, "maxRetryCount", fn.retry.maxRetries, "delay", delay)
		if !sleep(ctx, delay) {
			return false
		}
		retry = &retryContext{RetryCount: attempt, MaxRetryCount: fn.retry.maxRetries, Exception: exceptionOf(err)}
	}
}

func (h *Host) eventHubEnvelope(fn *function, pc partitionContext, evs []*azeventhubs.ReceivedEventData, retry *retryContext) ([]byte, error) {
	sys := newSys(fn.name, time.Now())
	if fn.eventHub.many {
		return buildEventHubBatch(fn.eventHub, pc, evs, sys, retry)
	}
	return buildEventHubSingle(fn.eventHub, pc, evs[0], sys, retry)
}

// backoff is the listener's wait between attempts to (re)connect:
// clientRetryOptions' delay doubling up to its maximumDelay.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(r clientRetry) *backoff {
	min := max(r.delay, 10*time.Millisecond)
	return &backoff{min: min, max: max(r.maxDelay, min)}
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits d, reporting false if ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
