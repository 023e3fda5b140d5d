package registry

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Twin is a device twin with its device's identity and live state. Tags
// and the property sections are JSON objects (map[string]any) holding what
// encoding/json decodes with UseNumber: numbers are json.Number, so big
// integers stay exact. Each property section carries its "$metadata" and
// "$version". Times are UTC; a zero time is one that never happened.
type Twin struct {
	DeviceID                  string
	ETag                      string
	DeviceETag                string
	Status                    string
	StatusReason              *string
	StatusUpdateTime          time.Time
	ConnectionState           string
	LastActivityTime          time.Time
	CloudToDeviceMessageCount int
	AuthenticationType        string
	X509Thumbprint            X509Thumbprint
	ModelID                   string
	Version                   int64
	Tags                      map[string]any // nil when the twin has none
	Properties                TwinProperties
	Capabilities              Capabilities
}

// TwinProperties holds desired and reported, each a JSON object with
// "$metadata" and "$version".
type TwinProperties struct {
	Desired  map[string]any
	Reported map[string]any
}

// TwinPatch is what a service may change: tags and desired properties. A nil
// map means "not in the request". For PatchTwin, null values delete keys.
// Decode request bodies with json.Decoder.UseNumber so that integers beyond
// 2^53 are seen (and refused) rather than rounded.
type TwinPatch struct {
	Tags    map[string]any
	Desired map[string]any
}

// twinRecord is a twin as stored.
//
// Version counts operations on the twin: each tags, desired or reported
// change adds one (the swagger says tags and desired; whether the hub also
// counts reported changes is unconfirmed, and counting them matches the
// example twin in reference §3.4). ETag is the counter behind the twin etag
// and moves on every change.
type twinRecord struct {
	Version         int64
	ETag            uint64
	Tags            *node
	Desired         *node
	DesiredVersion  int64
	Reported        *node
	ReportedVersion int64
}

// storedTwin is the on-disk form of a twinRecord.
type storedTwin struct {
	Version         int64       `json:"version"`
	ETag            uint64      `json:"etag"`
	Tags            *storedNode `json:"tags"`
	Desired         *storedNode `json:"desired"`
	DesiredVersion  int64       `json:"desiredVersion"`
	Reported        *storedNode `json:"reported"`
	ReportedVersion int64       `json:"reportedVersion"`
}

// newTwinRecord is a new device's twin as IoT Hub creates it: version 2,
// etag "AAAAAAAAAAE=", both property sections at $version 1 and stamped
// with the creation time (a real time on IoT Hub, not the zero time).
func newTwinRecord(created time.Time) *twinRecord {
	rec := &twinRecord{
		Version:         2,
		ETag:            1,
		Tags:            newObject(),
		Desired:         newObject(),
		DesiredVersion:  1,
		Reported:        newObject(),
		ReportedVersion: 1,
	}
	rec.Desired.updated = created
	rec.Reported.updated = created
	return rec
}

func getTwin(tx *bolt.Tx, id string) (*twinRecord, error) {
	v := tx.Bucket(bucketTwins).Get([]byte(id))
	if v == nil {
		return nil, ErrDeviceNotFound
	}
	rec, err := decodeTwin(v)
	if err != nil {
		return nil, fmt.Errorf("decode twin: %w", err)
	}
	return rec, nil
}

func decodeTwin(v []byte) (*twinRecord, error) {
	var st storedTwin
	if err := json.Unmarshal(v, &st); err != nil {
		return nil, err
	}
	rec := &twinRecord{
		Version:         st.Version,
		ETag:            st.ETag,
		DesiredVersion:  st.DesiredVersion,
		ReportedVersion: st.ReportedVersion,
	}
	for _, sec := range []struct {
		dst **node
		src *storedNode
	}{{&rec.Tags, st.Tags}, {&rec.Desired, st.Desired}, {&rec.Reported, st.Reported}} {
		if sec.src == nil || len(sec.src.V) > 0 {
			return nil, fmt.Errorf("a section is missing or not an object")
		}
		n := &node{}
		if err := n.load(sec.src); err != nil {
			return nil, err
		}
		*sec.dst = n
	}
	return rec, nil
}

func putTwin(tx *bolt.Tx, id string, rec *twinRecord) error {
	st := storedTwin{
		Version:         rec.Version,
		ETag:            rec.ETag,
		DesiredVersion:  rec.DesiredVersion,
		ReportedVersion: rec.ReportedVersion,
	}
	var err error
	if st.Tags, err = rec.Tags.stored(); err != nil {
		return fmt.Errorf("encode twin: %w", err)
	}
	if st.Desired, err = rec.Desired.stored(); err != nil {
		return fmt.Errorf("encode twin: %w", err)
	}
	if st.Reported, err = rec.Reported.stored(); err != nil {
		return fmt.Errorf("encode twin: %w", err)
	}
	v, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode twin: %w", err)
	}
	return tx.Bucket(bucketTwins).Put([]byte(id), v)
}

