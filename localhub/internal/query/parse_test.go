package query

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		want  string // canonical String()
		from  string
		items string // ItemType
	}{
		{"star", "select * from devices", "SELECT * FROM devices", "devices", "Twin"},
		{"keywords any case", "SeLeCt ToP 10 * FrOm Devices wHeRe a = 1", "SELECT TOP 10 * FROM devices WHERE (a = 1)", "devices", "Twin"},
		{"multi-line", "SELECT *\n\tFROM devices\r\n  WHERE tags.location.region = 'US'\n", "SELECT * FROM devices WHERE (tags.location.region = 'US')", "devices", "Twin"},
		{"logic precedence", "SELECT * FROM devices WHERE a = 1 OR b = 2 AND NOT c = 3",
			"SELECT * FROM devices WHERE ((a = 1) OR ((b = 2) AND (NOT (c = 3))))", "devices", "Twin"},
		{"parentheses", "SELECT * FROM devices WHERE (a = 1 OR b = 2) AND c = 3",
			"SELECT * FROM devices WHERE (((a = 1) OR (b = 2)) AND (c = 3))", "devices", "Twin"},
		{"arithmetic precedence", "SELECT * FROM devices WHERE a + b * c - d % 2 > 1",
			"SELECT * FROM devices WHERE (((a + (b * c)) - (d % 2)) > 1)", "devices", "Twin"},
		{"all comparisons", "SELECT * FROM devices WHERE a = 1 AND b != 2 AND c <> 3 AND d < 4 AND e > 5 AND f <= 6 AND g >= 7",
			"SELECT * FROM devices WHERE (((((((a = 1) AND (b != 2)) AND (c != 3)) AND (d < 4)) AND (e > 5)) AND (f <= 6)) AND (g >= 7))", "devices", "Twin"},
		{"hex", "SELECT * FROM devices WHERE x = 0x1F OR x = 0XfF", "SELECT * FROM devices WHERE ((x = 31) OR (x = 255))", "devices", "Twin"},
		{"negative and fraction", "SELECT * FROM devices WHERE x > -1.5 AND y = 2.25e2 AND z = - -3",
			"SELECT * FROM devices WHERE (((x > -1.5) AND (y = 225)) AND (z = 3))", "devices", "Twin"},
		{"unary minus on path", "SELECT * FROM devices WHERE -x < 0", "SELECT * FROM devices WHERE ((-x) < 0)", "devices", "Twin"},
		{"string escapes", `SELECT * FROM devices WHERE x = "it's \"q\" \\ \u00e9\ud83d\ude00"`,
			`SELECT * FROM devices WHERE (x = 'it\'s "q" \\ é😀')`, "devices", "Twin"},
		{"single-quote escape", `SELECT * FROM devices WHERE x = 'it\'s'`, `SELECT * FROM devices WHERE (x = 'it\'s')`, "devices", "Twin"},
		{"control character re-escaped", "SELECT * FROM devices WHERE x = 'a\tb'", `SELECT * FROM devices WHERE (x = 'a\u0009b')`, "devices", "Twin"},
		{"literals", "SELECT * FROM devices WHERE a = true OR b = FALSE OR c = Null OR d = undefined",
			"SELECT * FROM devices WHERE ((((a = true) OR (b = false)) OR (c = null)) OR (d = undefined))", "devices", "Twin"},
		{"bracket escape", "SELECT * FROM devices WHERE tags.[[group]].name = 'x' AND tags.[[odd key]] = 1 AND tags.[[plain]] = 2",
			"SELECT * FROM devices WHERE (((tags.[[group]].name = 'x') AND (tags.[[odd key]] = 1)) AND (tags.plain = 2))", "devices", "Twin"},
		{"devices prefix stripped", "SELECT * FROM devices WHERE devices.tags.x = 1 AND Devices.deviceId = 'a'",
			"SELECT * FROM devices WHERE ((tags.x = 1) AND (deviceId = 'a'))", "devices", "Twin"},
		{"escaped devices kept", "SELECT * FROM devices WHERE [[devices]].x = 1 OR devices.devices.y = 2",
			"SELECT * FROM devices WHERE (([[devices]].x = 1) OR ([[devices]].y = 2))", "devices", "Twin"},
		{"top-level field canonical casing", "SELECT * FROM devices WHERE DEVICEID = 'a' AND Properties.reported.x = 1",
			"SELECT * FROM devices WHERE ((deviceId = 'a') AND (properties.reported.x = 1))", "devices", "Twin"},
		{"in and nin", "SELECT * FROM devices WHERE x IN ['wired', 'wifi', 1, -2, true, null] AND y NIN [] AND z nin [0x10]",
			"SELECT * FROM devices WHERE (((x IN ['wired', 'wifi', 1, -2, true, null]) AND (y NIN [])) AND (z NIN [16]))", "devices", "Twin"},
		{"is_defined", "SELECT * FROM devices WHERE is_defined(properties.reported.connectivity) AND NOT IS_DEFINED(tags.x)",
			"SELECT * FROM devices WHERE (IS_DEFINED(properties.reported.connectivity) AND (NOT IS_DEFINED(tags.x)))", "devices", "Twin"},
		{"projection", "SELECT DeviceId, LastActivityTime, properties.reported.iothubDM.reboot.lastReboot AS lr FROM devices",
			"SELECT deviceId, lastActivityTime, properties.reported.iothubDM.reboot.lastReboot AS lr FROM devices", "devices", "Raw"},
		{"escaped alias", "SELECT tags.x AS [[group]] FROM devices", "SELECT tags.x AS [[group]] FROM devices", "devices", "Raw"},
		{"group by", "SELECT properties.reported.telemetryConfig.status AS status,\n COUNT() AS numberOfDevices\nFROM devices\nGROUP BY properties.reported.telemetryConfig.status",
			"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status", "devices", "Raw"},
		{"aggregates", "select count() as n, avg(tags.a), Sum(tags.a) AS s, min(tags.a), MAX(tags.a) from devices",
			"SELECT COUNT() AS n, AVG(tags.a), SUM(tags.a) AS s, MIN(tags.a), MAX(tags.a) FROM devices", "devices", "Raw"},
		{"top with group by", "SELECT TOP 2 tags.a, COUNT() AS n FROM devices WHERE x = 1 GROUP BY devices.tags.a",
			"SELECT TOP 2 tags.a, COUNT() AS n FROM devices WHERE (x = 1) GROUP BY tags.a", "devices", "Raw"},
		{"modules", "SELECT * FROM devices.modules WHERE devices.modules.moduleId = 'm' AND deviceId IN ['d1']",
			"SELECT * FROM devices.modules WHERE ((moduleId = 'm') AND (deviceId IN ['d1']))", "devices.modules", "Twin"},
		{"jobs", "SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'd' AND devices.jobs.createdTimeUtc > '2016-09-01'",
			"SELECT * FROM devices.jobs WHERE ((deviceId = 'd') AND (createdTimeUtc > '2016-09-01'))", "devices.jobs", "DeviceJob"},
		{"jobs bare job properties", "SELECT * FROM devices.jobs WHERE jobId = 'j' AND Status = 'completed' AND outcome.deviceMethodResponse.status = 200",
			"SELECT * FROM devices.jobs WHERE (((jobId = 'j') AND (status = 'completed')) AND (outcome.deviceMethodResponse.status = 200))", "devices.jobs", "DeviceJob"},
		{"modules aggregate", "SELECT COUNT() AS n FROM devices.modules", "SELECT COUNT() AS n FROM devices.modules", "devices.modules", "Raw"},
		{"dollar identifiers", "SELECT * FROM devices WHERE properties.reported.$version > 2",
			"SELECT * FROM devices WHERE (properties.reported.$version > 2)", "devices", "Twin"},
		{"exactly max length", "SELECT * FROM devices WHERE x = '" + strings.Repeat("é", MaxLength-34) + "'",
			"SELECT * FROM devices WHERE (x = '" + strings.Repeat("é", MaxLength-34) + "')", "devices", "Twin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.text)
			require.NoError(t, err)
			require.Equal(t, tt.want, q.String())
			require.Equal(t, tt.from, q.From())
			require.Equal(t, tt.items, q.ItemType())
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		text   string
		msg    string // substring of SyntaxError.Msg
		pos    int
		line   int
		column int
	}{
		{"empty", "", "expected SELECT", 0, 1, 1},
		{"no select list", "SELECT", "end of query", 6, 1, 7},
		{"no collection", "SELECT * FROM", "FROM takes devices", 13, 1, 14},
		{"unknown collection", "SELECT * FROM things", "FROM takes devices", 14, 1, 15},
		{"unknown sub-collection", "SELECT * FROM devices.twins", "FROM takes devices", 22, 1, 23},
		{"empty where", "SELECT * FROM devices WHERE", "expected an expression", 27, 1, 28},
		{"unterminated string", "SELECT * FROM devices WHERE x = 'abc", "unterminated string", 32, 1, 33},
		{"undocumented escape", `SELECT * FROM devices WHERE x = 'a\nb'`, `invalid escape sequence '\n'`, 34, 1, 35},
		{"short unicode escape", `SELECT * FROM devices WHERE x = '\u12'`, "4 hexadecimal digits", 33, 1, 34},
		{"routing-only function", "SELECT * FROM devices WHERE CONTAINS(deviceId, 'a')", "only in message routing", 28, 1, 29},
		{"documented spelling of startswith is refused", "SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')", "only in message routing", 28, 1, 29},
		{"startswith takes two arguments", "SELECT * FROM devices WHERE STARTSWITH(deviceId)", "expected ','", 47, 1, 48},
		{"routing-only function lower case", "SELECT * FROM devices WHERE is_string(x)", "IS_STRING is supported only in message routing", 28, 1, 29},
		{"aggregate in where", "SELECT * FROM devices WHERE COUNT() > 1", "aggregates are allowed only in the SELECT list", 28, 1, 29},
		{"unknown function", "SELECT * FROM devices WHERE FOO(x)", "unknown function FOO", 28, 1, 29},
		{"keyword as name", "SELECT * FROM devices WHERE tags.group = 'a'", "write [[group]]", 33, 1, 34},
		{"unterminated bracket", "SELECT * FROM devices WHERE tags.[[x = 1", "unterminated '[['", 33, 1, 34},
		{"empty bracket", "SELECT * FROM devices WHERE x = [[]]", "empty bracketed name", 32, 1, 33},
		{"top zero", "SELECT TOP 0 * FROM devices", "TOP needs a whole number", 11, 1, 12},
		{"top fraction", "SELECT TOP 1.5 * FROM devices", "TOP needs a whole number", 11, 1, 12},
		{"top negative", "SELECT TOP -1 * FROM devices", "got '-'", 11, 1, 12},
		{"top too large", "SELECT TOP 3000000000 * FROM devices", "TOP needs a whole number", 11, 1, 12},
		{"bare hex prefix", "SELECT * FROM devices WHERE x = 0x", "invalid hexadecimal number", 32, 1, 33},
		{"hex overflow", "SELECT * FROM devices WHERE x = 0x1FFFFFFFFFFFFFFFF", "invalid hexadecimal number", 32, 1, 33},
		{"number glued to name", "SELECT * FROM devices WHERE x = 12abc", `invalid number "12abc"`, 32, 1, 33},
		{"dangling exponent", "SELECT * FROM devices WHERE x = 1e", `invalid number "1e"`, 32, 1, 33},
		{"number overflow", "SELECT * FROM devices WHERE x = 1e999", "out of range", 32, 1, 33},
		{"in needs array", "SELECT * FROM devices WHERE x IN ('a')", "expected '['", 33, 1, 34},
		{"array of paths", "SELECT * FROM devices WHERE x IN [y]", "array elements must be constants", 34, 1, 35},
		{"unclosed array", "SELECT * FROM devices WHERE x IN [1 2]", "expected ','", 36, 1, 37},
		{"bare array", "SELECT * FROM devices WHERE x = [1]", "only after IN or NIN", 32, 1, 33},
		{"chained comparison", "SELECT * FROM devices WHERE x = 1 = 2", "unexpected '='", 34, 1, 35},
		{"unclosed paren", "SELECT * FROM devices WHERE (x = 1", "expected ')'", 34, 1, 35},
		{"bad character", "SELECT * FROM devices WHERE x ! 1", "unexpected character '!'", 30, 1, 31},
		{"order by", "SELECT * FROM devices ORDER BY deviceId", "unexpected 'ORDER'", 22, 1, 23},
		{"star with group by", "SELECT * FROM devices GROUP BY status", "GROUP BY needs a SELECT list", 22, 1, 23},
		{"path and aggregate without group by", "SELECT deviceId, COUNT() FROM devices", "cannot be selected together", 7, 1, 8},
		{"path not grouped", "SELECT COUNT() AS n, deviceId FROM devices GROUP BY status", "deviceId is not in GROUP BY", 21, 1, 22},
		{"jobs projection", "SELECT deviceId FROM devices.jobs", "devices.jobs support only SELECT *", 16, 1, 17},
		// The docs: devices.jobs queries do not support "conditions that refer
		// to the device twin in addition to job properties".
		{"jobs condition on twin properties", "SELECT * FROM devices.jobs WHERE properties.reported.x = 1", "job properties only", 33, 1, 34},
		{"jobs condition on tags after a job condition", "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j' AND devices.tags.x = 1", "job properties only", 62, 1, 63},
		{"jobs condition qualified as the twin's", "SELECT * FROM devices.jobs WHERE devices.status = 'enabled'", "job properties only", 33, 1, 34},
		{"jobs condition inside a function", "SELECT * FROM devices.jobs WHERE IS_DEFINED(tags.x)", "job properties only", 44, 1, 45},
		// The docs: GROUP BY "is currently only supported when querying device twins".
		{"modules group by", "SELECT properties.reported.x AS x, COUNT() AS n FROM devices.modules GROUP BY properties.reported.x", "GROUP BY is supported only in queries on device twins", 69, 1, 70},
		{"duplicate result key", "SELECT tags.x, properties.x FROM devices", `"x" is selected more than once`, 15, 1, 16},
		{"duplicate auto name", "SELECT COUNT(), COUNT() AS [[$1]] FROM devices", `"$1" is selected more than once`, 16, 1, 17},
		{"aggregate without path", "SELECT AVG() FROM devices", "expected a property name", 11, 1, 12},
		{"is_defined in select", "SELECT IS_DEFINED(x) AS d FROM devices", "IS_DEFINED is not allowed here", 7, 1, 8},
		{"routing function in select", "SELECT LOWER(deviceId) AS d FROM devices", "only in message routing", 7, 1, 8},
		{"count with argument", "SELECT COUNT(x) FROM devices", "expected ')'", 13, 1, 14},
		{"trailing comma", "SELECT deviceId, FROM devices", "FROM is a keyword", 17, 1, 18},
		{"position on later line", "SELECT *\nFROM devices\nWHERE x = ", "expected an expression", 32, 3, 11},
		{"too long", "SELECT * FROM devices WHERE x = '" + strings.Repeat("é", MaxLength) + "'", "the maximum is 8192", 33 + 2*(MaxLength-33), 1, MaxLength + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := Parse(tt.text)
			require.Nil(t, q)
			var se *SyntaxError
			require.True(t, errors.As(err, &se), "error %v is not a *SyntaxError", err)
			require.Contains(t, se.Msg, tt.msg)
			require.Equal(t, tt.pos, se.Pos, "Pos")
			require.Equal(t, tt.line, se.Line, "Line")
			require.Equal(t, tt.column, se.Column, "Column")
			require.Contains(t, se.Error(), tt.msg)
		})
	}
}
