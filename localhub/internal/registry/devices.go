package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
)

// SymmetricKey holds base64 keys.
type SymmetricKey struct {
	PrimaryKey   string
	SecondaryKey string
}

// X509Thumbprint is always empty for SAS devices.
type X509Thumbprint struct {
	PrimaryThumbprint   *string
	SecondaryThumbprint *string
}

// Authentication of a device. Only type "sas" is supported locally.
type Authentication struct {
	SymmetricKey   SymmetricKey
	X509Thumbprint X509Thumbprint
	Type           string
}

// Capabilities of a device.
type Capabilities struct {
	IotEdge bool
}

// Device is a device identity with its live connection state. Times are
// UTC; a zero time is one that never happened. How it goes on the wire is
// the API's business.
type Device struct {
	DeviceID                   string
	GenerationID               string
	ETag                       string
	ConnectionState            string
	Status                     string
	StatusReason               *string
	ConnectionStateUpdatedTime time.Time
	StatusUpdatedTime          time.Time
	LastActivityTime           time.Time
	CloudToDeviceMessageCount  int
	Authentication             Authentication
	Capabilities               Capabilities
	DeviceScope                *string
	ParentScopes               []string
}

// Device status and connection state values.
const (
	StatusEnabled  = "enabled"
	StatusDisabled = "disabled"

	Connected    = "Connected"
	Disconnected = "Disconnected"

	authSAS = "sas"
)

// deviceRecord is a device as stored: identity without live state.
type deviceRecord struct {
	DeviceID          string     `json:"deviceId"`
	GenerationID      string     `json:"generationId"`
	ETag              uint64     `json:"etag"`
	Status            string     `json:"status"`
	StatusReason      *string    `json:"statusReason,omitempty"`
	StatusUpdatedTime time.Time  `json:"statusUpdatedTime"`
	Keys              storedKeys `json:"keys"`
	Capabilities      storedCaps `json:"capabilities"`
	DeviceScope       *string    `json:"deviceScope,omitempty"`
	ParentScopes      []string   `json:"parentScopes,omitempty"`
	C2DMessageCount   int        `json:"c2dMessageCount,omitempty"`
}

// storedKeys and storedCaps name the on-disk fields of keys and
// capabilities.
type storedKeys struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

type storedCaps struct {
	IotEdge bool `json:"iotEdge"`
}

func (k storedKeys) keys() SymmetricKey {
	return SymmetricKey(k)
}

func decodeDevice(v []byte) (*deviceRecord, error) {
	var rec deviceRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode device: %w", err)
	}
	return &rec, nil
}

func (r *deviceRecord) state() *deviceState {
	return &deviceState{keys: r.Keys.keys(), enabled: r.Status == StatusEnabled, generationID: r.GenerationID}
}

// wire renders the record with live connection state from st (may be nil).
func (r *deviceRecord) wire(st *deviceState) Device {
	d := Device{
		DeviceID:          r.DeviceID,
		GenerationID:      r.GenerationID,
		ETag:              deviceETag(r.ETag),
		ConnectionState:   Disconnected,
		Status:            r.Status,
		StatusReason:      r.StatusReason,
		StatusUpdatedTime: r.StatusUpdatedTime,
		Authentication: Authentication{
			SymmetricKey: r.Keys.keys(),
			Type:         authSAS,
		},
		CloudToDeviceMessageCount: r.C2DMessageCount,
		Capabilities:              Capabilities(r.Capabilities),
		DeviceScope:               r.DeviceScope,
		ParentScopes:              append([]string{}, r.ParentScopes...),
	}
	if st != nil {
		if st.connected {
			d.ConnectionState = Connected
		}
		d.ConnectionStateUpdatedTime = st.connUpdated
		d.LastActivityTime = st.lastActivity
	}
	return d
}

func getDevice(tx *bolt.Tx, id string) (*deviceRecord, error) {
	v := tx.Bucket(bucketDevices).Get([]byte(id))
	if v == nil {
		return nil, ErrDeviceNotFound
	}
	return decodeDevice(v)
}

// putDevice stores rec under a fresh device etag.
func putDevice(tx *bolt.Tx, rec *deviceRecord) error {
	meta := tx.Bucket(bucketMeta)
	next := getUint64(meta, keyDeviceETagNext)
	if err := putUint64(meta, keyDeviceETagNext, next+1); err != nil {
		return err
	}
	rec.ETag = next
	v, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketDevices).Put([]byte(rec.DeviceID), v)
}

// deviceInput is the validated, defaulted part of a Device a caller may set.
type deviceInput struct {
	keys         SymmetricKey // empty fields: generate (create) or keep (update)
	status       string       // "" only on update: keep
	statusReason *string
	capabilities Capabilities
}

