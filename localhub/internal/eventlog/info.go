package eventlog

import "time"

// PartitionInfo describes a partition as Event Hubs' management API does.
//
// Once retention has dropped every event, Empty is true and
// BeginningSequenceNumber is LastSequenceNumber+1, while the Last fields
// still describe the last event ever appended. A partition that never had
// an event has LastSequenceNumber -1, LastOffset "-1" and the Unix epoch as
// LastEnqueuedTime.
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
	p.mu.RLock()
	defer p.mu.RUnlock()
	return PartitionInfo{
		ID:                      p.id,
		BeginningSequenceNumber: p.begin,
		LastSequenceNumber:      p.next() - 1,
		LastOffset:              p.lastOffset,
		LastEnqueuedTime:        p.lastTime,
		Empty:                   len(p.recs) == 0,
	}, nil
}
