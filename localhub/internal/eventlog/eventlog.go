// Package eventlog is the local hub's built-in events endpoint: a
// partitioned, append-only, in-memory log of telemetry and routed
// notifications that many readers consume independently, as Event Hubs
// consumers do (part 2 serves it over AMQP).
//
// Each partition numbers its events from 0 (sequence numbers) and gives
// each one a decimal byte offset, so readers can start anywhere Event Hubs
// lets them: earliest, latest, an offset, a sequence number or an enqueued
// time. Readers never remove anything; only retention does.
package eventlog

import (
	"errors"
	"fmt"
	"time"
)

// Message sources (annotation iothub-message-source).
const (
	SourceTelemetry       = "Telemetry"
	SourceTwinChange      = "twinChangeEvents"
	SourceLifecycle       = "deviceLifecycleEvents"
	SourceConnectionState = "deviceConnectionStateEvents"
)

// Defaults for zero Options fields, as IoT Hub's built-in endpoint has them.
const (
	DefaultPartitions = 4
	DefaultRetention  = 24 * time.Hour
)

var (
	// ErrNoPartition is returned for a partition index out of range.
	ErrNoPartition = errors.New("eventlog: no such partition")
	// ErrClosed is returned by Read once the log is closed, including to
	// readers that were waiting.
	ErrClosed = errors.New("eventlog: log closed")
	// ErrInvalidPosition is returned by Seek for a Position with no field
	// set or an offset that is not a decimal number.
	ErrInvalidPosition = errors.New("eventlog: invalid position")
)

// Event is one message. Producers fill the first group; Append fills the rest.
//
// The log keeps the slices and maps of an appended event and hands the same
// ones to every reader: nobody may modify them after Append.
type Event struct {
	DeviceID string
	ModuleID string
	Body     []byte
	// AMQP properties section.
	MessageID       string
	CorrelationID   string
	ContentType     string
	ContentEncoding string
	UserID          []byte
	// AMQP application-properties (IoT Hub sends strings).
	Properties map[string]string
	// AMQP message-annotations beyond the ones the log adds
	// (iothub-connection-device-id, iothub-message-source, ...). Values are
	// string, int64, bool or time.Time.
	Annotations map[string]any

	// Set by Append.
	Partition      int
	SequenceNumber int64
	Offset         string // decimal byte offset within the partition
	EnqueuedTime   time.Time
}

// Options configure a Log. Zero (or negative) values mean the defaults.
type Options struct {
	Partitions int           // default 4
	Retention  time.Duration // default 24h
	Now        func() time.Time
}

// Log is safe for concurrent use.
type Log struct {
	parts     []*partition
	retention time.Duration
	now       func() time.Time
}

// New makes a log.
func New(opts Options) *Log {
	if opts.Partitions <= 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Log{
		parts:     make([]*partition, opts.Partitions),
		retention: opts.Retention,
		now:       opts.Now,
	}
	for i := range l.parts {
		l.parts[i] = newPartition(i)
	}
	return l
}

// PartitionCount returns the number of partitions.
func (l *Log) PartitionCount() int { return len(l.parts) }

// PartitionFor maps a device id to its partition: 32-bit FNV-1a of the id
// modulo the partition count. The hash is fixed, so a device keeps its
// partition across restarts as long as the partition count is unchanged.
func (l *Log) PartitionFor(deviceID string) int {
	// Hand-rolled rather than hash/fnv: this runs per telemetry message and
	// must not allocate.
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(deviceID); i++ {
		h ^= uint32(deviceID[i])
		h *= prime32
	}
	return int(h % uint32(len(l.parts)))
}

// Append stores e in PartitionFor(e.DeviceID), assigns sequence number
// (from 0 per partition), offset and enqueued time, wakes waiting readers
// and returns the stored event.
//
// The enqueued time is UTC at millisecond precision, the precision of AMQP
// timestamps and of enqueued-time filters: a reader that resumes "after" the
// time it was given must not see the same event again. Within a partition
// it never goes backwards, even if the clock does.
func (l *Log) Append(e Event) Event {
	now := l.now().UTC().Truncate(time.Millisecond)
	return l.parts[l.PartitionFor(e.DeviceID)].append(e, now, l.retention)
}

// Close wakes every waiting reader with ErrClosed; later Reads fail with
// ErrClosed too. Seek and Info keep working. Close is idempotent.
func (l *Log) Close() {
	for _, p := range l.parts {
		p.close()
	}
}

// partition returns partition i or ErrNoPartition, and first drops the
// events retention no longer keeps, so every read path sees the same window.
func (l *Log) partition(i int) (*partition, error) {
	if i < 0 || i >= len(l.parts) {
		return nil, fmt.Errorf("%w: %d (have %d)", ErrNoPartition, i, len(l.parts))
	}
	p := l.parts[i]
	p.expire(l.now().Add(-l.retention))
	return p, nil
}
