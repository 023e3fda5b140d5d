package registry

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCreateDeviceDefaults(t *testing.T) {
	f := newFixture(t)
	d := f.createDevice(t, "dev-1")

	require.Equal(t, "dev-1", d.DeviceID)
	require.Regexp(t, regexp.MustCompile(`^[1-9][0-9]{17}$`), d.GenerationID)
	etag, err := base64.StdEncoding.DecodeString(d.ETag)
	require.NoError(t, err)
	_, err = strconv.ParseUint(string(etag), 10, 64)
	require.NoError(t, err, "device etag is base64 of a decimal counter")
	require.Equal(t, StatusEnabled, d.Status)
	require.Equal(t, Disconnected, d.ConnectionState)
	require.Equal(t, "sas", d.Authentication.Type)
	require.True(t, validKey(d.Authentication.SymmetricKey.PrimaryKey))
	require.True(t, validKey(d.Authentication.SymmetricKey.SecondaryKey))
	require.NotEqual(t, d.Authentication.SymmetricKey.PrimaryKey, d.Authentication.SymmetricKey.SecondaryKey)

	got, err := f.s.GetDevice("dev-1")
	require.NoError(t, err)
	require.Equal(t, d, got)

	// Never-happened times are zero; how they are spelled is the API's job.
	require.True(t, got.ConnectionStateUpdatedTime.IsZero())
	require.True(t, got.StatusUpdatedTime.IsZero())
	require.True(t, got.LastActivityTime.IsZero())
	require.Nil(t, got.StatusReason)
	require.Nil(t, got.DeviceScope)
	require.Empty(t, got.ParentScopes)
	require.Equal(t, Capabilities{}, got.Capabilities)
}

func TestCreateDeviceKeepsValidKeys(t *testing.T) {
	f := newFixture(t)
	primary := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))                                 // 16 bytes
	secondary := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 64)))                          // 64 bytes
	d, err := f.s.CreateDevice(Device{DeviceID: "d", Status: StatusDisabled, Authentication: Authentication{ // type defaults to sas
		SymmetricKey: SymmetricKey{PrimaryKey: primary, SecondaryKey: secondary},
	}})
	require.NoError(t, err)
	require.Equal(t, SymmetricKey{PrimaryKey: primary, SecondaryKey: secondary}, d.Authentication.SymmetricKey)
	require.Equal(t, StatusDisabled, d.Status)

	keys, enabled, gen, err := f.s.DeviceKeys("d")
	require.NoError(t, err)
	require.Equal(t, d.Authentication.SymmetricKey, keys)
	require.False(t, enabled)
	require.Equal(t, d.GenerationID, gen)
}

func TestCreateDeviceRejects(t *testing.T) {
	short := base64.StdEncoding.EncodeToString(make([]byte, 15))
	long := base64.StdEncoding.EncodeToString(make([]byte, 65))
	tests := []struct {
		name string
		d    Device
	}{
		{"empty id", Device{}},
		{"id with slash", Device{DeviceID: "a/b"}},
		{"id with space", Device{DeviceID: "a b"}},
		{"id too long", Device{DeviceID: strings.Repeat("a", 129)}},
		{"x509 auth", Device{DeviceID: "d", Authentication: Authentication{Type: "selfSigned"}}},
		{"bad status", Device{DeviceID: "d", Status: "Enabled"}},
		{"key not base64", Device{DeviceID: "d", Authentication: Authentication{SymmetricKey: SymmetricKey{PrimaryKey: "not base64!"}}}},
		{"key too short", Device{DeviceID: "d", Authentication: Authentication{SymmetricKey: SymmetricKey{PrimaryKey: short}}}},
		{"key too long", Device{DeviceID: "d", Authentication: Authentication{SymmetricKey: SymmetricKey{SecondaryKey: long}}}},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.s.CreateDevice(tt.d)
			requireInvalid(t, err, ReasonArgument)
		})
	}
	stats, err := f.s.Stats()
	require.NoError(t, err)
	require.Zero(t, stats.TotalDeviceCount)
	require.Empty(t, f.rec.all(), "rejected creates emit nothing")
}

