package registry

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFreshTwin(t *testing.T) {
	f := newFixture(t)
	d := f.createDevice(t, "d")
	tw, err := f.s.GetTwin("d")
	require.NoError(t, err)

	require.Equal(t, Twin{
		DeviceID:           "d",
		ETag:               "AAAAAAAAAAE=",
		DeviceETag:         d.ETag,
		Status:             StatusEnabled,
		ConnectionState:    Disconnected,
		AuthenticationType: "sas",
		Version:            2,
		Properties: TwinProperties{
			// Stamped with the creation time, as IoT Hub does, not the zero time.
			Desired:  map[string]any{"$metadata": map[string]any{"$lastUpdated": t0Meta}, "$version": int64(1)},
			Reported: map[string]any{"$metadata": map[string]any{"$lastUpdated": t0Meta}, "$version": int64(1)},
		},
	}, tw)

	body, err := f.s.DeviceTwin("d")
	require.NoError(t, err)
	require.Equal(t, `{"desired":{"$version":1},"reported":{"$version":1}}`, string(body))
}

func TestPatchReportedMergeDeleteMetadata(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")

	v, err := f.s.PatchReported("d", json.RawMessage(`{"fw":"1.0","net":{"kind":"wifi","rssi":-40},"big":4503599627370495,"pi":3.14159265358979323846,"list":[1,"a",{"x":null}]}`))
	require.NoError(t, err)
	require.EqualValues(t, 2, v)

	t1 := t0.Add(1500 * time.Millisecond)
	f.clock.Set(t1)
	v, err = f.s.PatchReported("d", json.RawMessage(`{"net":{"rssi":-50,"ssid":null},"fw":null,"list":"scalar"}`))
	require.NoError(t, err)
	require.EqualValues(t, 3, v)

	tw, err := f.s.GetTwin("d")
	require.NoError(t, err)
	require.EqualValues(t, 4, tw.Version, "reported changes count as twin versions")
	require.Equal(t, twinETag(3), tw.ETag)
	const t1Meta = "2024-05-06T07:08:10.6234567Z"
	require.JSONEq(t, `{
		"big":4503599627370495,"pi":3.14159265358979323846,"list":"scalar",
		"net":{"kind":"wifi","rssi":-50},
		"$metadata":{
			"$lastUpdated":"`+t1Meta+`",
			"big":{"$lastUpdated":"`+t0Meta+`"},
			"pi":{"$lastUpdated":"`+t0Meta+`"},
			"list":{"$lastUpdated":"`+t1Meta+`"},
			"net":{"$lastUpdated":"`+t1Meta+`",
				"kind":{"$lastUpdated":"`+t0Meta+`"},
				"rssi":{"$lastUpdated":"`+t1Meta+`"}}},
		"$version":3}`, marshal(t, tw.Properties.Reported))
	require.Equal(t, json.Number("4503599627370495"), tw.Properties.Reported["big"], "numbers stay exact")

	body, err := f.s.DeviceTwin("d")
	require.NoError(t, err)
	require.Equal(t, `{"desired":{"$version":1},"reported":{"big":4503599627370495,"list":"scalar","net":{"kind":"wifi","rssi":-50},"pi":3.14159265358979323846,"$version":3}}`, string(body))
}

func TestPatchReportedTypeChanges(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	steps := []struct {
		patch string
		want  string
	}{
		{`{"a":1}`, `{"a":1}`},
		{`{"a":{"b":true}}`, `{"a":{"b":true}}`},        // object replaces primitive
		{`{"a":{"c":"x"}}`, `{"a":{"b":true,"c":"x"}}`}, // objects merge
		{`{"a":"flat"}`, `{"a":"flat"}`},                // primitive replaces object
		{`{"a":{"n":null,"m":1}}`, `{"a":{"m":1}}`},     // nulls inside a new object are no-ops
		{`{"a":{"m":null}}`, `{"a":{}}`},                // emptied objects stay
		{`{"a":null,"gone":null}`, `{}`},                // deleting an absent key is fine
		{`{"arr":[[1,2],{"k":[true]}]}`, `{"arr":[[1,2],{"k":[true]}]}`},
	}
	for i, st := range steps {
		_, err := f.s.PatchReported("d", json.RawMessage(st.patch))
		require.NoError(t, err, st.patch)
		tw, err := f.s.GetTwin("d")
		require.NoError(t, err)
		delete(tw.Properties.Reported, "$metadata")
		require.EqualValues(t, i+2, tw.Properties.Reported["$version"])
		delete(tw.Properties.Reported, "$version")
		require.JSONEq(t, st.want, marshal(t, tw.Properties.Reported), "after %s", st.patch)
	}
}