func validateDeviceInput(d Device) (deviceInput, error) {
	if err := deviceid.Validate(d.DeviceID); err != nil {
		return deviceInput{}, argumentInvalid("The device identifier %q is invalid: %v", d.DeviceID, err)
	}
	switch d.Authentication.Type {
	case "", authSAS:
	default:
		return deviceInput{}, argumentInvalid("Authentication type %q is not supported: the local hub supports only \"sas\"", d.Authentication.Type)
	}
	keys := d.Authentication.SymmetricKey
	for _, k := range []string{keys.PrimaryKey, keys.SecondaryKey} {
		if k != "" && !validKey(k) {
			return deviceInput{}, argumentInvalid("Symmetric keys must be base64 of %d to %d bytes", minSymKeyBytes, maxSymKeyBytes)
		}
	}
	switch d.Status {
	case "", StatusEnabled, StatusDisabled:
	default:
		return deviceInput{}, argumentInvalid("Device status %q is invalid: use %q or %q", d.Status, StatusEnabled, StatusDisabled)
	}
	return deviceInput{keys: keys, status: d.Status, statusReason: d.StatusReason, capabilities: d.Capabilities}, nil
}

// CreateDevice adds d. It validates the id (400 InvalidError), generates
// keys when absent or empty, defaults status to "enabled", and emits a
// createDeviceIdentity notification. ErrDeviceExists if the id is taken.
// Only the fields a caller may set are taken from d; the rest (etag,
// generationId, times, connection state) are the hub's.
func (s *Store) CreateDevice(d Device) (Device, error) {
	in, err := validateDeviceInput(d)
	if err != nil {
		return Device{}, err
	}
	rec := &deviceRecord{
		DeviceID:     d.DeviceID,
		GenerationID: newGenerationID(),
		Status:       in.status,
		StatusReason: in.statusReason,
		Keys:         storedKeys(in.keys),
		Capabilities: storedCaps(in.capabilities),
		DeviceScope:  d.DeviceScope,
	}
	if rec.Status == "" {
		rec.Status = StatusEnabled
	}
	if rec.Keys.PrimaryKey == "" {
		rec.Keys.PrimaryKey = newKey()
	}
	if rec.Keys.SecondaryKey == "" {
		rec.Keys.SecondaryKey = newKey()
	}

	unlock := s.lockDevice(d.DeviceID)
	defer unlock()
	now := s.clock()
	twin := newTwinRecord(now)
	err = s.writes.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketDevices).Get([]byte(rec.DeviceID)) != nil {
			return ErrDeviceExists
		}
		if err := putDevice(tx, rec); err != nil {
			return err
		}
		return putTwin(tx, rec.DeviceID, twin)
	})
	if err != nil {
		return Device{}, fmt.Errorf("create device %q: %w", d.DeviceID, err)
	}
	st := rec.state()
	s.mu.Lock()
	s.bumpRecordLocked(st)
	s.devices[rec.DeviceID] = st
	s.addOrderLocked(rec.DeviceID)
	s.mu.Unlock()
	s.notify(lifecycleNotification(rec.DeviceID, OpCreateDeviceIdentity, twin, now))
	return rec.wire(nil), nil
}

// UpdateDevice replaces the mutable fields (status, statusReason, keys,
// capabilities) of an existing device if ifMatch ("*", "\"*\"", "\"etag\""
// or "etag") matches. ErrDeviceNotFound, ErrPreconditionFailed.
// An empty status or key keeps the current one; "" matches any etag.
func (s *Store) UpdateDevice(d Device, ifMatch string) (Device, error) {
	in, err := validateDeviceInput(d)
	if err != nil {
		return Device{}, err
	}
	unlock := s.lockDevice(d.DeviceID)
	defer unlock()
	now := s.clock()
	var rec *deviceRecord
	err = s.writes.update(func(tx *bolt.Tx) error {
		var err error
		if rec, err = getDevice(tx, d.DeviceID); err != nil {
			return err
		}
		if !etagMatches(ifMatch, deviceETag(rec.ETag)) {
			return ErrPreconditionFailed
		}
		if in.status != "" && in.status != rec.Status {
			rec.Status = in.status
			rec.StatusUpdatedTime = now
		}
		rec.StatusReason = in.statusReason
		if in.keys.PrimaryKey != "" {
			rec.Keys.PrimaryKey = in.keys.PrimaryKey
		}
		if in.keys.SecondaryKey != "" {
			rec.Keys.SecondaryKey = in.keys.SecondaryKey
		}
		rec.Capabilities = storedCaps(in.capabilities)
		return putDevice(tx, rec)
	})
	if err != nil {
		return Device{}, fmt.Errorf("update device %q: %w", d.DeviceID, err)
	}
	s.mu.Lock()
	st := s.devices[rec.DeviceID]
	if st == nil {
		st = rec.state()
		s.devices[rec.DeviceID] = st
		s.addOrderLocked(rec.DeviceID)
	}
	st.keys, st.enabled, st.generationID = rec.Keys.keys(), rec.Status == StatusEnabled, rec.GenerationID
	s.bumpRecordLocked(st)
	dev := rec.wire(st)
	s.mu.Unlock()
	return dev, nil
}

