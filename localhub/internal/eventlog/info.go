package eventlog

import (
	"strconv"
	"time"
)

// PartitionInfo describes a partition as Event Hubs' management API does.
//
// Once retention has dropped every event, Empty is true and
// BeginningSequenceNumber is LastSequenceNumber+1, while the Last fields
// still describe the last event ever appended. A partition that never had
// an event has LastSequenceNumber -1, LastOffset "-1" and the Unix epoch as
// LastEnqueuedTime. All of it survives restarts.
type PartitionInfo struct {
	ID                      int
	BeginningSequenceNumber int64
	LastSequenceNumber      int64 // -1 when no event was ever appended
	LastOffset              string
	LastEnqueuedTime        time.Time
	Empty                   bool
}

// Info returns a partition's state.
func (l *Log) Info(partition int) (PartitionInfo, error) {
	p, err := l.partition(partition)
	if err != nil {
		return PartitionInfo{}, err
	}
	p.expire()
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return PartitionInfo{}, ErrClosed
	}
	return PartitionInfo{
		ID:                      p.id,
		BeginningSequenceNumber: p.begin,
		LastSequenceNumber:      p.committed - 1,
		LastOffset:              strconv.FormatInt(p.lastOff, 10),
		LastEnqueuedTime:        time.UnixMilli(p.lastMs).UTC(),
		Empty:                   p.begin == p.committed,
	}, nil
}
