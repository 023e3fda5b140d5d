package funchost

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// EventSource is the Event Hubs endpoint the local host reads in process
// for every eventHubTrigger: the local hub's built-in endpoint
// (*localhub.EventLog satisfies it). Read blocks until events exist.
type EventSource interface {
	PartitionCount() int
	Seek(partition int, p localhub.Position) (int64, error)
	Read(ctx context.Context, partition int, from int64, max int) ([]localhub.Event, error)
}

// startConsumers starts one consumer per partition for an Event Hubs
// function, each at host.json's initial offset (checkpoints live in
// memory, so every start is a start without a checkpoint), running until
// ctx ends.
func (h *Host) startConsumers(ctx context.Context, fn *function) error {
	t := fn.eventHub
	n := h.events.PartitionCount()
	starts := make([]int64, n)
	for p := range n {
		seq, err := h.events.Seek(p, h.cfg.eventHubs.initial)
		if err != nil {
			return fmt.Errorf("function %s: partition %d: %w", fn.name, p, err)
		}
		starts[p] = seq
	}
	for p := range n {
		pc := partitionContext{
			FullyQualifiedNamespace: t.namespace,
			EventHubName:            t.eventHubName,
			ConsumerGroup:           t.consumerGroup,
			PartitionID:             strconv.Itoa(p),
		}
		h.consumers.Go(func() { h.consume(ctx, fn, pc, p, starts[p]) })
	}
	h.logger.Info("event hub listener started", "function", fn.name, "eventHub", t.eventHubName,
		"consumerGroup", t.consumerGroup, "partitions", n, "initialOffset", h.cfg.eventHubs.initialName,
		"maxEventBatchSize", h.cfg.eventHubs.maxBatch)
	return nil
}

// consume delivers one partition's events in order, one invocation at a
// time, and moves its checkpoint past every batch whether the function
// succeeded or not, as the Event Hubs trigger does.
func (h *Host) consume(ctx context.Context, fn *function, pc partitionContext, partition int, next int64) {
	eh := h.cfg.eventHubs
	for {
		evs, err := h.events.Read(ctx, partition, next, eh.maxBatch)
		if err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("event source stopped; listener ends", "function", fn.name, "partition", partition, "err", err)
			}
			return
		}
		if len(evs) < eh.minBatch {
			evs = h.fill(ctx, partition, evs, eh)
		}
		if fn.eventHub.many {
			h.deliver(ctx, fn, pc, evs)
		} else {
			for _, e := range evs {
				if ctx.Err() != nil {
					return
				}
				h.deliver(ctx, fn, pc, []localhub.Event{e})
			}
		}
		if ctx.Err() != nil {
			return
		}
		next = evs[len(evs)-1].SequenceNumber + 1 // the checkpoint
	}
}

// fill waits up to maxWaitTime for minEventBatchSize events.
func (h *Host) fill(ctx context.Context, partition int, evs []localhub.Event, eh eventHubsConfig) []localhub.Event {
	wait, cancel := context.WithTimeout(ctx, eh.maxWait)
	defer cancel()
	for len(evs) < eh.minBatch {
		more, err := h.events.Read(wait, partition, evs[len(evs)-1].SequenceNumber+1, eh.maxBatch-len(evs))
		if err != nil {
			break
		}
		evs = append(evs, more...)
	}
	return evs
}

// deliver invokes fn with evs, re-invoking under the function's retry
// policy with Metadata.RetryContext. Once it gives up the events are
// checkpointed anyway: they are lost, as in Azure.
func (h *Host) deliver(ctx context.Context, fn *function, pc partitionContext, evs []localhub.Event) {
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
			return
		}
		if ctx.Err() != nil {
			return
		}
		h.logger.LogAttrs(ctx, slog.LevelError, "Executed 'Functions."+fn.name+"' (Failed)", append(attrs, slog.String("err", err.Error()))...)
		if fn.retry == nil || !fn.retry.allowsRetry(attempt) {
			msg := "no retry policy: the batch is checkpointed anyway and its events are lost (the Event Hubs trigger does the same)"
			if fn.retry != nil {
				msg = "retries exhausted: the batch is checkpointed anyway and its events are lost (the Event Hubs trigger does the same)"
			}
			h.logger.LogAttrs(ctx, slog.LevelError, msg, slog.String("function", fn.name), slog.String("partition", pc.PartitionID),
				slog.Int64("firstSequenceNumber", evs[0].SequenceNumber), slog.Int64("lastSequenceNumber", evs[len(evs)-1].SequenceNumber))
			return
		}
		delay := fn.retry.delayBefore(attempt)
		h.logger.Info("retrying the invocation", "function", fn.name, "partition", pc.PartitionID, "retry", attempt, "maxRetryCount", fn.retry.maxRetries, "delay", delay)
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		retry = &retryContext{RetryCount: attempt, MaxRetryCount: fn.retry.maxRetries, Exception: exceptionOf(err)}
	}
}

func (h *Host) eventHubEnvelope(fn *function, pc partitionContext, evs []localhub.Event, retry *retryContext) ([]byte, error) {
	sys := newSys(fn.name, time.Now())
	if fn.eventHub.many {
		return buildEventHubBatch(fn.eventHub, pc, evs, sys, retry)
	}
	return buildEventHubSingle(fn.eventHub, pc, evs[0], sys, retry)
}
