package query

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunFilters(t *testing.T) {
	docs := fixtureTwins(t)
	tests := []struct {
		name  string
		where string
		want  []string
	}{
		{"no filter", "", []string{"dev1", "dev2", "dev3", "dev4", "dev5"}},
		{"tag equality", "tags.location.region = 'US'", []string{"dev1", "dev3"}},
		{"tag and reported number", "tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60", []string{"dev1"}},
		{"reboot time at or after", "properties.reported.iothubDM.reboot.lastReboot >= '2024-01-01T00:00:00Z'", []string{"dev1", "dev2"}},
		{"reboot time before", "properties.reported.iothubDM.reboot.lastReboot < '2024-05-01T10:00:00Z'", []string{"dev4"}},
		{"reboot time exact bound", "properties.reported.iothubDM.reboot.lastReboot >= '2024-06-15T08:30:00Z'", []string{"dev2"}},
		{"not of undefined stays false", "NOT (properties.reported.iothubDM.reboot.lastReboot >= '2024-01-01T00:00:00Z')", []string{"dev4"}},
		{"in", "properties.reported.connectivity IN ['wired', 'wifi']", []string{"dev1", "dev2"}},
		{"nin skips undefined", "properties.reported.connectivity NIN ['wired', 'wifi']", []string{"dev3"}},
		{"in mixed kinds", "properties.reported.temp IN [30, 'hot']", []string{"dev2", "dev3"}},
		{"startswith", "STARTSWITH(deviceId, 'dev') AND NOT STARTSWITH(deviceId, 'dev1')", []string{"dev2", "dev3", "dev4", "dev5"}},
		{"endswith", "endswith(deviceId, '5') OR ENDSWITH(deviceId, '2')", []string{"dev2", "dev5"}},
		{"startswith on a non-string is false", "STARTSWITH(properties.reported.temp, '3')", []string{}},
		{"is_defined counts null", "IS_DEFINED(properties.reported.nullable)", []string{"dev1"}},
		{"not is_defined", "NOT IS_DEFINED(properties.reported.iothubDM)", []string{"dev3", "dev5"}},
		{"is_defined of object", "is_defined(tags.location)", []string{"dev1", "dev2", "dev3"}},
		{"null equality", "properties.reported.nullable = null", []string{"dev1"}},
		{"null not ordered", "properties.reported.nullable <= null", []string{}},
		{"kind mismatch is false", "properties.reported.temp > 25", []string{"dev2"}},
		{"not of mismatch is false", "NOT (properties.reported.temp > 25)", []string{"dev1"}},
		{"inequality of mismatch is false", "properties.reported.temp != 'cold'", []string{"dev3"}},
		{"or rescues undefined", "properties.reported.temp > 25 OR deviceId = 'dev5'", []string{"dev2", "dev5"}},
		{"and with false short-circuits undefined", "NOT (properties.reported.missing = 1 AND deviceId = 'none')", []string{"dev1", "dev2", "dev3", "dev4", "dev5"}},
		{"objects are not comparable", "tags.location = tags.location", []string{}},
		{"boolean equality", "properties.reported.flag = true", []string{"dev1"}},
		{"boolean inequality", "properties.reported.flag != true", []string{"dev2"}},
		{"booleans not ordered", "properties.reported.flag < true", []string{}},
		{"non-boolean condition is false", "properties.reported.connectivity", []string{}},
		{"boolean property as condition", "properties.reported.flag", []string{"dev1"}},
		{"top-level case-insensitive", "Status = 'disabled' OR DEVICEID = 'dev3'", []string{"dev2", "dev3"}},
		{"nested case-sensitive", "properties.Reported.connectivity = 'wifi'", []string{}},
		{"devices prefix", "devices.tags.location.region = 'EU'", []string{"dev2"}},
		{"bracket keyword", "tags.[[group]] = 'alpha'", []string{"dev1"}},
		{"bracket odd key", "tags.[[odd key]] = 1 AND tags.[[it's]] = \"\\u0071\"", []string{"dev5"}},
		{"quote escapes", `tags.quote = 'it\'s "x"' AND tags.quote = "it's \"x\""`, []string{"dev5"}},
		{"and binds tighter than or", "status = 'disabled' OR tags.location.region = 'US' AND connectionState = 'Connected'", []string{"dev1", "dev2"}},
		{"parentheses", "(status = 'disabled' OR tags.location.region = 'US') AND connectionState = 'Connected'", []string{"dev1"}},
		{"hex literal", "properties.reported.telemetryConfig.sendFrequencyInSecs = 0x12C", []string{"dev1"}},
		{"negative and fraction", "properties.reported.temp > -1.5 AND properties.reported.temp < 21.6", []string{"dev1"}},
		{"arithmetic", "properties.reported.temp * 2 - 10 = 50 OR properties.reported.telemetryConfig.sendFrequencyInSecs % 7 = 6", []string{"dev1", "dev2"}},
		{"division by zero is undefined", "properties.reported.temp / 0 > 0", []string{}},
		{"not-equal spellings", "status <> 'enabled' AND status != 'x'", []string{"dev2"}},
		{"ordinal string order", "deviceId < 'dev3'", []string{"dev1", "dev2"}},
		{"number property", "version >= 4", []string{"dev1", "dev2"}},
		{"undefined literal", "deviceId = undefined OR NOT (deviceId = undefined)", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "SELECT * FROM devices"
			if tt.where != "" {
				text += " WHERE " + tt.where
			}
			q, err := Parse(text)
			require.NoError(t, err)
			res, err := q.Run(docs)
			require.NoError(t, err)
			require.Equal(t, ItemTypeTwin, res.ItemType)
			require.Equal(t, tt.want, deviceIDs(t, res.Items))
		})
	}
}