func TestPatchTwinTagsAndDesired(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")

	tw, err := f.s.PatchTwin("d", TwinPatch{
		Tags:    mustJSON(t, `{"site":"north","loc":{"floor":3}}`),
		Desired: mustJSON(t, `{"interval":30,"cfg":{"mode":"eco","level":2}}`),
	}, "")
	require.NoError(t, err)
	require.EqualValues(t, 3, tw.Version)
	require.Equal(t, twinETag(2), tw.ETag)
	require.JSONEq(t, `{"site":"north","loc":{"floor":3}}`, marshal(t, tw.Tags))

	t1 := t0.Add(time.Second)
	f.clock.Set(t1)
	tw, err = f.s.PatchTwin("d", TwinPatch{Desired: mustJSON(t, `{"cfg":{"level":null,"x":1}}`)}, tw.ETag)
	require.NoError(t, err)
	require.EqualValues(t, 4, tw.Version)
	const t1Meta = "2024-05-06T07:08:10.1234567Z"
	require.JSONEq(t, `{
		"interval":30,"cfg":{"mode":"eco","x":1},
		"$metadata":{
			"$lastUpdated":"`+t1Meta+`","$lastUpdatedVersion":3,
			"interval":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":2},
			"cfg":{"$lastUpdated":"`+t1Meta+`","$lastUpdatedVersion":3,
				"mode":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":2},
				"x":{"$lastUpdated":"`+t1Meta+`","$lastUpdatedVersion":3}}},
		"$version":3}`, marshal(t, tw.Properties.Desired))

	// Tags only: desired $version stays.
	tw, err = f.s.PatchTwin("d", TwinPatch{Tags: mustJSON(t, `{"loc":null}`)}, "*")
	require.NoError(t, err)
	require.EqualValues(t, 5, tw.Version)
	require.EqualValues(t, 3, tw.Properties.Desired["$version"])
	require.JSONEq(t, `{"site":"north"}`, marshal(t, tw.Tags))

	// Neither: nothing changes, nothing is emitted.
	before := len(f.rec.all())
	same, err := f.s.PatchTwin("d", TwinPatch{}, "")
	require.NoError(t, err)
	require.Equal(t, tw, same)
	require.Len(t, f.rec.all(), before)

	body, err := f.s.DeviceTwin("d")
	require.NoError(t, err)
	require.Equal(t, `{"desired":{"cfg":{"mode":"eco","x":1},"interval":30,"$version":3},"reported":{"$version":1}}`, string(body))
}

func TestPatchTwinIgnoresReadOnlyKeys(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	// What the Go SDK sends back after a GET: $metadata and $version included.
	tw, err := f.s.PatchTwin("d", TwinPatch{Desired: mustJSON(t, `{"a":1,"$metadata":{"$lastUpdated":"x"},"$version":1}`)}, "")
	require.NoError(t, err)
	require.EqualValues(t, 2, tw.Properties.Desired["$version"])
	require.Equal(t, json.Number("1"), tw.Properties.Desired["a"])
}

func TestPatchTwinAcceptsDecodedFloatsAndInts(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	tw, err := f.s.PatchTwin("d", TwinPatch{Desired: map[string]any{"f": 1.5, "i": float64(7), "n": 42, "u": uint32(3)}}, "")
	require.NoError(t, err)
	for k, want := range map[string]json.Number{"f": "1.5", "i": "7", "n": "42", "u": "3"} {
		require.Equal(t, want, tw.Properties.Desired[k], k)
	}
	_, err = f.s.PatchTwin("d", TwinPatch{Desired: map[string]any{"big": float64(1 << 53)}}, "")
	requireInvalid(t, err, ReasonArgument)
	_, err = f.s.PatchTwin("d", TwinPatch{Desired: map[string]any{"bad": struct{}{}}}, "")
	requireInvalid(t, err, ReasonArgument)
}

