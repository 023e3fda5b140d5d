package rest

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/query"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// roundTripTwinDocuments is how queries read twins before the cache:
// every twin from bbolt, then json.Marshal and json.Unmarshal of them
// all. It is the oracle the direct documents are checked against and the
// floor of BenchmarkTwinQuery.
func roundTripTwinDocuments(reg *registry.Store) ([]map[string]any, error) {
	twins, err := reg.Twins()
	if err != nil {
		return nil, err
	}
	wire := make([]twinJSON, len(twins))
	for i, tw := range twins {
		wire[i] = toTwinJSON(tw)
	}
	return asDocuments(wire)
}

// asDocuments is the JSON round trip of a slice: how query documents were
// made before they were built directly, kept as the oracle.
func asDocuments(v any) ([]map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode documents: %w", err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(b, &docs); err != nil {
		return nil, fmt.Errorf("decode documents: %w", err)
	}
	return docs, nil
}

func jsonObject(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.Nil(t, unmarshal([]byte(s), &m))
	return m
}

// variedTwins is a registry whose twins cover every kind of field a twin
// document has: tags and none, desired and reported with nested objects,
// arrays (of objects, of arrays, empty), numbers (integers up to IoT Hub's
// bound, fractions, exponents, negative zero), dates, strings that JSON
// escapes, a disabled device with a status reason, connected and
// disconnected devices with and without activity.
func variedTwins(t testing.TB) *registry.Store {
	t.Helper()
	reg, err := registry.Open(registry.Options{Path: filepath.Join(t.TempDir(), "registry.db")})
	require.NoError(t, err)
	t.Cleanup(func() { reg.Close() })

	for _, id := range []string{"fresh", "tagged", "disabled", "connected", "left", "arrays", "numbers"} {
		_, err := reg.CreateDevice(registry.Device{DeviceID: id})
		require.NoError(t, err)
	}
	reason := "maintenance <window> & \u2028 \"quoted\""
	_, err = reg.UpdateDevice(registry.Device{DeviceID: "disabled", Status: registry.StatusDisabled, StatusReason: &reason}, "*")
	require.NoError(t, err)

	_, err = reg.PatchTwin("tagged", registry.TwinPatch{
		Tags:    jsonObject(t, `{"site":"plant-7","fleet":{"wave":3,"ids":["a","b"],"deep":{"deeper":{"x":true}}},"when":"2024-05-06T07:08:09.1234567+02:00"}`),
		Desired: jsonObject(t, `{"interval":30,"cfg":{"mode":"eco","limits":[1,2.5,-3e-7]}}`),
	}, "")
	require.NoError(t, err)
	_, err = reg.PatchReported("tagged", json.RawMessage(`{"iothubDM":{"reboot":{"lastReboot":"2024-05-06T07:08:10Z","status":"rebooted"}},"temp":21.5}`))
	require.NoError(t, err)

	_, err = reg.PatchReported("arrays", json.RawMessage(`{"empty":[],"objs":[{"a":1},{"b":[{"c":"d"}]},[]],"emptyObj":{}}`))
	require.NoError(t, err)
	_, err = reg.PatchTwin("numbers", registry.TwinPatch{
		Tags:    jsonObject(t, `{"max":4503599627370495,"min":-4503599627370496,"zero":0,"negZero":-0.0,"big":1.7976931348623157e308,"tiny":5e-324,"exp":1E+2,"frac":0.1}`),
		Desired: jsonObject(t, `{"unicode":"h\u00e9llo \ud83d\ude00 <&>","esc":"tab\tnl\n"}`),
	}, "")
	require.NoError(t, err)

	reg.SetConnected("connected", true, time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC))
	reg.SetConnected("left", true, time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC))
	reg.TouchActivity("left", time.Date(2024, 5, 6, 7, 1, 2, 300, time.UTC))
	reg.SetConnected("left", false, time.Date(2024, 5, 6, 7, 2, 0, 0, time.UTC))
	return reg
}