func TestRunProjectionsAndAggregates(t *testing.T) {
	docs := fixtureTwins(t)
	type obj = map[string]any
	tests := []struct {
		name string
		text string
		want []any
	}{
		{"reboot projection keys by last segment",
			"SELECT deviceId, properties.reported.iothubDM.reboot.lastReboot FROM devices WHERE IS_DEFINED(properties.reported.iothubDM)",
			[]any{
				obj{"deviceId": "dev1", "lastReboot": "2024-05-01T10:00:00Z"},
				obj{"deviceId": "dev2", "lastReboot": "2024-06-15T08:30:00Z"},
				obj{"deviceId": "dev4", "lastReboot": "2023-12-31T23:59:59Z"},
			}},
		{"canonical casing", "SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
			[]any{obj{"deviceId": "dev3", "lastActivityTime": "0001-01-01T00:00:00Z"}}},
		{"alias overrides", "SELECT properties.reported.iothubDM.reboot.lastReboot AS rebooted FROM devices WHERE deviceId = 'dev1'",
			[]any{obj{"rebooted": "2024-05-01T10:00:00Z"}}},
		{"undefined omitted", "SELECT deviceId, properties.reported.iothubDM.reboot.lastReboot FROM devices WHERE deviceId IN ['dev3', 'dev5']",
			[]any{obj{"deviceId": "dev3"}, obj{"deviceId": "dev5"}}},
		{"null kept", "SELECT properties.reported.nullable FROM devices WHERE deviceId = 'dev1'",
			[]any{obj{"nullable": nil}}},
		{"object value", "SELECT tags.location FROM devices WHERE deviceId = 'dev1'",
			[]any{obj{"location": obj{"region": "US", "plant": "Redmond43"}}}},
		{"escaped segment key", "SELECT tags.[[odd key]] FROM devices WHERE deviceId = 'dev5'",
			[]any{obj{"odd key": float64(1)}}},
		{"top", "SELECT TOP 2 deviceId FROM devices WHERE status = 'enabled'",
			[]any{obj{"deviceId": "dev1"}, obj{"deviceId": "dev3"}}},
		{"docs group by example",
			"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
			[]any{
				obj{"numberOfDevices": float64(3), "status": "Success"},
				obj{"numberOfDevices": float64(1), "status": "Pending"},
				obj{"numberOfDevices": float64(1), "status": "Error"},
			}},
		{"group with undefined key", "SELECT tags.location.region, COUNT() AS n FROM devices GROUP BY tags.location.region",
			[]any{obj{"region": "US", "n": float64(2)}, obj{"region": "EU", "n": float64(1)}, obj{"n": float64(2)}}},
		{"group by with where and top", "SELECT TOP 1 COUNT() AS n, tags.location.region AS r FROM devices WHERE connectionState = 'Disconnected' GROUP BY tags.location.region",
			[]any{obj{"r": "EU", "n": float64(1)}}},
		{"group by without aggregates is distinct", "SELECT status FROM devices GROUP BY status",
			[]any{obj{"status": "enabled"}, obj{"status": "disabled"}}},
		{"count without group by", "SELECT COUNT() AS n FROM devices", []any{obj{"n": float64(5)}}},
		{"count of nothing", "SELECT COUNT() AS n FROM devices WHERE deviceId = 'nope'", []any{obj{"n": float64(0)}}},
		{"unnamed aggregates", "SELECT COUNT(), MAX(version) FROM devices", []any{obj{"$1": float64(5), "$2": float64(5)}}},
		{"numeric aggregates",
			"SELECT AVG(properties.reported.telemetryConfig.sendFrequencyInSecs) AS avg, SUM(properties.reported.telemetryConfig.sendFrequencyInSecs) AS sum, MIN(properties.reported.telemetryConfig.sendFrequencyInSecs) AS min, MAX(properties.reported.telemetryConfig.sendFrequencyInSecs) AS max FROM devices",
			[]any{obj{"avg": float64(130), "sum": float64(390), "min": float64(30), "max": float64(300)}}},
		{"string min and max", "SELECT MIN(properties.reported.iothubDM.reboot.lastReboot) AS first, MAX(properties.reported.iothubDM.reboot.lastReboot) AS last FROM devices",
			[]any{obj{"first": "2023-12-31T23:59:59Z", "last": "2024-06-15T08:30:00Z"}}},
		{"avg over non-number is undefined", "SELECT AVG(properties.reported.temp) AS t, COUNT() AS n FROM devices", []any{obj{"n": float64(5)}}},
		{"sum of nothing is zero, avg is undefined", "SELECT SUM(tags.none) AS s, AVG(tags.none) AS a, MIN(tags.none) AS m FROM devices", []any{obj{"s": float64(0)}}},
		{"aggregates per group", "SELECT tags.location.region AS r, MAX(properties.reported.telemetryConfig.sendFrequencyInSecs) AS f FROM devices WHERE IS_DEFINED(tags.location) GROUP BY tags.location.region",
			[]any{obj{"r": "US", "f": float64(300)}, obj{"r": "EU", "f": float64(60)}}},
		{"empty group by result", "SELECT status, COUNT() AS n FROM devices WHERE status = 'x' GROUP BY status", []any{}},
		{"no matches", "SELECT deviceId FROM devices WHERE status = 'x'", []any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.text)
			require.NoError(t, err)
			res, err := q.Run(docs)
			require.NoError(t, err)
			require.Equal(t, ItemTypeRaw, res.ItemType)
			require.NotNil(t, res.Items)
			require.Equal(t, tt.want, res.Items)
		})
	}
}

