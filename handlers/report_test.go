package handlers

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReportFilterQuery(t *testing.T) {
	tests := []struct {
		name string
		f    reportFilter
		want string
	}{
		{"no filter", reportFilter{},
			"SELECT * FROM devices WHERE IS_DEFINED(properties.reported.iothubDM.reboot)"},
		{"prefix as a range", reportFilter{Prefix: "site-a"},
			`SELECT * FROM devices WHERE IS_DEFINED(properties.reported.iothubDM.reboot) AND deviceId >= 'site-a' AND deviceId < 'site-a\uffff'`},
		{"quote in the prefix", reportFilter{Prefix: "o'brien"},
			`SELECT * FROM devices WHERE IS_DEFINED(properties.reported.iothubDM.reboot) AND deviceId >= 'o\'brien' AND deviceId < 'o\'brien\uffff'`},
		{"status and since", reportFilter{Status: `it's "up"`, Since: time.Date(2025, 3, 1, 0, 30, 0, 0, time.FixedZone("", 2*3600))},
			`SELECT * FROM devices WHERE IS_DEFINED(properties.reported.iothubDM.reboot) AND properties.reported.iothubDM.reboot.status = 'it\'s "up"' AND properties.reported.iothubDM.reboot.lastReboot >= '2025-02-27'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, tt.f.query())
		})
	}
}

func TestQuoteLiteral(t *testing.T) {
	require.Equal(t, `'a\\b'`, quoteLiteral(`a\b`))
	require.Equal(t, `'\u00e9\ud83d\ude00\u000a'`, quoteLiteral("é😀\n"))
}

func TestReportFilterKeeps(t *testing.T) {
	since := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	f := reportFilter{Since: since, Prefix: "a-"}
	require.True(t, f.keeps(reportItem{DeviceID: "a-1", LastReboot: "2025-03-01T08:00:00Z"}))
	require.True(t, f.keeps(reportItem{DeviceID: "a-1", LastReboot: "2025-03-01T09:00:00.5+01:00"}))
	require.False(t, f.keeps(reportItem{DeviceID: "a-1", LastReboot: "2025-03-01T08:59:59+01:00"}))
	require.False(t, f.keeps(reportItem{DeviceID: "a-1", LastReboot: "not a time"}))
	require.False(t, f.keeps(reportItem{DeviceID: "b-1", LastReboot: "2025-03-02T00:00:00Z"}))
	require.True(t, reportFilter{}.keeps(reportItem{DeviceID: "x"}))
}

func TestParseReportFilter(t *testing.T) {
	tests := []struct {
		query   string
		want    reportFilter
		wantErr string
	}{
		{"", reportFilter{PageSize: 100}, ""},
		{"since=2025-03-01T08:00:00Z&deviceIdPrefix=a-&status=running&pageSize=5&continuationToken=abc",
			reportFilter{Since: time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC), Prefix: "a-", Status: "running", PageSize: 5, Continuation: "abc"}, ""},
		{"since=yesterday", reportFilter{}, "since must be"},
		{"pageSize=0", reportFilter{}, "pageSize must be"},
		{"pageSize=101", reportFilter{}, "pageSize must be"},
		{"pageSize=ten", reportFilter{}, "pageSize must be"},
		{"deviceIdPrefix=a%20b", reportFilter{}, "deviceIdPrefix"},
		{"status=a%0Ab", reportFilter{}, "status must be"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			require.NoError(t, err)
			got, p := parseReportFilter(q)
			if tt.wantErr != "" {
				require.NotNil(t, p)
				require.Equal(t, 400, p.Status)
				require.Contains(t, p.Detail, tt.wantErr)
				return
			}
			require.Nil(t, p)
			require.Equal(t, tt.want, got)
		})
	}
}
