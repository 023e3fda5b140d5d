package rest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQueryPaging(t *testing.T) {
	h := newTestHub(t)
	for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
		h.createDevice(id)
	}

	var ids []string
	continuation := ""
	for page := 1; ; page++ {
		require.LessOrEqual(t, page, 3, "5 twins in pages of 2 take 3 pages")
		headers := map[string]string{"x-ms-max-item-count": "2"}
		if continuation != "" {
			headers["x-ms-continuation"] = continuation
		}
		// The Go SDK sends "Query", Node "query".
		body := `{"Query":"SELECT * FROM devices"}`
		if page%2 == 0 {
			body = `{"query":"SELECT * FROM devices"}`
		}
		resp := h.do(request{method: http.MethodPost, path: "/devices/query", body: body, headers: headers})
		require.Equal(t, http.StatusOK, resp.status, string(resp.body))
		require.Equal(t, "Twin", resp.header.Get("x-ms-item-type"))
		var twins []struct {
			DeviceID string `json:"deviceId"`
		}
		require.NoError(t, json.Unmarshal(resp.body, &twins))
		for _, tw := range twins {
			ids = append(ids, tw.DeviceID)
		}
		_, more := resp.header["X-Ms-Continuation"]
		if page < 3 {
			require.Len(t, twins, 2)
			require.True(t, more, "page %d has a continuation", page)
			continuation = resp.header.Get("x-ms-continuation")
			require.NotEmpty(t, continuation)
			continue
		}
		require.Len(t, twins, 1)
		require.False(t, more, "the last page has no continuation header at all")
		break
	}
	require.Equal(t, []string{"d1", "d2", "d3", "d4", "d5"}, ids)
}

func TestQueryItemTypes(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("d1")
	resp := h.do(request{method: http.MethodPatch, path: "/twins/d1", body: `{"tags":{"site":"lab"}}`})
	require.Equal(t, http.StatusOK, resp.status, string(resp.body))

	tests := []struct {
		name, query, itemType, body string
	}{
		{"projection", "SELECT deviceId, tags.site FROM devices", "Raw", `[{"deviceId":"d1","site":"lab"}]`},
		{"aggregate", "SELECT COUNT() AS n FROM devices", "Raw", `[{"n":1}]`},
		{"where", "SELECT * FROM devices WHERE tags.site = 'nowhere'", "Twin", `[]`},
		{"no jobs yet", "SELECT * FROM devices.jobs", "DeviceJob", `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := json.Marshal(map[string]string{"query": tt.query})
			require.NoError(t, err)
			resp := h.do(request{method: http.MethodPost, path: "/devices/query", body: string(q)})
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			require.Equal(t, tt.itemType, resp.header.Get("x-ms-item-type"))
			require.JSONEq(t, tt.body, string(resp.body))
			require.NotContains(t, resp.header, "X-Ms-Continuation")
		})
	}
}

func TestQueryErrors(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("d1")
	tests := []struct {
		name    string
		body    string
		headers map[string]string
		golden  string
	}{
		{"syntax error", `{"query":"SELECT * FROM"}`, nil, "query_syntax_error"},
		{"missing query", `{"sql":"SELECT * FROM devices"}`, nil, "query_missing"},
		{"bad continuation", `{"query":"SELECT * FROM devices"}`, map[string]string{"x-ms-continuation": "not-a-token"}, "query_bad_continuation"},
		{"not json", `SELECT * FROM devices`, nil, "query_bad_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.golden, h.do(request{method: http.MethodPost, path: "/devices/query", body: tt.body, headers: tt.headers}))
		})
	}
}

// The REST reference makes x-ms-max-item-count a hint the service may
// override: values it cannot use leave the page size to the hub instead of
// failing the query.
func TestQueryMaxItemCountTheHubCannotUseIsIgnored(t *testing.T) {
	h := newTestHub(t)
	for i := range 3 {
		_, err := h.reg.CreateDevice(registryDevice(i))
		require.NoError(t, err)
	}
	for _, v := range []string{"0", "-5", "ten", " ", "1.5", "99999999999999999999"} {
		resp := h.do(request{method: http.MethodPost, path: "/devices/query", body: `{"query":"SELECT deviceId FROM devices"}`,
			headers: map[string]string{"x-ms-max-item-count": v}})
		require.Equal(t, http.StatusOK, resp.status, "x-ms-max-item-count %q: %s", v, resp.body)
		var items []any
		require.NoError(t, json.Unmarshal(resp.body, &items))
		require.Len(t, items, 3, "x-ms-max-item-count %q", v)
	}
}

func TestQueryMaxItemCountIsCappedAt100(t *testing.T) {
	h := newTestHub(t)
	for i := range 101 {
		_, err := h.reg.CreateDevice(registryDevice(i))
		require.NoError(t, err)
	}
	resp := h.do(request{method: http.MethodPost, path: "/devices/query", body: `{"query":"SELECT deviceId FROM devices"}`,
		headers: map[string]string{"x-ms-max-item-count": "1000"}})
	require.Equal(t, http.StatusOK, resp.status)
	var items []any
	require.NoError(t, json.Unmarshal(resp.body, &items))
	require.Len(t, items, 100)
	require.NotEmpty(t, resp.header.Get("x-ms-continuation"))
}