func TestRunUnsupportedCollections(t *testing.T) {
	q, err := Parse("SELECT * FROM devices.modules")
	require.NoError(t, err)
	_, err = q.Run(fixtureTwins(t))
	require.ErrorIs(t, err, ErrUnsupportedCollection)
}

// devices.jobs documents are device job items; conditions name job
// properties, bare or qualified, in any case.
func TestRunDeviceJobs(t *testing.T) {
	docs := []map[string]any{
		{"deviceId": "a", "jobId": "j1", "jobType": "scheduleDeviceMethod", "status": "completed",
			"outcome": map[string]any{"deviceMethodResponse": map[string]any{"status": float64(200), "payload": nil}}},
		{"deviceId": "b", "jobId": "j1", "jobType": "scheduleDeviceMethod", "status": "failed",
			"outcome": map[string]any{"deviceMethodResponse": nil},
			"error":   map[string]any{"code": "DeviceNotOnline", "description": "Timed out waiting for device to connect."}},
		{"deviceId": "a", "jobId": "j2", "jobType": "scheduleUpdateTwin", "status": "completed",
			"outcome": map[string]any{"deviceMethodResponse": nil}},
	}
	for _, tt := range []struct {
		where string
		want  []int
	}{
		{"devices.jobs.jobId = 'j1'", []int{0, 1}},
		{"JobId = 'j1' AND devices.jobs.Status = 'failed'", []int{1}},
		{"devices.jobs.deviceId = 'a' AND devices.jobs.jobType = 'scheduleUpdateTwin'", []int{2}},
		{"outcome.deviceMethodResponse.status = 200", []int{0}},
		{"error.code = 'DeviceNotOnline'", []int{1}},
		{"IS_DEFINED(devices.jobs.error)", []int{1}},
	} {
		t.Run(tt.where, func(t *testing.T) {
			q, err := Parse("SELECT * FROM devices.jobs WHERE " + tt.where)
			require.NoError(t, err)
			res, err := q.Run(docs)
			require.NoError(t, err)
			require.Equal(t, ItemTypeDeviceJob, res.ItemType)
			want := []any{}
			for _, i := range tt.want {
				want = append(want, docs[i])
			}
			require.Equal(t, want, res.Items)
		})
	}
}

func TestRunEmptyInput(t *testing.T) {
	q, err := Parse("SELECT * FROM devices")
	require.NoError(t, err)
	res, err := q.Run(nil)
	require.NoError(t, err)
	require.Equal(t, Result{Items: []any{}, ItemType: ItemTypeTwin}, res)
}

func TestRunAcceptsGoNumberTypes(t *testing.T) {
	docs := []map[string]any{
		{"deviceId": "a", "version": 3},
		{"deviceId": "b", "version": int64(7)},
	}
	q, err := Parse("SELECT deviceId, SUM(version) AS s FROM devices GROUP BY deviceId")
	require.NoError(t, err)
	res, err := q.Run(docs)
	require.NoError(t, err)
	require.Equal(t, []any{
		map[string]any{"deviceId": "a", "s": float64(3)},
		map[string]any{"deviceId": "b", "s": float64(7)},
	}, res.Items)
}
