// Package eventlog is the local hub's built-in events endpoint: a
// partitioned, append-only, durable log of telemetry and routed
// notifications that many readers consume independently, as Event Hubs
// consumers do (the Event Hubs layer serves it over AMQP).
//
// Each partition numbers its events from 0 (sequence numbers) and gives
// each one a decimal byte offset, so readers can start anywhere Event Hubs
// lets them: earliest, latest, an offset, a sequence number or an enqueued
// time. Readers never remove anything; only retention does.
//
// Events are on disk (written and fsynced) before Append returns and before
// any reader sees them; appends that arrive while a write is in flight share
// the next fsync (group commit). Sequence numbers and offsets survive
// restarts. The on-disk format is described in docs/architecture.md and in
// codec.go and segment.go.
package eventlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Message sources (annotation iothub-message-source).
const (
	SourceTelemetry       = "Telemetry"
	SourceTwinChange      = "twinChangeEvents"
	SourceLifecycle       = "deviceLifecycleEvents"
	SourceConnectionState = "deviceConnectionStateEvents"
)

// Defaults for zero Options fields.
const (
	DefaultPartitions   = 4              // as IoT Hub's built-in endpoint
	DefaultRetention    = 24 * time.Hour // as IoT Hub's built-in endpoint
	DefaultSegmentBytes = 64 << 20
	DefaultCacheBytes   = 4 << 20
)

var (
	// ErrNoPartition is returned for a partition index out of range.
	ErrNoPartition = errors.New("eventlog: no such partition")
	// ErrClosed is returned once the log is closed, including to readers
	// that were waiting.
	ErrClosed = errors.New("eventlog: log closed")
	// ErrInvalidPosition is returned by Seek for a Position with no field
	// set or an offset that is not a decimal number.
	ErrInvalidPosition = errors.New("eventlog: invalid position")
)

// Event is one message. Producers fill the first group; Append fills the rest.
//
// The log keeps the slices and maps of an appended event and hands the same
// ones to readers at the head of the log: nobody may modify them after
// Append, nor those of an event Read returns.
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
	// AMQP application-properties. String values, the only kind IoT Hub
	// produces, go in Properties; values of any other type (Event Hubs
	// producers may send them) in TypedProperties. A key may be in only
	// one of the two.
	Properties      map[string]string
	TypedProperties map[string]any
	// AMQP message-annotations beyond the x-opt-* ones an Event Hubs layer
	// derives from the fields below (iothub-connection-device-id,
	// iothub-message-source, ...).
	//
	// TypedProperties and Annotations hold nil, bool, int8, int16, int32,
	// int64, uint8, uint16, uint32, uint64, float32, float64, string,
	// Symbol, []byte, time.Time, UUID or Char values; Append stores an int
	// as int64, a uint as uint64 and a time.Time in UTC, and refuses other
	// types with ErrInvalidEvent.
	Annotations map[string]any
	// PartitionKey is the x-opt-partition-key an Event Hubs producer sent.
	PartitionKey string

	// Set by Append.
	Partition      int
	SequenceNumber int64
	Offset         string // decimal byte offset within the partition
	EnqueuedTime   time.Time
}

// Symbol is an AMQP symbol value, kept apart from string so an Event Hubs
// layer can send back the type a producer sent.
type Symbol string

// UUID is an AMQP uuid value.
type UUID [16]byte

// Char is an AMQP char value (a Unicode code point).
type Char rune

// Options configure a Log. Zero (or negative) values mean the defaults.
type Options struct {
	// Dir holds the log; created if absent. Required.
	Dir string
	// Partitions of a new log (default 4). An existing log keeps the count
	// it was created with, as an IoT Hub does; a different non-zero value
	// is an error.
	Partitions int
	// Retention: events older than this are no longer readable and their
	// files are deleted (default 24h, as IoT Hub's built-in endpoint).
	Retention time.Duration
	// Now is the clock for enqueued times and retention (default time.Now).
	Now func() time.Time
	// Logger receives recovery warnings and write failures (default: none).
	Logger *slog.Logger
	// SegmentBytes is the size at which a partition starts a new segment
	// file (default 64 MiB). Retention deletes whole segments, so this is
	// also the granularity at which disk space comes back.
	SegmentBytes int64
	// CacheBytes bounds the recent events each partition keeps in memory
	// for readers at the head of the log (default 4 MiB).
	CacheBytes int
}

// Log is safe for concurrent use.
type Log struct {
	parts     []*partition
	created   time.Time
	retention time.Duration
	now       func() time.Time
	logger    *slog.Logger
	unlock    func()

	closeOnce sync.Once
	closeErr  error
}

// metaFile records what a log was created with.
const metaFile = "eventlog.json"

type meta struct {
	Format     int       `json:"format"`
	Partitions int       `json:"partitions"`
	Created    time.Time `json:"created"`
}