// IoT Hub's id characters include ':' (MAC addresses) and ';'.
func TestCreateDeviceAcceptsAllIDCharacters(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"aZ09-.+%_#*?!(),=@$'", "AA:BB:CC:DD:EE:FF", "site;1"} {
		f.createDevice(t, id)
		_, err := f.s.GetDevice(id)
		require.NoError(t, err, id)
	}
}

func TestCreateDeviceConflict(t *testing.T) {
	f := newFixture(t)
	first := f.createDevice(t, "d")
	_, err := f.s.CreateDevice(Device{DeviceID: "d"})
	require.ErrorIs(t, err, ErrDeviceExists)
	got, err := f.s.GetDevice("d")
	require.NoError(t, err)
	require.Equal(t, first, got, "a failed create changes nothing")
}

func TestGetDeleteUnknownDevice(t *testing.T) {
	f := newFixture(t)
	_, err := f.s.GetDevice("nope")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	require.ErrorIs(t, f.s.DeleteDevice("nope", "*"), ErrDeviceNotFound)
	_, err = f.s.UpdateDevice(Device{DeviceID: "nope"}, "*")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, _, _, err = f.s.DeviceKeys("nope")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	require.False(t, f.s.DeviceExists("nope"))
}

func TestIfMatchForms(t *testing.T) {
	tests := []struct {
		name    string
		ifMatch func(etag string) string
		ok      bool
	}{
		{"absent", func(string) string { return "" }, true},
		{"star", func(string) string { return "*" }, true},
		{"quoted star", func(string) string { return `"*"` }, true},
		{"quoted etag", func(e string) string { return `"` + e + `"` }, true},
		{"bare etag", func(e string) string { return e }, true},
		{"stale etag", func(string) string { return `"MTIz"` }, false},
		{"bare stale etag", func(string) string { return "MTIz" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			d := f.createDevice(t, "d")

			_, err := f.s.UpdateDevice(Device{DeviceID: "d", Status: StatusDisabled}, tt.ifMatch(d.ETag))
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrPreconditionFailed)
			}

			d, err = f.s.GetDevice("d")
			require.NoError(t, err)
			err = f.s.DeleteDevice("d", tt.ifMatch(d.ETag))
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrPreconditionFailed)
				_, err = f.s.GetDevice("d")
				require.NoError(t, err, "a refused delete keeps the device")
			}

			if !tt.ok {
				tw, err := f.s.GetTwin("d")
				require.NoError(t, err)
				_, err = f.s.PatchTwin("d", TwinPatch{Tags: map[string]any{"a": "b"}}, tt.ifMatch(tw.ETag))
				require.ErrorIs(t, err, ErrPreconditionFailed)
				_, err = f.s.ReplaceTwin("d", TwinPatch{}, tt.ifMatch(tw.ETag))
				require.ErrorIs(t, err, ErrPreconditionFailed)
				after, err := f.s.GetTwin("d")
				require.NoError(t, err)
				require.Equal(t, tw, after)
				return
			}
			f.createDevice(t, "e")
			tw, err := f.s.GetTwin("e")
			require.NoError(t, err)
			_, err = f.s.PatchTwin("e", TwinPatch{Tags: map[string]any{"a": "b"}}, tt.ifMatch(tw.ETag))
			require.NoError(t, err)
			tw, err = f.s.GetTwin("e")
			require.NoError(t, err)
			_, err = f.s.ReplaceTwin("e", TwinPatch{}, tt.ifMatch(tw.ETag))
			require.NoError(t, err)
		})
	}
}