// The documents queries read are exactly what the JSON round trip made of
// the same twins, and every twin the registry can hold takes the direct
// path (no round trip).
func TestTwinDocumentsEqualRoundTrip(t *testing.T) {
	reg := variedTwins(t)
	want, err := roundTripTwinDocuments(reg)
	require.NoError(t, err)
	got, err := twinDocuments(reg)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Len(t, got, 7)

	twins, err := reg.Twins()
	require.NoError(t, err)
	for _, tw := range twins {
		_, ok := directTwinDocument(toTwinJSON(tw))
		require.True(t, ok, "twin %s took the round trip", tw.DeviceID)
	}

	// A second read is served from the cache and still equal.
	again, err := twinDocuments(reg)
	require.NoError(t, err)
	require.Equal(t, want, again)

	// Changes of live state only are applied to the cached documents
	// (liveTwinDocument); they still equal the round trip, and the
	// documents read before are unchanged.
	reg.SetConnected("fresh", true, time.Date(2024, 5, 6, 8, 0, 0, 1, time.UTC))
	reg.TouchActivity("connected", time.Date(2024, 5, 6, 8, 0, 1, 0, time.FixedZone("X", 3600)))
	reg.SetConnected("connected", false, time.Date(2024, 5, 6, 8, 0, 2, 0, time.UTC))
	live, err := twinDocuments(reg)
	require.NoError(t, err)
	wantLive, err := roundTripTwinDocuments(reg)
	require.NoError(t, err)
	require.Equal(t, wantLive, live)
	require.NotEqual(t, want, wantLive)
	require.Equal(t, want, again, "documents read before were modified")
}

// Values the registry never holds but a Twin could: the direct build
// refuses them, and twinDocument gives what the round trip gives, the
// same document or the same failure.
func TestTwinDocumentOutsideDirectPath(t *testing.T) {
	base := func() registry.Twin {
		return registry.Twin{DeviceID: "d", Status: "enabled", Properties: registry.TwinProperties{
			Desired: map[string]any{"$version": int64(1)}, Reported: map[string]any{"$version": int64(1)},
		}}
	}
	for name, mutate := range map[string]func(*registry.Twin){
		"invalid UTF-8 value":      func(tw *registry.Twin) { tw.Tags = map[string]any{"k": "a\xffb"} },
		"invalid UTF-8 key":        func(tw *registry.Twin) { tw.Tags = map[string]any{"k\xfe": "v"} },
		"invalid UTF-8 device id":  func(tw *registry.Twin) { tw.DeviceID = "\xc3" },
		"integer beyond 2^53":      func(tw *registry.Twin) { tw.Version = 1<<53 + 1 },
		"int beyond 2^53":          func(tw *registry.Twin) { tw.Tags = map[string]any{"n": int(-(1 << 53) - 3)} },
		"number overflowing":       func(tw *registry.Twin) { tw.Tags = map[string]any{"n": json.Number("1e400")} },
		"number not JSON":          func(tw *registry.Twin) { tw.Tags = map[string]any{"n": json.Number("+1")} },
		"number empty":             func(tw *registry.Twin) { tw.Tags = map[string]any{"n": json.Number("")} },
		"number hex":               func(tw *registry.Twin) { tw.Tags = map[string]any{"n": json.Number("0x10")} },
		"NaN":                      func(tw *registry.Twin) { tw.Tags = map[string]any{"n": math.NaN()} },
		"infinity":                 func(tw *registry.Twin) { tw.Tags = map[string]any{"n": math.Inf(-1)} },
		"year 10000":               func(tw *registry.Twin) { tw.LastActivityTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"unexpected type":          func(tw *registry.Twin) { tw.Tags = map[string]any{"n": uint8(7)} },
		"nil sections":             func(tw *registry.Twin) { tw.Properties = registry.TwinProperties{} },
		"nil array and nil object": func(tw *registry.Twin) { tw.Tags = map[string]any{"a": []any(nil), "o": map[string]any(nil)} },
	} {
		t.Run(name, func(t *testing.T) {
			tw := base()
			mutate(&tw)
			want, wantErr := roundTripDocument(toTwinJSON(tw))
			got, gotErr := twinDocument(tw)
			require.Equal(t, wantErr != nil, gotErr != nil, "round trip: %v, twinDocument: %v", wantErr, gotErr)
			require.Equal(t, want, got)
		})
	}
}

// FuzzTwinDocument: for any JSON object as tags and desired, the direct
// document is the round trip's, or the direct build stands aside.
func FuzzTwinDocument(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,2.5,null,{"c":"d"}]},"n":-0.0,"e":1e308}`))
	f.Add([]byte(`{"s":"\u00e9\u2028<&>","t":true,"f":false,"z":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var obj map[string]any
		if unmarshal(data, &obj) != nil || obj == nil {
			return
		}
		tw := registry.Twin{DeviceID: "d", Tags: obj, Properties: registry.TwinProperties{Desired: obj, Reported: map[string]any{}}}
		want, wantErr := roundTripDocument(toTwinJSON(tw))
		got, gotErr := twinDocument(tw)
		require.Equal(t, wantErr != nil, gotErr != nil, "round trip: %v, twinDocument: %v", wantErr, gotErr)
		require.Equal(t, want, got)
	})
}

