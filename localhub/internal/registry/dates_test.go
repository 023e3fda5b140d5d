package registry

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNormalizeDate(t *testing.T) {
	tests := []struct{ in, want string }{
		// An offset: the same instant in UTC, the fraction as sent.
		{"2024-05-06T11:58:00-08:00", "2024-05-06T19:58:00Z"},
		{"2024-05-06T11:58:00.5+02:00", "2024-05-06T09:58:00.5Z"},
		{"2024-05-06T11:58:00.4599400+05:30", "2024-05-06T06:28:00.4599400Z"},
		{"2024-05-06T11:58:00+00:00", "2024-05-06T11:58:00Z"},
		{"2024-05-06T11:58:00-00:00", "2024-05-06T11:58:00Z"},
		{"2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z"},
		{"2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00Z"},
		{"2024-05-06T11:58:00+14:00", "2024-05-05T21:58:00Z"},
		{"2024-05-06T11:58:00-14:00", "2024-05-07T01:58:00Z"},
	}
	for _, tt := range tests {
		got, ok := normalizeDate(tt.in)
		require.True(t, ok, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
	kept := []string{
		"2024-05-06T11:58:00Z",               // already UTC
		"2024-05-06T11:58:00.123Z",           // already UTC, precision as sent
		"2023-01-31T10:37:08.4599400",        // no zone: Microsoft's e2e test reads it back unchanged
		"2024-05-06",                         // a date only
		"2024-05-06 11:58:00+01:00",          // not a T
		"2024-05-06t11:58:00+01:00",          // lower-case t
		"2024-05-06T11:58+01:00",             // no seconds
		"2024-05-06T11:58:00+0100",           // offset without colon
		"2024-05-06T11:58:00+01",             // offset without minutes
		"2024-05-06T11:58:00.+01:00",         // empty fraction
		"2024-05-06T11:58:00.12345678+01:00", // eight digits: more than .NET keeps
		"2024-05-06T11:58:00+14:01",          // offset beyond ±14:00
		"2024-05-06T11:58:00+01:60",          // offset minutes
		"2024-02-30T11:58:00+01:00",          // no such day
		"2023-02-29T11:58:00+01:00",          // not a leap year
		"2024-13-06T11:58:00+01:00",          // no such month
		"2024-05-06T24:00:00+01:00",          // no hour 24
		"2024-05-06T11:58:60+01:00",          // no leap seconds
		"0001-01-01T00:30:00+01:00",          // before year 1 in UTC
		"9999-12-31T23:30:00-01:00",          // after year 9999 in UTC
		"0000-01-01T00:00:00-01:00",          // year 0
		"２０24-05-06T11:58:00+01:00",          // not ASCII digits
		"reboot at 2024-05-06T11:58:00+01:00",
		"",
	}
	for _, s := range kept {
		got, ok := normalizeDate(s)
		require.False(t, ok, s)
		require.Equal(t, s, got)
	}
}

// A device reporting local time (the seed's .NET sample does) reads back,
// queries and notifies in UTC, as on IoT Hub; strings that are not dates
// with an offset stay as sent.
func TestTwinDatesAreStoredInUTC(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")

	_, err := f.s.PatchReported("d", json.RawMessage(`{"iothubDM":{"reboot":{"lastReboot":"2024-05-06T11:58:00.123-08:00"}},
		"local":"2024-05-06T11:58:00","utc":"2024-05-06T11:58:00Z","list":["2024-05-06T11:58:00+01:00",{"at":"2024-05-06T11:58:00+01:00"}]}`))
	require.NoError(t, err)
	tw, err := f.s.GetTwin("d")
	require.NoError(t, err)
	rep := tw.Properties.Reported
	require.Equal(t, "2024-05-06T19:58:00.123Z", rep["iothubDM"].(map[string]any)["reboot"].(map[string]any)["lastReboot"])
	require.Equal(t, "2024-05-06T11:58:00", rep["local"])
	require.Equal(t, "2024-05-06T11:58:00Z", rep["utc"])
	require.Equal(t, []any{"2024-05-06T10:58:00Z", map[string]any{"at": "2024-05-06T10:58:00Z"}}, rep["list"])
	require.Contains(t, string(f.rec.last(t).Body), `"lastReboot":"2024-05-06T19:58:00.123Z"`, "twin-change event")
	body, err := f.s.DeviceTwin("d")
	require.NoError(t, err)
	require.Contains(t, string(body), `"lastReboot":"2024-05-06T19:58:00.123Z"`, "device's twin GET")

	_, err = f.s.PatchTwin("d", TwinPatch{
		Tags:    mustJSON(t, `{"installed":"2024-01-01T00:00:00+01:00"}`),
		Desired: mustJSON(t, `{"rebootAt":"2024-01-01T00:00:00-05:00"}`),
	}, "*")
	require.NoError(t, err)
	n := f.rec.last(t)
	require.Contains(t, string(n.Body), `"installed":"2023-12-31T23:00:00Z"`)
	require.Contains(t, string(n.Body), `"rebootAt":"2024-01-01T05:00:00Z"`)
	require.Contains(t, string(n.DesiredPatch), `"rebootAt":"2024-01-01T05:00:00Z"`, "desired patch sent to the device")

	_, err = f.s.ReplaceTwin("d", TwinPatch{Desired: mustJSON(t, `{"rebootAt":"2024-01-01T00:00:00+01:00"}`)}, "*")
	require.NoError(t, err)
	tw, err = f.s.GetTwin("d")
	require.NoError(t, err)
	require.Equal(t, "2023-12-31T23:00:00Z", tw.Properties.Desired["rebootAt"])
}

// Twins written before dates were normalised are normalised when read.
func TestStoredDatesNormalisedOnLoad(t *testing.T) {
	n := &node{}
	require.NoError(t, n.load(&storedNode{V: json.RawMessage(`"2024-05-06T11:58:00-08:00"`)}))
	require.Equal(t, "2024-05-06T19:58:00Z", n.val)
	require.NoError(t, n.load(&storedNode{V: json.RawMessage(`["x","2024-05-06T11:58:00-08:00"]`)}))
	require.Equal(t, []any{"x", "2024-05-06T19:58:00Z"}, n.val)
}

// dateShape is the syntax normalizeDate accepts, checked apart from the
// calendar, for the differential fuzz test below.
var dateShape = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?[+-]\d\d:\d\d$`)

// FuzzNormalizeDate checks normalizeDate against time.Parse: it accepts
// exactly the well-formed offset dates time.Parse reads within .NET's
// bounds, keeps their instant and fraction, and is idempotent.
func FuzzNormalizeDate(f *testing.F) {
	f.Add("2024-05-06T11:58:00-08:00")
	f.Add("2024-05-06T11:58:00.4599400+05:30")
	f.Add("2023-01-31T10:37:08.4599400")
	f.Add("2024-02-30T11:58:00+01:00")
	f.Add("0001-01-01T00:30:00+01:00")
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := normalizeDate(s)
		if !ok {
			if got != s {
				t.Fatalf("normalizeDate(%q) changed a string it did not accept: %q", s, got)
			}
			if dateShape.MatchString(s) {
				if in, err := time.Parse(time.RFC3339Nano, s); err == nil {
					_, off := in.Zone()
					if y := in.UTC().Year(); y >= 1 && y <= 9999 && off >= -14*3600 && off <= 14*3600 {
						t.Fatalf("normalizeDate(%q) refused a date time.Parse reads as %v", s, in)
					}
				}
			}
			return
		}
		in, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("normalizeDate(%q) accepted what time.Parse refuses: %v", s, err)
		}
		out, err := time.Parse(time.RFC3339Nano, got)
		if err != nil || !out.Equal(in) {
			t.Fatalf("normalizeDate(%q) = %q, not the same instant (%v)", s, got, err)
		}
		if !strings.HasSuffix(got, "Z") || len(got) != len(s)-len("+00:00")+1 {
			t.Fatalf("normalizeDate(%q) = %q: want UTC with Z and the fraction as sent", s, got)
		}
		if again, ok := normalizeDate(got); ok || again != got {
			t.Fatalf("normalizeDate is not idempotent on %q", got)
		}
	})
}