func TestReplaceTwin(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	_, err := f.s.PatchTwin("d", TwinPatch{
		Tags:    mustJSON(t, `{"old":1}`),
		Desired: mustJSON(t, `{"old":1}`),
	}, "")
	require.NoError(t, err)
	_, err = f.s.PatchReported("d", json.RawMessage(`{"r":1}`))
	require.NoError(t, err)

	tw, err := f.s.ReplaceTwin("d", TwinPatch{
		Tags:    mustJSON(t, `{"new":{"x":1},"dropped":null}`),
		Desired: mustJSON(t, `{"mode":"on"}`),
	}, "")
	require.NoError(t, err)
	require.EqualValues(t, 5, tw.Version)
	require.Equal(t, twinETag(4), tw.ETag)
	require.JSONEq(t, `{"new":{"x":1}}`, marshal(t, tw.Tags))
	require.JSONEq(t, `{"mode":"on","$metadata":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":3,
		"mode":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":3}},"$version":3}`, marshal(t, tw.Properties.Desired))
	require.EqualValues(t, 2, tw.Properties.Reported["$version"], "replace leaves reported alone")
	require.Equal(t, json.Number("1"), tw.Properties.Reported["r"])

	tw, err = f.s.ReplaceTwin("d", TwinPatch{}, "")
	require.NoError(t, err)
	require.Nil(t, tw.Tags)
	require.EqualValues(t, 4, tw.Properties.Desired["$version"])
	require.NotContains(t, tw.Properties.Desired, "mode")
}

func TestTwinUnknownDevice(t *testing.T) {
	f := newFixture(t)
	_, err := f.s.GetTwin("x")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, err = f.s.PatchTwin("x", TwinPatch{Tags: map[string]any{}}, "")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, err = f.s.ReplaceTwin("x", TwinPatch{}, "")
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, err = f.s.PatchReported("x", json.RawMessage(`{}`))
	require.ErrorIs(t, err, ErrDeviceNotFound)
	_, err = f.s.DeviceTwin("x")
	require.ErrorIs(t, err, ErrDeviceNotFound)
}

func TestReopenKeepsTwins(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "a")
	f.createDevice(t, "b")
	_, err := f.s.PatchTwin("a", TwinPatch{Tags: mustJSON(t, `{"t":"x"}`), Desired: mustJSON(t, `{"d":[1,2.50,"s"]}`)}, "")
	require.NoError(t, err)
	_, err = f.s.PatchReported("a", json.RawMessage(`{"r":{"n":-4503599627370496}}`))
	require.NoError(t, err)
	before, err := f.s.Twins()
	require.NoError(t, err)
	beforeBody, err := f.s.DeviceTwin("a")
	require.NoError(t, err)

	f.reopen(t)
	after, err := f.s.Twins()
	require.NoError(t, err)
	require.Equal(t, before, after)
	require.Len(t, after, 2)
	require.Equal(t, "a", after[0].DeviceID)
	require.Equal(t, "b", after[1].DeviceID)
	afterBody, err := f.s.DeviceTwin("a")
	require.NoError(t, err)
	require.Equal(t, string(beforeBody), string(afterBody))
	require.Contains(t, string(afterBody), `"d":[1,2.50,"s"]`, "number text survives storage")

	// Versions continue where they were.
	v, err := f.s.PatchReported("a", json.RawMessage(`{"r":null}`))
	require.NoError(t, err)
	require.EqualValues(t, 3, v)
}

func TestDesiredLastUpdatedVersionOnRoot(t *testing.T) {
	// A never-patched desired root has no $lastUpdatedVersion (reference §3.4).
	root := newObject()
	require.Equal(t, map[string]any{"$lastUpdated": "0001-01-01T00:00:00Z"}, root.metadata(true))
}
