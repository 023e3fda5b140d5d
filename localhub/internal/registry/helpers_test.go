package registry

import (
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// t0 is the fake clock's start; its seven fractional digits show up as is
// in $lastUpdated.
var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC)

const t0Meta = "2024-05-06T07:08:09.1234567Z"

// fakeClock is a settable clock for exact timestamps.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// recorder collects notifications.
type recorder struct {
	mu sync.Mutex
	ns []Notification
}

func (r *recorder) add(n Notification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ns = append(r.ns, n)
}

func (r *recorder) all() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.ns...)
}

func (r *recorder) last(t *testing.T) Notification {
	t.Helper()
	ns := r.all()
	require.NotEmpty(t, ns)
	return ns[len(ns)-1]
}

// fixture is a store on a temporary file with a fake clock and a recorder.
type fixture struct {
	path  string
	clock *fakeClock
	rec   *recorder
	s     *Store
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		path:  filepath.Join(t.TempDir(), "registry.db"),
		clock: &fakeClock{now: t0},
		rec:   &recorder{},
	}
	f.open(t)
	return f
}

func (f *fixture) open(t testing.TB) {
	t.Helper()
	s, err := Open(Options{Path: f.path, Now: f.clock.Now, OnChange: f.rec.add})
	require.NoError(t, err)
	f.s = s
	t.Cleanup(func() { s.Close() })
}

// reopen closes the store and opens the same file again.
func (f *fixture) reopen(t testing.TB) {
	t.Helper()
	require.NoError(t, f.s.Close())
	f.open(t)
}

func (f *fixture) createDevice(t testing.TB, id string) Device {
	t.Helper()
	d, err := f.s.CreateDevice(Device{DeviceID: id})
	require.NoError(t, err)
	return d
}

// requireInvalid asserts err is an *InvalidError for the given reason.
func requireInvalid(t testing.TB, err error, reason Reason) *InvalidError {
	t.Helper()
	var invalid *InvalidError
	require.ErrorAs(t, err, &invalid)
	require.Equal(t, reason, invalid.Reason, invalid.Msg)
	return invalid
}

// mustJSON decodes a JSON object literal for patches, keeping numbers exact.
func mustJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	v, err := decodeJSON([]byte(s))
	require.NoError(t, err)
	m, ok := v.(map[string]any)
	require.True(t, ok, "not an object: %s", s)
	return m
}

func marshal(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
