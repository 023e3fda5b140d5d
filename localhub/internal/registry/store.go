// Package registry is the local hub's durable state: shared access
// policies, the device identity registry and device twins, kept in bbolt.
//
// Every mutating method commits (with fsync) before it returns, so a crash
// after a successful return loses nothing. Live connection state is kept in
// memory only, like the real hub's: after a restart every device is
// Disconnected.
package registry

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Options configure Open.
type Options struct {
	// Path of the bbolt file; created if absent.
	Path string
	// Now defaults to time.Now.
	Now func() time.Time
	// OnChange, if set, is called after each committed change that IoT Hub
	// would route (twin changes, device lifecycle), in commit order for any
	// one device. It runs under the device's lock (a stripe other devices
	// may share), which is what keeps that order: it must not block, in
	// particular not on network I/O such as writing to a device (hand the
	// work to a bounded queue instead), and must not call back into the
	// Store.
	OnChange func(Notification)
}

// Notification is a committed change, ready to become a routed event.
type Notification struct {
	DeviceID string
	// Source is the iothub-message-source: "twinChangeEvents" or "deviceLifecycleEvents".
	Source string
	// Schema is iothub-message-schema: "twinChangeNotification" or "deviceLifecycleNotification".
	Schema string
	// OpType: updateTwin, replaceTwin, createDeviceIdentity, deleteDeviceIdentity.
	OpType string
	// Body is the event body exactly as IoT Hub sends it (reference §4).
	Body json.RawMessage
	// Time is the operationTimestamp.
	Time time.Time
	// DesiredPatch, when the change touched desired properties, is the body a
	// connected device receives on $iothub/twin/PATCH/properties/desired/?$version=N:
	// the changed keys (null = deleted) plus "$version" for a patch, the full
	// desired document for a replace. DesiredVersion is that N.
	DesiredPatch   json.RawMessage
	DesiredVersion int64
}

// schemaVersion is the layout of the bbolt file this code reads and writes.
const schemaVersion = 1

var (
	bucketMeta     = []byte("meta")
	bucketPolicies = []byte("policies")
	bucketDevices  = []byte("devices")
	bucketTwins    = []byte("twins")
	// bucketJobs and bucketJobDevices hold scheduled jobs (jobs.go).
	bucketJobs       = []byte("jobs")
	bucketJobDevices = []byte("jobDevices")

	keySchema         = []byte("schema")
	keyDeviceETagNext = []byte("deviceEtagNext")
)

// lockStripes bounds the per-device locks: two devices rarely share one.
const lockStripes = 1024

// Store is the registry. Safe for concurrent use.
type Store struct {
	db       *bolt.DB
	now      func() time.Time
	onChange func(Notification)
	policies []Policy
	writes   *groupCommitter

	// deviceLocks serialise commit and notification per device, so
	// notifications leave in commit order.
	deviceLocks [lockStripes]sync.Mutex
	lockSeed    maphash.Seed

	// mu guards devices, the in-memory view used on every authentication
	// and for live connection state, and the twin cache's bookkeeping:
	// revisions and the device ids in order (see CachedTwins).
	mu         sync.RWMutex
	devices    map[string]*deviceState
	revNext    uint64
	order      []string
	orderDirty bool
	// cacheBytes is what each TwinCache keeps here, by its size
	// function.
	cacheBytes map[*TwinCache]int64
}

// deviceState is what the hot paths need without touching bbolt, plus the
// live connection state that is never persisted.
type deviceState struct {
	keys         SymmetricKey
	enabled      bool
	generationID string

	connected    bool
	connUpdated  time.Time
	lastActivity time.Time

	// rev moves on every change to the device's twin as Twin shows it,
	// recRev on those to its device or twin record; cached is valid while
	// its rev is this one.
	rev    uint64
	recRev uint64
	cached cacheEntry
}

// Open opens or creates the store. On first creation it generates keys for
// the default policies (iothubowner, service, device, registryRead,
// registryReadWrite) and serviceAndRegistryRead (ServiceConnect+RegistryRead).
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("no registry file: Options.Path is empty")
	}
	// bbolt holds an exclusive lock on the file while it is open. Waiting
	// for it helps nobody: the holder is another hub (or make run) that
	// runs until stopped. A timeout shorter than bbolt's retry interval
	// makes the first failed attempt final.
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{Timeout: time.Nanosecond})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w", opts.Path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Path, err)
	}
	s := &Store{
		db:       db,
		now:      opts.Now,
		onChange: opts.OnChange,
		writes:   newGroupCommitter(db),
		lockSeed: maphash.MakeSeed(),
		devices:  make(map[string]*deviceState),

		cacheBytes: make(map[*TwinCache]int64),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := db.Update(s.initialise); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise %s: %w", opts.Path, err)
	}
	if err := db.View(s.load); err != nil {
		db.Close()
		return nil, fmt.Errorf("load %s: %w", opts.Path, err)
	}
	return s, nil
}

// initialise creates the buckets and, on a new file, the hub-level state.
func (s *Store) initialise(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketMeta, bucketPolicies, bucketDevices, bucketTwins, bucketJobs, bucketJobDevices} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(keySchema); v != nil {
		got, err := strconv.Atoi(string(v))
		if err != nil || got != schemaVersion {
			return fmt.Errorf("schema version %q, this build reads %d", v, schemaVersion)
		}
	} else if err := meta.Put(keySchema, []byte(strconv.Itoa(schemaVersion))); err != nil {
		return err
	}
	if meta.Get(keyDeviceETagNext) == nil {
		// Device etags are base64 of a decimal counter; starting at a
		// random nine-digit number makes them look like the hub's.
		if err := putUint64(meta, keyDeviceETagNext, 100_000_000+randomUint64(900_000_000)); err != nil {
			return err
		}
	}
	return ensureDefaultPolicies(tx.Bucket(bucketPolicies))
}

// load fills the in-memory views from the file.
func (s *Store) load(tx *bolt.Tx) error {
	policies, err := readPolicies(tx.Bucket(bucketPolicies))
	if err != nil {
		return err
	}
	s.policies = policies
	return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
		rec, err := decodeDevice(v)
		if err != nil {
			return fmt.Errorf("device %q: %w", k, err)
		}
		st := rec.state()
		s.bumpRecordLocked(st)
		s.devices[rec.DeviceID] = st
		s.addOrderLocked(rec.DeviceID)
		return nil
	})
}

// Close closes the bbolt file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// lockDevice serialises changes to one device; call the returned func to
// release.
func (s *Store) lockDevice(id string) func() {
	m := &s.deviceLocks[maphash.String(s.lockSeed, id)%lockStripes]
	m.Lock()
	return m.Unlock
}

// clock is the store's notion of now: UTC, at the 100 ns resolution IoT
// Hub's timestamps have.
func (s *Store) clock() time.Time { return normalizeTime(s.now()) }

func normalizeTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(100 * time.Nanosecond)
}

// notify hands committed changes to OnChange. Callers hold the device lock.
func (s *Store) notify(ns ...Notification) {
	if s.onChange == nil {
		return
	}
	for _, n := range ns {
		s.onChange(n)
	}
}

func putUint64(b *bolt.Bucket, key []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(key, buf[:])
}

func getUint64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}
