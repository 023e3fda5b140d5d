package query

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParse checks that Parse never panics, that its errors are located
// *SyntaxErrors, and that String output parses back to an equivalent query.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"SELECT * FROM devices",
		"select top 5 * from devices where tags.location.region = 'US' and properties.reported.telemetryConfig.sendFrequencyInSecs >= 60",
		"SELECT * FROM devices WHERE properties.reported.iothubDM.reboot.lastReboot >= '2024-01-01T00:00:00Z'",
		"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi'] OR x NIN [1, -2.5, 0x1F, true, null]",
		"SELECT * FROM devices WHERE is_defined(properties.reported.connectivity) AND NOT (a <> b)",
		"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
		"SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
		"SELECT COUNT(), AVG(tags.a), SUM(tags.a), MIN(tags.a), MAX(tags.a) AS m FROM devices",
		`SELECT * FROM devices WHERE tags.[[group]].name = "it's \"q\" \\ \u00e9\ud83d\ude00" AND devices.devices.x = 1`,
		"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'd'",
		"SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'm'",
		"SELECT * FROM devices WHERE -x * (y + 3) % 4 / 2 - 1e21 > 5e-324",
		"SELECT * FROM devices WHERE [[a]]]] = 1",
		"SELECT * FROM devices WHERE STARTSWITH(deviceId, 'a')",
		"SELECT * FROM devices WHERE x = 'a\x00\xff'",
		"SELECT tags.x AS [[$1]], COUNT() FROM devices",
		"SELECT * FROM devices WHERE ſelect = 1",
		"",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	docs := fixtureTwins(f)
	f.Fuzz(func(t *testing.T, text string) {
		q, err := Parse(text)
		if err != nil {
			var se *SyntaxError
			require.True(t, errors.As(err, &se), "error %v is not a *SyntaxError", err)
			require.GreaterOrEqual(t, se.Pos, 0)
			require.LessOrEqual(t, se.Pos, len(text))
			return
		}
		canonical := q.String()
		// parse, not Parse: canonical text may outgrow MaxLength with added parentheses.
		again, err := parse(canonical)
		require.NoError(t, err, "String() = %q does not parse", canonical)
		require.Equal(t, q, again, "String() = %q parses to a different query", canonical)
		require.Equal(t, canonical, again.String())
		_, _ = q.Run(docs) // must not panic on any parsed query
	})
}