// GetDevice returns a device with its live connection state.
func (s *Store) GetDevice(id string) (Device, error) {
	var rec *deviceRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		rec, err = getDevice(tx, id)
		return err
	})
	if err != nil {
		return Device{}, fmt.Errorf("get device %q: %w", id, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return rec.wire(s.devices[id]), nil
}

// DeleteDevice removes a device and its twin if ifMatch matches ("" = any),
// and emits deleteDeviceIdentity. ErrDeviceNotFound, ErrPreconditionFailed.
func (s *Store) DeleteDevice(id, ifMatch string) error {
	unlock := s.lockDevice(id)
	defer unlock()
	now := s.clock()
	var twin *twinRecord
	err := s.writes.update(func(tx *bolt.Tx) error {
		rec, err := getDevice(tx, id)
		if err != nil {
			return err
		}
		if !etagMatches(ifMatch, deviceETag(rec.ETag)) {
			return ErrPreconditionFailed
		}
		// A missing twin (a damaged file) must not make the device
		// undeletable.
		if twin, err = getTwin(tx, id); errors.Is(err, ErrDeviceNotFound) {
			twin = newTwinRecord(now)
		} else if err != nil {
			return err
		}
		if err := tx.Bucket(bucketDevices).Delete([]byte(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketTwins).Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete device %q: %w", id, err)
	}
	s.mu.Lock()
	if st := s.devices[id]; st != nil {
		s.dropCachedLocked(st)
	}
	delete(s.devices, id)
	s.orderDirty = true // drops id from the order
	s.mu.Unlock()
	s.notify(lifecycleNotification(id, OpDeleteDeviceIdentity, twin, now))
	return nil
}

// maxListDevices is IoT Hub's cap on GET /devices?top=N.
const maxListDevices = 1000

// ListDevices returns up to top devices (top <= 0 means 1000) ordered by id.
// top above 1000 is treated as 1000.
func (s *Store) ListDevices(top int) ([]Device, error) {
	if top <= 0 || top > maxListDevices {
		top = maxListDevices
	}
	var recs []*deviceRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDevices).Cursor()
		for k, v := c.First(); k != nil && len(recs) < top; k, v = c.Next() {
			rec, err := decodeDevice(v)
			if err != nil {
				return fmt.Errorf("device %q: %w", k, err)
			}
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	devices := make([]Device, len(recs))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, rec := range recs {
		devices[i] = rec.wire(s.devices[rec.DeviceID])
	}
	return devices, nil
}

// DeviceStats counts the registered devices.
type DeviceStats struct {
	TotalDeviceCount    int
	EnabledDeviceCount  int
	DisabledDeviceCount int
}

// Stats counts devices.
func (s *Store) Stats() (DeviceStats, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	stats := DeviceStats{TotalDeviceCount: len(s.devices)}
	for _, st := range s.devices {
		if st.enabled {
			stats.EnabledDeviceCount++
		}
	}
	stats.DisabledDeviceCount = stats.TotalDeviceCount - stats.EnabledDeviceCount
	return stats, nil
}

// SetConnected records the live connection state (kept in memory only: after
// a restart every device is Disconnected) and the activity time.
func (s *Store) SetConnected(id string, connected bool, at time.Time) {
	at = normalizeTime(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.devices[id]
	if st == nil {
		return
	}
	if st.connected != connected || at.After(st.lastActivity) {
		s.bumpLocked(st)
	}
	st.connected = connected
	st.connUpdated = at
	if at.After(st.lastActivity) {
		st.lastActivity = at
	}
}

// TouchActivity records device activity (any publish).
func (s *Store) TouchActivity(id string, at time.Time) {
	at = normalizeTime(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.devices[id]; st != nil && at.After(st.lastActivity) {
		st.lastActivity = at
		s.bumpLocked(st)
	}
}

// DeviceExists reports whether id is registered, from memory: the write
// path updates the in-memory view before CreateDevice and DeleteDevice
// return, so a caller sees a create or delete it waited for.
func (s *Store) DeviceExists(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.devices[id] != nil
}

// DeviceKeys returns the device's keys and status for authentication, fast
// (served from memory). ErrDeviceNotFound.
func (s *Store) DeviceKeys(id string) (keys SymmetricKey, enabled bool, generationID string, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.devices[id]
	if st == nil {
		return SymmetricKey{}, false, "", ErrDeviceNotFound
	}
	return st.keys, st.enabled, st.generationID, nil
}