func TestUpdateDevice(t *testing.T) {
	f := newFixture(t)
	d := f.createDevice(t, "d")
	oldKeys := d.Authentication.SymmetricKey

	f.clock.Set(t0.Add(time.Minute))
	reason := "maintenance"
	newPrimary := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123"))
	u, err := f.s.UpdateDevice(Device{
		DeviceID:       "d",
		Status:         StatusDisabled,
		StatusReason:   &reason,
		Authentication: Authentication{SymmetricKey: SymmetricKey{PrimaryKey: newPrimary}},
		Capabilities:   Capabilities{IotEdge: true},
		GenerationID:   "ignored",
		ETag:           "ignored",
	}, `"`+d.ETag+`"`)
	require.NoError(t, err)
	require.Equal(t, StatusDisabled, u.Status)
	require.Equal(t, &reason, u.StatusReason)
	require.Equal(t, t0.Add(time.Minute), u.StatusUpdatedTime)
	require.Equal(t, newPrimary, u.Authentication.SymmetricKey.PrimaryKey)
	require.Equal(t, oldKeys.SecondaryKey, u.Authentication.SymmetricKey.SecondaryKey, "an empty key keeps the current one")
	require.True(t, u.Capabilities.IotEdge)
	require.Equal(t, d.GenerationID, u.GenerationID)
	require.NotEqual(t, d.ETag, u.ETag)

	keys, enabled, _, err := f.s.DeviceKeys("d")
	require.NoError(t, err)
	require.False(t, enabled, "the key cache follows writes")
	require.Equal(t, u.Authentication.SymmetricKey, keys)

	// The old etag is stale now.
	_, err = f.s.UpdateDevice(Device{DeviceID: "d"}, d.ETag)
	require.ErrorIs(t, err, ErrPreconditionFailed)

	// Same status: statusUpdatedTime stays.
	f.clock.Set(t0.Add(time.Hour))
	u2, err := f.s.UpdateDevice(Device{DeviceID: "d", Status: StatusDisabled}, "*")
	require.NoError(t, err)
	require.Equal(t, t0.Add(time.Minute), u2.StatusUpdatedTime)
	require.Nil(t, u2.StatusReason)

	_, err = f.s.UpdateDevice(Device{DeviceID: "d", Status: "paused"}, "*")
	requireInvalid(t, err, ReasonArgument)
	require.Empty(t, filterOps(f.rec.all(), OpUpdateTwin), "device updates are not twin changes")
}

func filterOps(ns []Notification, op string) []Notification {
	var out []Notification
	for _, n := range ns {
		if n.OpType == op {
			out = append(out, n)
		}
	}
	return out
}

func TestDeleteDeviceRemovesTwinAndKeys(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	require.True(t, f.s.DeviceExists("d"))
	_, err := f.s.PatchReported("d", json.RawMessage(`{"a":1}`))
	require.NoError(t, err)
	require.NoError(t, f.s.DeleteDevice("d", ""))

	_, err = f.s.GetTwin("d")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, err = f.s.DeviceTwin("d")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, err = f.s.PatchReported("d", json.RawMessage(`{"a":2}`))
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, _, _, err = f.s.DeviceKeys("d")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	require.False(t, f.s.DeviceExists("d"), "the in-memory view forgets a deleted device before DeleteDevice returns")

	// A new device under the old id starts afresh.
	f.createDevice(t, "d")
	require.True(t, f.s.DeviceExists("d"))
	tw, err := f.s.GetTwin("d")
	require.NoError(t, err)
	require.EqualValues(t, 2, tw.Version)
	require.NotContains(t, tw.Properties.Reported, "a")
}

