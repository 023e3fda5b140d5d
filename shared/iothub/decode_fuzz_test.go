package iothub

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWireTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{`"2020-07-17T06:12:26.8402249Z"`, time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC), false},
		{`"2020-07-17T06:12:26.8402249"`, time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC), false},
		{`"0001-01-01T00:00:00"`, time.Time{}, false},
		{`"0001-01-01T00:00:00Z"`, time.Time{}, false},
		{`"2020-07-17T08:12:26+02:00"`, time.Date(2020, 7, 17, 6, 12, 26, 0, time.UTC), false},
		{`null`, time.Time{}, false},
		{`""`, time.Time{}, false},
		{`"yesterday"`, time.Time{}, true},
		{`12`, time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got wireTime
			err := json.Unmarshal([]byte(tt.in), &got)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.True(t, tt.want.Equal(time.Time(got)), "wireTime(%s) = %v, want %v", tt.in, time.Time(got), tt.want)
		})
	}
}

// The hub's twin document (reference §3.4) with a zone-less time.
const twinSeed = `{"deviceId":"devA","etag":"AAAAAAAAAAc=","deviceEtag":"NTk0ODUyODgx","status":"enabled","statusReason":"provisioned",
 "statusUpdateTime":"0001-01-01T00:00:00Z","connectionState":"Disconnected","lastActivityTime":"2020-07-17T06:12:26.8402249",
 "cloudToDeviceMessageCount":0,"authenticationType":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},
 "modelId":"","version":15,"tags":{"site":"a"},
 "properties":{"desired":{"k":"v","$metadata":{"$lastUpdated":"2020-07-17T06:12:26.840Z","$lastUpdatedVersion":6},"$version":6},
               "reported":{"k":1,"$metadata":{"$lastUpdated":"2020-07-17T06:12:26.840Z"},"$version":4}}}`

const deviceSeed = `{"deviceId":"d1","generationId":"637546501104263193","etag":"MzE4NzUxOTU1","connectionState":"Disconnected",
 "status":"enabled","statusReason":null,"connectionStateUpdatedTime":"0001-01-01T00:00:00","statusUpdatedTime":"0001-01-01T00:00:00",
 "lastActivityTime":"0001-01-01T00:00:00","cloudToDeviceMessageCount":0,
 "authentication":{"symmetricKey":{"primaryKey":"cA==","secondaryKey":"cw=="},"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null},"type":"sas"},
 "capabilities":{"iotEdge":false},"deviceScope":null,"parentScopes":[]}`

func TestTwinDecode(t *testing.T) {
	var twin Twin
	require.NoError(t, json.Unmarshal([]byte(twinSeed), &twin))
	require.Equal(t, "devA", twin.DeviceID)
	require.Equal(t, "AAAAAAAAAAc=", string(twin.ETag))
	require.Equal(t, int64(15), twin.Version)
	require.Equal(t, time.Date(2020, 7, 17, 6, 12, 26, 840224900, time.UTC), twin.LastActivityTime)
	require.Equal(t, map[string]any{"site": "a"}, twin.Tags)
	require.Equal(t, "v", twin.Properties.Desired["k"])
	require.Equal(t, float64(4), twin.Properties.Reported["$version"])
}

func TestDeviceDecode(t *testing.T) {
	var d Device
	require.NoError(t, json.Unmarshal([]byte(deviceSeed), &d))
	require.Equal(t, "d1", d.DeviceID)
	require.Equal(t, "cA==", d.Authentication.SymmetricKey.PrimaryKey)
	require.Equal(t, "sas", d.Authentication.Type)
	require.True(t, d.LastActivityTime.IsZero())
}

// FuzzTwinJSON checks that any document the twin decoder accepts survives
// encode → decode → encode unchanged.
func FuzzTwinJSON(f *testing.F) {
	f.Add([]byte(twinSeed))
	f.Add([]byte(`{"deviceId":"d","lastActivityTime":null,"properties":{}}`))
	f.Add([]byte(`{"lastActivityTime":"0001-01-01T00:00:00"}`))
	f.Add([]byte(`{"lastActivityTime":"2020-07-17T08:12:26.1+02:00","tags":{"a":[1,"x",null]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var first Twin
		if json.Unmarshal(b, &first) != nil {
			return
		}
		roundTrip(t, first, func() any { return new(Twin) })
	})
}

// FuzzDeviceJSON is FuzzTwinJSON for device identities.
func FuzzDeviceJSON(f *testing.F) {
	f.Add([]byte(deviceSeed))
	f.Add([]byte(`{"deviceId":"d","statusUpdatedTime":"2020-07-17T06:12:26Z"}`))
	f.Add([]byte(`{"connectionStateUpdatedTime":"","lastActivityTime":"9999-12-31T23:59:59.9999999"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var first Device
		if json.Unmarshal(b, &first) != nil {
			return
		}
		roundTrip(t, first, func() any { return new(Device) })
	})
}

func roundTrip(t *testing.T, v any, fresh func() any) {
	t.Helper()
	encoded, err := json.Marshal(v)
	if err != nil {
		// time.Time refuses some decodable values (e.g. offsets with
		// seconds); nothing to round-trip then.
		return
	}
	again := fresh()
	require.NoError(t, json.Unmarshal(encoded, again), "re-decoding %s", encoded)
	reencoded, err := json.Marshal(again)
	require.NoError(t, err)
	require.JSONEq(t, string(encoded), string(reencoded))
}
