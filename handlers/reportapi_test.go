package handlers_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

func TestRebootReport(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	fleet := []struct {
		id     string
		reboot map[string]any
	}{
		{"site-a-1", map[string]any{"lastReboot": t0.Add(-2 * time.Hour).Format(time.RFC3339), "status": "running", "requestId": "r1"}},
		{"site-a-2", map[string]any{"lastReboot": t0.Format(time.RFC3339Nano), "status": "running", "requestId": "r2"}},
		{"site-a-3", map[string]any{"lastReboot": t0.Add(time.Hour).In(time.FixedZone("", 3600)).Format(time.RFC3339), "status": "rebooting"}},
		{"site-a-4", map[string]any{"status": "failed", "requestId": "r4"}},
		{"site-ab-1", map[string]any{"lastReboot": t0.Add(3 * time.Hour).Format(time.RFC3339), "status": "running"}},
		{"site-b-1", map[string]any{"lastReboot": t0.Add(time.Minute).Format(time.RFC3339), "status": "running"}},
	}
	for _, d := range fleet {
		reportReboot(t, localhubtest.NewDevice(t, hub, d.id, localhubtest.Reply(200, `{}`)), d.reboot)
	}
	localhubtest.NewDevice(t, hub, "site-a-quiet", localhubtest.Reply(200, `{}`)).ReportJSON(t, map[string]any{"firmware": "1.0"})

	// list follows continuation tokens and returns the device ids seen.
	list := func(t *testing.T, query url.Values) []string {
		t.Helper()
		var ids []string
		path := "/api/reboots?" + query.Encode()
		for pages := 0; path != ""; pages++ {
			require.Less(t, pages, 20, "too many pages")
			resp, body := app.do(t, http.MethodGet, path, "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
			got := decodeJSON(t, body)
			for _, item := range got["value"].([]any) {
				ids = append(ids, item.(map[string]any)["deviceId"].(string))
			}
			path = ""
			if next, ok := got["nextLink"].(string); ok {
				require.NotEmpty(t, got["continuationToken"])
				path = next
			}
		}
		slices.Sort(ids)
		return ids
	}

	tests := []struct {
		name  string
		query url.Values
		want  []string
	}{
		{"everything", url.Values{}, []string{"site-a-1", "site-a-2", "site-a-3", "site-a-4", "site-ab-1", "site-b-1"}},
		{"one page at a time", url.Values{"pageSize": {"2"}}, []string{"site-a-1", "site-a-2", "site-a-3", "site-a-4", "site-ab-1", "site-b-1"}},
		{"prefix", url.Values{"deviceIdPrefix": {"site-a-"}, "pageSize": {"1"}}, []string{"site-a-1", "site-a-2", "site-a-3", "site-a-4"}},
		{"since, across time zones", url.Values{"since": {t0.Format(time.RFC3339)}}, []string{"site-a-2", "site-a-3", "site-ab-1", "site-b-1"}},
		{"since and prefix", url.Values{"since": {t0.Add(30 * time.Minute).Format(time.RFC3339)}, "deviceIdPrefix": {"site-a"}}, []string{"site-a-3", "site-ab-1"}},
		{"status", url.Values{"status": {"failed"}}, []string{"site-a-4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, list(t, tt.query))
		})
	}

	t.Run("item shape", func(t *testing.T) {
		resp, body := app.do(t, http.MethodGet, "/api/reboots?deviceIdPrefix=site-a-2", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		got := decodeJSON(t, body)
		require.Len(t, got["value"], 1)
		item := got["value"].([]any)[0].(map[string]any)
		require.NotEmpty(t, item["reportedAt"])
		delete(item, "reportedAt")
		require.Equal(t, map[string]any{
			"deviceId": "site-a-2", "lastReboot": t0.Format(time.RFC3339Nano), "status": "running",
			"requestId": "r2", "connectionState": "Connected",
		}, item)
		require.NotContains(t, got, "nextLink")
	})
	t.Run("bad continuation token", func(t *testing.T) {
		resp, body := app.do(t, http.MethodGet, "/api/reboots?continuationToken=bogus", "", nil)
		requireProblem(t, resp, body, http.StatusBadRequest, "InvalidContinuationToken")
	})
	t.Run("bad filters", func(t *testing.T) {
		resp, body := app.do(t, http.MethodGet, "/api/reboots?since=last-week", "", nil)
		requireProblem(t, resp, body, http.StatusBadRequest, "InvalidArgument")
	})
}