// Queries of every kind leave the shared documents as they were, and
// reading them again gives equal results.
func TestQueriesDoNotModifyCachedDocuments(t *testing.T) {
	reg := variedTwins(t)
	docs, err := twinDocuments(reg)
	require.NoError(t, err)
	before, err := roundTripTwinDocuments(reg)
	require.NoError(t, err)

	for _, text := range []string{
		"SELECT * FROM devices",
		"SELECT TOP 2 * FROM devices WHERE status = 'enabled'",
		"SELECT deviceId, tags.fleet AS fleet, properties.reported AS reported FROM devices",
		"SELECT properties.desired.cfg FROM devices WHERE IS_DEFINED(properties.desired.cfg.limits)",
		"SELECT COUNT() AS n, status FROM devices GROUP BY status",
		"SELECT COUNT() AS n FROM devices GROUP BY tags.fleet",
		"SELECT MIN(tags.numbers) AS lo, MAX(version) AS hi, SUM(version) AS s, AVG(version) AS a FROM devices",
		"SELECT deviceId FROM devices WHERE properties.reported.temp > 20 AND connectionState = 'Disconnected'",
	} {
		q, err := query.Parse(text)
		require.NoError(t, err, text)
		first, herr := runQuery(Deps{Registry: reg}, q)
		require.Nil(t, herr, text)
		// Encoding the items, as the handler does, must not change them.
		_, err = json.Marshal(first.Items)
		require.NoError(t, err)
		second, herr := runQuery(Deps{Registry: reg}, q)
		require.Nil(t, herr, text)
		require.Equal(t, first, second, text)
	}
	require.Equal(t, before, docs, "a query modified the cached documents")
	after, err := twinDocuments(reg)
	require.NoError(t, err)
	require.Equal(t, before, after)
}

