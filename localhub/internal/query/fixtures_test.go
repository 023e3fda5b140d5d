package query

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixtureJSON holds twins the way GET /twins/{id} returns them, ordered by deviceId.
const fixtureJSON = `[
 {"deviceId":"dev1","etag":"AAAAAAAAAAE=","status":"enabled","connectionState":"Connected",
  "lastActivityTime":"2024-05-01T10:00:05Z","version":4,
  "tags":{"location":{"region":"US","plant":"Redmond43"},"group":"alpha"},
  "properties":{"desired":{"$version":1},
   "reported":{"telemetryConfig":{"status":"Success","sendFrequencyInSecs":300},"connectivity":"wifi",
    "iothubDM":{"reboot":{"lastReboot":"2024-05-01T10:00:00Z"}},"temp":21.5,"nullable":null,"flag":true,"$version":3}}},
 {"deviceId":"dev2","etag":"AAAAAAAAAAI=","status":"disabled","connectionState":"Disconnected",
  "lastActivityTime":"2024-06-15T08:30:10Z","version":5,
  "tags":{"location":{"region":"EU"},"group":"beta"},
  "properties":{"desired":{"$version":1},
   "reported":{"telemetryConfig":{"status":"Pending","sendFrequencyInSecs":60},"connectivity":"wired",
    "iothubDM":{"reboot":{"lastReboot":"2024-06-15T08:30:00Z"}},"temp":30,"flag":false,"$version":2}}},
 {"deviceId":"dev3","etag":"AAAAAAAAAAM=","status":"enabled","connectionState":"Disconnected",
  "lastActivityTime":"0001-01-01T00:00:00Z","version":2,
  "tags":{"location":{"region":"US"}},
  "properties":{"desired":{"$version":1},
   "reported":{"telemetryConfig":{"status":"Success","sendFrequencyInSecs":30},"connectivity":"cellular","temp":"hot","$version":2}}},
 {"deviceId":"dev4","etag":"AAAAAAAAAAQ=","status":"enabled","connectionState":"Connected",
  "lastActivityTime":"2023-12-31T23:59:59Z","version":3,
  "tags":{},
  "properties":{"desired":{"$version":1},
   "reported":{"telemetryConfig":{"status":"Error"},"iothubDM":{"reboot":{"lastReboot":"2023-12-31T23:59:59Z"}},"$version":2}}},
 {"deviceId":"dev5","etag":"AAAAAAAAAAU=","status":"enabled","connectionState":"Connected",
  "lastActivityTime":"2024-01-02T00:00:00Z","version":2,
  "tags":{"odd key":1,"it's":"q","quote":"it's \"x\""},
  "properties":{"desired":{"$version":1},
   "reported":{"telemetryConfig":{"status":"Success"},"$version":1}}}
]`

func fixtureTwins(tb testing.TB) []map[string]any {
	tb.Helper()
	var docs []map[string]any
	require.NoError(tb, json.Unmarshal([]byte(fixtureJSON), &docs))
	return docs
}

// deviceIDs lists the deviceId of each item, for SELECT * results.
func deviceIDs(tb testing.TB, items []any) []string {
	tb.Helper()
	ids := []string{}
	for _, it := range items {
		m, ok := it.(map[string]any)
		require.True(tb, ok, "item %#v is not an object", it)
		ids = append(ids, m["deviceId"].(string))
	}
	return ids
}
