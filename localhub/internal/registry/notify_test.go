package registry

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// freshProperties are a new twin's sections, stamped with the creation
// time as on IoT Hub.
const freshProperties = `"properties":{` +
	`"desired":{"$metadata":{"$lastUpdated":"` + t0Meta + `"},"$version":1},` +
	`"reported":{"$metadata":{"$lastUpdated":"` + t0Meta + `"},"$version":1}}`

func TestLifecycleNotifications(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "dev1")
	created := f.rec.last(t)
	require.Equal(t, Notification{
		DeviceID: "dev1",
		Source:   "deviceLifecycleEvents",
		Schema:   "deviceLifecycleNotification",
		OpType:   "createDeviceIdentity",
		Body:     json.RawMessage(`{"deviceId":"dev1","etag":"AAAAAAAAAAE=","version":2,` + freshProperties + `}`),
		Time:     t0,
	}, created)

	_, err := f.s.PatchTwin("dev1", TwinPatch{Tags: mustJSON(t, `{"a":"<b>&"}`)}, "")
	require.NoError(t, err)
	f.clock.Set(t0.Add(time.Hour))
	require.NoError(t, f.s.DeleteDevice("dev1", "*"))
	deleted := f.rec.last(t)
	require.Equal(t, Notification{
		DeviceID: "dev1",
		Source:   "deviceLifecycleEvents",
		Schema:   "deviceLifecycleNotification",
		OpType:   "deleteDeviceIdentity",
		Body:     json.RawMessage(`{"deviceId":"dev1","etag":"AAAAAAAAAAI=","version":3,"tags":{"a":"<b>&"},` + freshProperties + `}`),
		Time:     t0.Add(time.Hour),
	}, deleted)
}

func TestUpdateTwinNotificationReported(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "dev1")
	_, err := f.s.PatchReported("dev1", json.RawMessage(`{"keep":1,"obj":{"x":1,"y":2}}`))
	require.NoError(t, err)
	t1 := t0.Add(time.Second)
	f.clock.Set(t1)
	_, err = f.s.PatchReported("dev1", json.RawMessage(`{"iothubDM":{"reboot":{"lastReboot":"2024-05-06T07:08:10Z"}},"obj":{"y":3},"keep":null}`))
	require.NoError(t, err)

	n := f.rec.last(t)
	require.Equal(t, "twinChangeEvents", n.Source)
	require.Equal(t, "twinChangeNotification", n.Schema)
	require.Equal(t, "updateTwin", n.OpType)
	require.Equal(t, "dev1", n.DeviceID)
	require.Equal(t, t1, n.Time)
	require.Nil(t, n.DesiredPatch)
	require.Zero(t, n.DesiredVersion)
	const m = "2024-05-06T07:08:10.1234567Z"
	require.Equal(t, `{"version":4,"properties":{"reported":{`+
		`"iothubDM":{"reboot":{"lastReboot":"2024-05-06T07:08:10Z"}},"keep":null,"obj":{"y":3},`+
		`"$metadata":{"$lastUpdated":"`+m+`",`+
		`"iothubDM":{"$lastUpdated":"`+m+`","reboot":{"$lastUpdated":"`+m+`","lastReboot":{"$lastUpdated":"`+m+`"}}},`+
		`"obj":{"$lastUpdated":"`+m+`","y":{"$lastUpdated":"`+m+`"}}},`+
		`"$version":3}}}`, string(n.Body))
}

func TestUpdateTwinNotificationDesiredAndTags(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "dev1")
	_, err := f.s.PatchTwin("dev1", TwinPatch{
		Tags:    mustJSON(t, `{"zone":"b","old":null}`),
		Desired: mustJSON(t, `{"telemetrySendFrequency":"5m","route":null,"cfg":{"a":1}}`),
	}, "")
	require.NoError(t, err)

	n := f.rec.last(t)
	require.Equal(t, "updateTwin", n.OpType)
	require.Equal(t, `{"version":3,"tags":{"old":null,"zone":"b"},"properties":{"desired":{`+
		`"cfg":{"a":1},"route":null,"telemetrySendFrequency":"5m",`+
		`"$metadata":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":2,`+
		`"cfg":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":2,"a":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":2}},`+
		`"telemetrySendFrequency":{"$lastUpdated":"`+t0Meta+`","$lastUpdatedVersion":2}},`+
		`"$version":2}}}`, string(n.Body))
	require.Equal(t, `{"cfg":{"a":1},"route":null,"telemetrySendFrequency":"5m","$version":2}`, string(n.DesiredPatch))
	require.EqualValues(t, 2, n.DesiredVersion)
}

func TestUpdateTwinNotificationTagsOnly(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "dev1")
	_, err := f.s.PatchTwin("dev1", TwinPatch{Tags: mustJSON(t, `{"building":43,"deep":{"x":[1,2]}}`)}, "")
	require.NoError(t, err)
	n := f.rec.last(t)
	require.Equal(t, `{"version":3,"tags":{"building":43,"deep":{"x":[1,2]}}}`, string(n.Body))
	require.Nil(t, n.DesiredPatch, "tags never reach the device")
}

func TestReplaceTwinNotification(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "dev1")
	_, err := f.s.PatchReported("dev1", json.RawMessage(`{"r":true}`))
	require.NoError(t, err)
	t1 := t0.Add(2 * time.Second)
	f.clock.Set(t1)
	_, err = f.s.ReplaceTwin("dev1", TwinPatch{
		Tags:    mustJSON(t, `{"t":1}`),
		Desired: mustJSON(t, `{"mode":"eco","limits":{"max":9}}`),
	}, "")
	require.NoError(t, err)

	n := f.rec.last(t)
	require.Equal(t, "replaceTwin", n.OpType)
	require.Equal(t, "twinChangeEvents", n.Source)
	require.Equal(t, t1, n.Time)
	const m = "2024-05-06T07:08:11.1234567Z"
	require.Equal(t, `{"deviceId":"dev1","etag":"AAAAAAAAAAM=","version":4,"tags":{"t":1},"properties":{`+
		`"desired":{"limits":{"max":9},"mode":"eco","$metadata":{"$lastUpdated":"`+m+`","$lastUpdatedVersion":2,`+
		`"limits":{"$lastUpdated":"`+m+`","$lastUpdatedVersion":2,"max":{"$lastUpdated":"`+m+`","$lastUpdatedVersion":2}},`+
		`"mode":{"$lastUpdated":"`+m+`","$lastUpdatedVersion":2}},"$version":2},`+
		`"reported":{"r":true,"$metadata":{"$lastUpdated":"`+t0Meta+`","r":{"$lastUpdated":"`+t0Meta+`"}},"$version":2}}}`, string(n.Body))
	require.Equal(t, `{"limits":{"max":9},"mode":"eco","$version":2}`, string(n.DesiredPatch))
	require.EqualValues(t, 2, n.DesiredVersion)
}

func TestNotificationsFollowCommitOrder(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	for i := range 5 {
		_, err := f.s.PatchReported("d", json.RawMessage(`{"i":`+string(rune('0'+i))+`}`))
		require.NoError(t, err)
	}
	ops := []string{}
	for _, n := range f.rec.all() {
		ops = append(ops, n.OpType)
	}
	require.Equal(t, []string{"createDeviceIdentity", "updateTwin", "updateTwin", "updateTwin", "updateTwin", "updateTwin"}, ops)
}
