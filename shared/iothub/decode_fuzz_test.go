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

// The hub's JobResponse and a devices.jobs item, as the local hub sends
// them and with the docs' zone-less times.
const (
	jobSeed = `{"jobId":"j1","queryCondition":"*","createdTime":"2024-05-06T07:08:09.1234567Z","startTime":"2024-05-06T08:08:09Z",` +
		`"endTime":"9999-12-31T23:59:59.9999999Z","maxExecutionTimeInSeconds":600,"type":"scheduleDeviceMethod",` +
		`"cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":20},` +
		`"status":"scheduled","deviceJobStatistics":{"deviceCount":0,"failedCount":0,"succeededCount":0,"runningCount":0,"pendingCount":0}}`
	deviceJobSeed = `{"deviceId":"myDeviceId","jobId":"myJobId","jobType":"scheduleUpdateTwin","status":"completed",` +
		`"startTimeUtc":"2016-09-29T18:18:52.7418462","endTimeUtc":"2016-09-29T18:20:52.7418462","createdDateTimeUtc":"2016-09-29T18:18:56.7787107Z",` +
		`"lastUpdatedDateTimeUtc":"2016-09-29T18:18:56.8894408Z","outcome":{"deviceMethodResponse":null}}`
)

func TestJobDecode(t *testing.T) {
	var j Job
	require.NoError(t, json.Unmarshal([]byte(jobSeed), &j))
	require.Equal(t, JobStatusScheduled, j.Status)
	require.Nil(t, j.EndTime, "DateTime.MaxValue is no end")
	require.Equal(t, 10*time.Minute, j.MaxExecutionTime)
	require.Equal(t, 20*time.Second, j.Method.ConnectTimeout)

	var d DeviceJob
	require.NoError(t, json.Unmarshal([]byte(deviceJobSeed), &d))
	require.Equal(t, time.Date(2016, 9, 29, 18, 18, 52, 741846200, time.UTC), d.StartTime)
	require.Equal(t, 2*time.Minute, d.EndTime.Sub(d.StartTime))
	require.Nil(t, d.MethodResponse)
	require.Nil(t, d.Error)
}

// FuzzJobJSON: the job and device job decoders take any JSON without
// panicking, and never report an end that is the hub's "not ended".
// Seeds: testdata/fuzz/FuzzJobJSON.
func FuzzJobJSON(f *testing.F) {
	f.Add([]byte(jobSeed))
	f.Add([]byte(deviceJobSeed))
	f.Fuzz(func(t *testing.T, b []byte) {
		var j Job
		if json.Unmarshal(b, &j) == nil && j.EndTime != nil {
			require.NotEqual(t, notEndedYear, j.EndTime.Year())
		}
		var d DeviceJob
		if json.Unmarshal(b, &d) == nil && d.MethodResponse != nil {
			require.NotNil(t, d.MethodResponse.Payload)
		}
	})
}