// wire renders the twin with its device's identity and live state (st may
// be nil).
func (r *twinRecord) wire(dev *deviceRecord, st *deviceState) Twin {
	t := Twin{
		DeviceID:                  dev.DeviceID,
		ETag:                      twinETag(r.ETag),
		DeviceETag:                deviceETag(dev.ETag),
		Status:                    dev.Status,
		StatusReason:              dev.StatusReason,
		StatusUpdateTime:          dev.StatusUpdatedTime,
		ConnectionState:           Disconnected,
		CloudToDeviceMessageCount: dev.C2DMessageCount,
		AuthenticationType:        authSAS,
		Version:                   r.Version,
		Properties: TwinProperties{
			Desired:  sectionMap(r.Desired, r.DesiredVersion, sectionDesired),
			Reported: sectionMap(r.Reported, r.ReportedVersion, sectionReported),
		},
		Capabilities: Capabilities(dev.Capabilities),
	}
	if len(r.Tags.kids) > 0 {
		t.Tags = r.Tags.value().(map[string]any)
	}
	if st != nil {
		if st.connected {
			t.ConnectionState = Connected
		}
		t.LastActivityTime = st.lastActivity
	}
	return t
}

func sectionMap(root *node, version int64, sec section) map[string]any {
	m := root.value().(map[string]any)
	m["$metadata"] = root.metadata(sec.stampsVersion())
	m["$version"] = version
	return m
}