// Open opens the log in opts.Dir, creating it if needed. It repairs what a
// crash left behind (a torn or corrupt tail is cut back to the last whole
// append, with a warning) rather than fail, and fails only if the directory
// cannot be used: unreadable, held by another process, or created with a
// different partition count.
func Open(opts Options) (_ *Log, err error) {
	if opts.Dir == "" {
		return nil, errors.New("eventlog: Options.Dir is required")
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	unlock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("eventlog: %s is in use by another process: %w", opts.Dir, err)
	}
	l := &Log{retention: opts.Retention, now: opts.Now, logger: opts.Logger, unlock: unlock}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	m, err := loadMeta(opts.Dir, opts.Partitions, opts.Now())
	if err != nil {
		return nil, err
	}
	l.created = m.Created
	l.parts = make([]*partition, m.Partitions)
	var g errgroup.Group
	for i := range l.parts {
		g.Go(func() error {
			p, err := openPartition(l, i, filepath.Join(opts.Dir, strconv.Itoa(i)), opts)
			l.parts[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return l, nil
}

// loadMeta reads what a log was created with, or records it for a new one:
// want partitions (or the default), created now.
func loadMeta(dir string, want int, now time.Time) (meta, error) {
	path := filepath.Join(dir, metaFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if want <= 0 {
			want = DefaultPartitions
		}
		m := meta{Format: 1, Partitions: want, Created: now.UTC().Truncate(time.Millisecond)}
		b, _ := json.Marshal(m)
		if err := writeFileSync(path, b); err != nil {
			return meta{}, fmt.Errorf("eventlog: %w", err)
		}
		return m, nil
	}
	if err != nil {
		return meta{}, fmt.Errorf("eventlog: %w", err)
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil || m.Format != 1 || m.Partitions < 1 {
		return meta{}, fmt.Errorf("eventlog: %s is not a log description this version reads: %q", path, b)
	}
	if want > 0 && want != m.Partitions {
		return meta{}, fmt.Errorf("eventlog: the log in %s has %d partitions, not %d: like an IoT Hub's, the partition count is fixed when the log is created (use a new data directory to change it)", dir, m.Partitions, want)
	}
	return m, nil
}

// writeFileSync writes a small file atomically and durably.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	return err
}

// CreatedAt is when the log was created: an Event Hub's created_at.
func (l *Log) CreatedAt() time.Time { return l.created }

// PartitionCount returns the number of partitions.
func (l *Log) PartitionCount() int { return len(l.parts) }

// PartitionFor maps a device id to its partition: 32-bit FNV-1a of the id
// modulo the partition count. The hash is fixed, so a device keeps its
// partition across restarts (the count is fixed too).
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

// Append stores e in PartitionFor(e.DeviceID), assigns its sequence number
// (from 0 per partition), offset and enqueued time, and returns the stored
// event once it is on disk (written and fsynced) and visible to readers.
// Appends running concurrently share one fsync.
//
// The enqueued time is UTC at millisecond precision, the precision of AMQP
// timestamps and of enqueued-time filters: a reader that resumes "after" the
// time it was given must not see the same event again. Within a partition
// it never goes backwards, even if the clock does.
//
// After a write or fsync failure the partition refuses every append until
// the log is reopened: what the disk holds is then unknown, and carrying on
// could acknowledge events that are lost.
func (l *Log) Append(e Event) (Event, error) {
	evs, err := l.AppendTo(l.PartitionFor(e.DeviceID), e)
	if err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// AppendTo stores events in one partition, contiguously and atomically: on
// disk and to readers they appear all together or, if AppendTo fails or the
// process dies first, not at all. It is Append for an Event Hubs producer's
// batch, whose partition the caller chooses.
func (l *Log) AppendTo(partition int, events ...Event) ([]Event, error) {
	p, b, evs, err := l.enqueue(partition, events)
	if err != nil {
		return nil, err
	}
	<-b.done
	if b.err != nil {
		return nil, fmt.Errorf("eventlog: partition %d: %w", p.id, b.err)
	}
	return evs, nil
}

// Enqueue is Append without waiting for the disk: the event is ordered (its
// sequence number is assigned and returned) and the next group commit, a
// few milliseconds later, writes it and shows it to readers. It is for
// events nobody is acknowledged for that are produced under a lock which
// must not be held across an fsync, such as connection-state events; an
// Append that returns later in the same partition implies this event is on
// disk too.
func (l *Log) Enqueue(e Event) (Event, error) {
	_, _, evs, err := l.enqueue(l.PartitionFor(e.DeviceID), []Event{e})
	if err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

func (l *Log) enqueue(partition int, events []Event) (*partition, *batch, []Event, error) {
	if partition < 0 || partition >= len(l.parts) {
		return nil, nil, nil, fmt.Errorf("%w: %d (have %d)", ErrNoPartition, partition, len(l.parts))
	}
	if len(events) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: no events", ErrInvalidEvent)
	}
	p := l.parts[partition]
	evs := make([]Event, len(events))
	copy(evs, events)
	b, err := p.enqueue(evs, l.now())
	if err != nil {
		return nil, nil, nil, err
	}
	return p, b, evs, nil
}

// Close writes what was appended, stops the log and wakes every waiting
// reader with ErrClosed; later calls fail with ErrClosed. Close is
// idempotent.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		for _, p := range l.parts {
			if p != nil {
				p.stopAppends()
			}
		}
		for _, p := range l.parts {
			if p != nil {
				errs = append(errs, p.close())
			}
		}
		l.unlock()
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// partition returns partition i or ErrNoPartition.
func (l *Log) partition(i int) (*partition, error) {
	if i < 0 || i >= len(l.parts) {
		return nil, fmt.Errorf("%w: %d (have %d)", ErrNoPartition, i, len(l.parts))
	}
	return l.parts[i], nil
}

// cutoffMs is the earliest enqueued time (Unix ms) retention keeps: an event
// exactly Retention old is kept.
func (l *Log) cutoffMs() int64 {
	return ceilMs(l.now().Add(-l.retention))
}

// ceilMs is t in Unix milliseconds, rounded up.
func ceilMs(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	return ms
}