func TestListDevicesAndStats(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"c", "a", "b", "d"} {
		f.createDevice(t, id)
	}
	_, err := f.s.UpdateDevice(Device{DeviceID: "b", Status: StatusDisabled}, "*")
	require.NoError(t, err)

	tests := []struct {
		top  int
		want []string
	}{
		{0, []string{"a", "b", "c", "d"}},
		{-1, []string{"a", "b", "c", "d"}},
		{2, []string{"a", "b"}},
		{5000, []string{"a", "b", "c", "d"}},
	}
	for _, tt := range tests {
		ds, err := f.s.ListDevices(tt.top)
		require.NoError(t, err)
		var ids []string
		for _, d := range ds {
			ids = append(ids, d.DeviceID)
		}
		require.Equal(t, tt.want, ids, "top=%d", tt.top)
	}

	stats, err := f.s.Stats()
	require.NoError(t, err)
	require.Equal(t, DeviceStats{TotalDeviceCount: 4, EnabledDeviceCount: 3, DisabledDeviceCount: 1}, stats)
	f.reopen(t)
	stats, err = f.s.Stats()
	require.NoError(t, err)
	require.Equal(t, DeviceStats{TotalDeviceCount: 4, EnabledDeviceCount: 3, DisabledDeviceCount: 1}, stats)
}

func TestLiveConnectionState(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	connectedAt := time.Date(2024, 5, 6, 9, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	f.s.SetConnected("d", true, connectedAt)
	f.s.SetConnected("unknown", true, connectedAt) // ignored

	d, err := f.s.GetDevice("d")
	require.NoError(t, err)
	require.Equal(t, Connected, d.ConnectionState)
	require.Equal(t, connectedAt.UTC(), d.ConnectionStateUpdatedTime)
	require.Equal(t, connectedAt.UTC(), d.LastActivityTime)

	f.s.TouchActivity("d", connectedAt.Add(time.Minute))
	f.s.TouchActivity("d", connectedAt.Add(-time.Hour)) // older: ignored
	tw, err := f.s.GetTwin("d")
	require.NoError(t, err)
	require.Equal(t, Connected, tw.ConnectionState)
	require.Equal(t, connectedAt.Add(time.Minute).UTC(), tw.LastActivityTime)

	ds, err := f.s.ListDevices(0)
	require.NoError(t, err)
	require.Equal(t, Connected, ds[0].ConnectionState)

	f.s.SetConnected("d", false, connectedAt.Add(2*time.Minute))
	d, err = f.s.GetDevice("d")
	require.NoError(t, err)
	require.Equal(t, Disconnected, d.ConnectionState)

	f.s.SetConnected("d", true, connectedAt)
	f.reopen(t)
	d, err = f.s.GetDevice("d")
	require.NoError(t, err)
	require.Equal(t, Disconnected, d.ConnectionState, "connection state is not persisted")
	require.True(t, d.LastActivityTime.IsZero())
}

func TestReopenKeepsDevices(t *testing.T) {
	f := newFixture(t)
	d := f.createDevice(t, "d")
	f.reopen(t)
	got, err := f.s.GetDevice("d")
	require.NoError(t, err)
	require.Equal(t, d, got)
	require.True(t, f.s.DeviceExists("d"), "loaded from the file")
	keys, enabled, gen, err := f.s.DeviceKeys("d")
	require.NoError(t, err)
	require.Equal(t, d.Authentication.SymmetricKey, keys)
	require.True(t, enabled)
	require.Equal(t, d.GenerationID, gen)

	// Etags keep increasing across restarts.
	e := f.createDevice(t, "e")
	require.NotEqual(t, d.ETag, e.ETag)
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(Options{})
	require.Error(t, err)
	_, err = Open(Options{Path: t.TempDir()}) // a directory
	require.Error(t, err)
}

// A second store on a file another one holds fails at once, saying who
// holds it, instead of waiting for bbolt's lock and failing with "timeout".
func TestOpenHeldFileFailsAtOnce(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	_, err := Open(Options{Path: f.path})
	require.ErrorIs(t, err, ErrInUse)
	require.ErrorContains(t, err, "open "+f.path+": in use by another process: another local hub (or make run)")
	// bbolt retries every 50 ms; a wait would show as at least one retry.
	require.Less(t, time.Since(start), 45*time.Millisecond, "Open waited for the lock")

	// The holder is unaffected.
	f.createDevice(t, "d")
}