// devices.jobs documents built directly are what the JSON round trip of
// the same items gives: method answers with every kind of payload, twin
// updates, failures, pending devices; payloads that are not JSON fail
// alike.
func TestDeviceJobDocumentsEqualRoundTrip(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456700, time.UTC)
	base := jobs.DeviceJob{JobID: "j1", DeviceID: "d1", Type: "scheduleDeviceMethod", Status: "completed",
		StartTime: at, EndTime: at.Add(time.Hour), CreatedTime: at, LastUpdatedTime: at.Add(1500 * time.Millisecond)}
	var items []jobs.DeviceJob
	for _, payload := range []string{`null`, `{"rebooting":true,"in":{"s":1.5,"big":1e300}}`, `[1,"two",null,{}]`, `"not json \u003c&\u003e"`, ` 42 `, `-0`} {
		dj := base
		dj.Response = &jobs.MethodResponse{Status: 200, Payload: []byte(payload)}
		items = append(items, dj)
	}
	pending := base
	pending.Status, pending.StartTime, pending.LastUpdatedTime = "pending", time.Time{}, time.Time{}
	failed := base
	failed.Status, failed.Error = "failed", &jobs.DeviceError{Code: "DeviceNotOnline", Description: "The device is not <online> & \u2028"}
	twin := base
	twin.Type = "scheduleUpdateTwin"
	noPayload := base
	noPayload.Response = &jobs.MethodResponse{Status: 404}
	items = append(items, pending, failed, twin, noPayload)

	wire := make([]deviceJobJSON, len(items))
	for i, dj := range items {
		wire[i] = toDeviceJobJSON(dj)
	}
	want, err := asDocuments(wire)
	require.NoError(t, err)
	for i, w := range wire {
		got, ok := directDeviceJobDocument(w)
		require.True(t, ok, "item %d took the round trip", i)
		require.Equal(t, want[i], got, "item %d", i)
	}

	for _, bad := range []string{``, `{"a":`, `nope`, `1e400`} {
		dj := base
		dj.Response = &jobs.MethodResponse{Status: 200, Payload: []byte(bad)}
		_, wantErr := roundTripDocument(toDeviceJobJSON(dj))
		_, gotErr := deviceJobDocument(toDeviceJobJSON(dj))
		require.Error(t, wantErr, bad)
		require.Error(t, gotErr, bad)
	}
	dj := base
	dj.DeviceID = "bad\xff"
	want1, err := roundTripDocument(toDeviceJobJSON(dj))
	require.NoError(t, err)
	got1, err := deviceJobDocument(toDeviceJobJSON(dj))
	require.NoError(t, err)
	require.Equal(t, want1, got1)
}

// FuzzDeviceJobDocument: for any payload a device answers a job's method
// with, any error text and any times, the devices.jobs document built
// directly is the round trip's, or both fail alike.
func FuzzDeviceJobDocument(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte, nilPayload bool, status int, text string, sec int64, nsec int64) {
		at := time.Unix(sec, nsec)
		dj := jobs.DeviceJob{JobID: text, DeviceID: text, Type: "scheduleDeviceMethod", Status: "completed",
			StartTime: at, EndTime: at.Add(time.Hour), CreatedTime: at, LastUpdatedTime: at,
			Error: &jobs.DeviceError{Code: text, Description: text}}
		if nilPayload {
			payload = nil
		}
		dj.Response = &jobs.MethodResponse{Status: status, Payload: payload}
		w := toDeviceJobJSON(dj)
		want, wantErr := roundTripDocument(w)
		got, gotErr := deviceJobDocument(w)
		require.Equal(t, wantErr != nil, gotErr != nil, "round trip: %v, direct: %v", wantErr, gotErr)
		require.Equal(t, want, got)
	})
}

// The documents a registry keeps count against twinDocBudget by their
// estimated size, and a budget too small for any leaves every query
// building them, equal to the round trip all the same.
func TestTwinDocsBudget(t *testing.T) {
	reg := variedTwins(t)
	docs, err := twinDocuments(reg)
	require.NoError(t, err)
	var sum int64
	for _, d := range docs {
		sum += docBytes(d)
	}
	require.Positive(t, sum)
	require.Equal(t, sum, reg.CacheBytes(twinDocs))

	tiny := registry.NewTwinCache(func(tw registry.Twin) (any, error) { return twinDocument(tw) }, nil).Bounded(1, docBytes)
	for range 2 {
		vals, err := reg.CachedTwins(tiny)
		require.NoError(t, err)
		want, err := roundTripTwinDocuments(reg)
		require.NoError(t, err)
		require.Len(t, vals, len(want))
		for i := range want {
			require.Equal(t, want[i], vals[i])
		}
		require.Zero(t, reg.CacheBytes(tiny))
	}
}