// GetTwin returns the device's twin. ErrDeviceNotFound.
func (s *Store) GetTwin(id string) (Twin, error) {
	var (
		dev *deviceRecord
		rec *twinRecord
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if dev, err = getDevice(tx, id); err != nil {
			return err
		}
		rec, err = getTwin(tx, id)
		return err
	})
	if err != nil {
		return Twin{}, fmt.Errorf("get twin %q: %w", id, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return rec.wire(dev, s.devices[id]), nil
}

// Twins returns every twin ordered by device id (for queries), read in one
// transaction so the set is consistent.
func (s *Store) Twins() ([]Twin, error) {
	type pair struct {
		dev  *deviceRecord
		twin *twinRecord
	}
	var pairs []pair
	err := s.db.View(func(tx *bolt.Tx) error {
		pairs = make([]pair, 0, tx.Bucket(bucketDevices).Stats().KeyN)
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			dev, err := decodeDevice(v)
			if err != nil {
				return fmt.Errorf("device %q: %w", k, err)
			}
			twin, err := getTwin(tx, string(k))
			if err != nil {
				return fmt.Errorf("twin %q: %w", k, err)
			}
			pairs = append(pairs, pair{dev, twin})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list twins: %w", err)
	}
	twins := make([]Twin, len(pairs))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, p := range pairs {
		twins[i] = p.twin.wire(p.dev, s.devices[p.dev.DeviceID])
	}
	return twins, nil
}

// PatchTwin merges tags and desired (null deletes), checks ifMatch against
// the twin etag, enforces IoT Hub's size/depth/key limits (InvalidError),
// bumps versions and emits an updateTwin notification. A patch with neither
// tags nor desired changes nothing.
func (s *Store) PatchTwin(id string, p TwinPatch, ifMatch string) (Twin, error) {
	var tags, desired map[string]any
	var err error
	if p.Tags != nil {
		if tags, err = normalizePatch(sectionTags, p.Tags, true); err != nil {
			return Twin{}, err
		}
	}
	if p.Desired != nil {
		if desired, err = normalizePatch(sectionDesired, p.Desired, true); err != nil {
			return Twin{}, err
		}
	}

	if tags == nil && desired == nil {
		return s.checkedTwin(id, ifMatch)
	}

	tw, err := s.writeTwin(id, ifMatch, func(rec *twinRecord, now time.Time) (Notification, error) {
		if tags != nil {
			rec.Tags.merge(tags, time.Time{}, 0)
			if err := checkSize(sectionTags, rec.Tags); err != nil {
				return Notification{}, err
			}
		}
		if desired != nil {
			rec.DesiredVersion++
			rec.Desired.merge(desired, now, rec.DesiredVersion)
			if err := checkSize(sectionDesired, rec.Desired); err != nil {
				return Notification{}, err
			}
		}
		return patchNotification(id, rec, tags, desired, now), nil
	})
	if err != nil {
		return Twin{}, fmt.Errorf("patch twin %q: %w", id, err)
	}
	return tw, nil
}

// ReplaceTwin replaces tags and desired wholesale and emits replaceTwin.
// A nil map replaces with an empty one; null values are dropped.
func (s *Store) ReplaceTwin(id string, p TwinPatch, ifMatch string) (Twin, error) {
	tags, err := normalizePatch(sectionTags, p.Tags, false)
	if err != nil {
		return Twin{}, err
	}
	desired, err := normalizePatch(sectionDesired, p.Desired, false)
	if err != nil {
		return Twin{}, err
	}

	tw, err := s.writeTwin(id, ifMatch, func(rec *twinRecord, now time.Time) (Notification, error) {
		rec.Tags = newObject()
		rec.Tags.merge(tags, time.Time{}, 0)
		rec.DesiredVersion++
		rec.Desired = newObject()
		rec.Desired.merge(desired, now, rec.DesiredVersion)
		if err := checkSize(sectionTags, rec.Tags); err != nil {
			return Notification{}, err
		}
		if err := checkSize(sectionDesired, rec.Desired); err != nil {
			return Notification{}, err
		}
		return replaceNotification(id, rec, now), nil
	})
	if err != nil {
		return Twin{}, fmt.Errorf("replace twin %q: %w", id, err)
	}
	return tw, nil
}

// writeTwin is the one way a service changes a twin: under the device's
// lock, in one commit, after checking ifMatch against the twin etag, with
// the twin version and etag bumped. change edits the record and builds the
// notification, which is emitted only once the commit is durable.
func (s *Store) writeTwin(id, ifMatch string, change func(rec *twinRecord, now time.Time) (Notification, error)) (Twin, error) {
	unlock := s.lockDevice(id)
	defer unlock()
	now := s.clock()
	var (
		dev *deviceRecord
		rec *twinRecord
		n   Notification
	)
	err := s.writes.update(func(tx *bolt.Tx) error {
		var err error
		if dev, rec, err = getDeviceAndTwin(tx, id); err != nil {
			return err
		}
		if !etagMatches(ifMatch, twinETag(rec.ETag)) {
			return ErrPreconditionFailed
		}
		rec.Version++
		rec.ETag++
		if n, err = change(rec, now); err != nil {
			return err
		}
		return putTwin(tx, id, rec)
	})
	if err != nil {
		return Twin{}, err
	}
	// Queries see the change before anyone is told of it. The twin is
	// built after the lock is released: it can be tens of kilobytes.
	s.mu.Lock()
	s.changedLocked(id)
	live := s.devices[id].liveCopy()
	s.mu.Unlock()
	s.notify(n)
	return rec.wire(dev, live), nil
}

// changedLocked records a committed change to id's device or twin record.
// Callers hold s.mu for writing and the device's lock, so revisions move
// in commit order.
func (s *Store) changedLocked(id string) {
	if st := s.devices[id]; st != nil {
		s.bumpRecordLocked(st)
	}
}

// checkedTwin is GetTwin for an empty patch: the etag is still checked.
func (s *Store) checkedTwin(id, ifMatch string) (Twin, error) {
	tw, err := s.GetTwin(id)
	if err != nil {
		return Twin{}, err
	}
	if !etagMatches(ifMatch, tw.ETag) {
		return Twin{}, fmt.Errorf("patch twin %q: %w", id, ErrPreconditionFailed)
	}
	return tw, nil
}

func getDeviceAndTwin(tx *bolt.Tx, id string) (*deviceRecord, *twinRecord, error) {
	dev, err := getDevice(tx, id)
	if err != nil {
		return nil, nil, err
	}
	rec, err := getTwin(tx, id)
	return dev, rec, err
}

// DeviceTwin is the body of the MQTT twin GET response:
// {"desired":{...,"$version":n},"reported":{...,"$version":m}} (no $metadata).
func (s *Store) DeviceTwin(id string) (json.RawMessage, error) {
	var rec *twinRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getTwin(tx, id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("device twin %q: %w", id, err)
	}
	body, err := marshalJSON(object{
		{"desired", sectionObject(rec.Desired, rec.DesiredVersion, sectionDesired, false)},
		{"reported", sectionObject(rec.Reported, rec.ReportedVersion, sectionReported, false)},
	})
	if err != nil {
		return nil, fmt.Errorf("device twin %q: %w", id, err)
	}
	return body, nil
}

// PatchReported merges a device's reported-properties patch (a JSON object,
// null deletes), enforces limits (InvalidError), emits updateTwin and
// returns the new reported $version. It also bumps the twin version and
// etag (see twinRecord).
func (s *Store) PatchReported(id string, patch json.RawMessage) (int64, error) {
	parsed, err := parsePatch(patch)
	if err != nil {
		return 0, err
	}
	reported, err := normalizePatch(sectionReported, parsed, true)
	if err != nil {
		return 0, err
	}

	unlock := s.lockDevice(id)
	defer unlock()
	now := s.clock()
	var rec *twinRecord
	err = s.writes.update(func(tx *bolt.Tx) error {
		var err error
		if rec, err = getTwin(tx, id); err != nil {
			return err
		}
		rec.Version++
		rec.ETag++
		rec.ReportedVersion++
		rec.Reported.merge(reported, now, 0)
		if err := checkSize(sectionReported, rec.Reported); err != nil {
			return err
		}
		return putTwin(tx, id, rec)
	})
	if err != nil {
		return 0, fmt.Errorf("patch reported properties of %q: %w", id, err)
	}
	s.mu.Lock()
	s.changedLocked(id)
	s.mu.Unlock()
	s.notify(reportedNotification(id, rec, reported, now))
	return rec.ReportedVersion, nil
}
