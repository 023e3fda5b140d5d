package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// httpEnvelope is the body the host POSTs to /<FunctionName> for an HTTP
// trigger when forwarding is off (functions-custom-handler.md §2.1).
func httpEnvelope(t testing.TB, method, rawURL string, headers map[string][]string, params map[string]string, body string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	query := map[string]string{}
	for k, v := range u.Query() {
		query[k] = v[0]
	}
	req := map[string]any{
		"Url": rawURL, "Method": method, "Query": query, "Headers": headers, "Params": params,
		"Identities": []any{map[string]any{"AuthenticationType": nil, "IsAuthenticated": false, "Claims": []any{}}},
	}
	if body != "" {
		req["Body"] = body
	}
	meta := map[string]any{"Query": query, "sys": map[string]any{"MethodName": "x", "UtcNow": "2025-01-31T08:00:00Z", "RandGuid": "g"}}
	for k, v := range params {
		b, _ := json.Marshal(v)
		meta[k] = string(b) // route values arrive double-encoded in Metadata
	}
	out, err := json.Marshal(map[string]any{"Data": map[string]any{"req": req}, "Metadata": meta})
	require.NoError(t, err)
	return string(out)
}

// envelopeResult is the host-facing answer of an HTTP function.
type envelopeResult struct {
	Outputs struct {
		Res struct {
			StatusCode int               `json:"statusCode"`
			Headers    map[string]string `json:"headers"`
			Body       string            `json:"body"`
		} `json:"res"`
	}
	Logs        []string
	ReturnValue any
}

func TestHTTPFunctionsInEnvelopeMode(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	dev := localhubtest.NewDevice(t, hub, "env-1", localhubtest.Reply(200, `{"result":"Reboot started"}`))

	invoke := func(function, envelope string) envelopeResult {
		t.Helper()
		resp, body := app.do(t, http.MethodPost, "/"+function, envelope, map[string]string{"Content-Type": "application/json; charset=utf-8"})
		require.Equal(t, http.StatusOK, resp.StatusCode, "the envelope itself must succeed: %s", body)
		var res envelopeResult
		require.NoError(t, json.Unmarshal(body, &res))
		return res
	}

	res := invoke("RebootDevice", httpEnvelope(t, "POST", "http://localhost:7071/api/devices/env-1/reboot?code=fn-key",
		map[string][]string{"Content-Type": {"application/json"}, "Content-Length": {"18"}, "Host": {"localhost:7071"}, "Prefer": {"respond-async"}},
		map[string]string{"deviceId": "env-1"}, `{"delaySeconds":2}`))
	require.Equal(t, http.StatusAccepted, res.Outputs.Res.StatusCode, "body: %s", res.Outputs.Res.Body)
	require.Equal(t, "application/json; charset=utf-8", res.Outputs.Res.Headers["Content-Type"])
	require.Equal(t, "10", res.Outputs.Res.Headers["Retry-After"])
	require.NotContains(t, res.Outputs.Res.Headers, "Content-Length")
	var accepted map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.Outputs.Res.Body), &accepted))
	location := res.Outputs.Res.Headers["Location"]
	require.Equal(t, accepted["statusUrl"], location)
	require.Regexp(t, `^http://localhost:7071/api/reboots/env-1/[0-9a-f-]{36}\?code=fn-key&requestedAt=`, location)
	require.JSONEq(t, `{"requestId":"`+accepted["requestId"].(string)+`","delaySeconds":2}`, string(dev.NextCall(t).Payload))

	// Polling Location in envelope mode: Params carry the route values.
	res = invoke("RebootStatus", httpEnvelope(t, "GET", location, map[string][]string{"Host": {"localhost:7071"}},
		map[string]string{"deviceId": "env-1", "requestId": accepted["requestId"].(string)}, ""))
	require.Equal(t, http.StatusAccepted, res.Outputs.Res.StatusCode, "body: %s", res.Outputs.Res.Body)
	require.Equal(t, location, res.Outputs.Res.Headers["Location"])

	res = invoke("RebootReport", httpEnvelope(t, "GET", "http://localhost:7071/api/reboots?pageSize=5", nil, map[string]string{}, ""))
	require.Equal(t, http.StatusOK, res.Outputs.Res.StatusCode, "body: %s", res.Outputs.Res.Body)

	res = invoke("OpenAPI", httpEnvelope(t, "GET", "https://myapp.azurewebsites.net/api/openapi.json", nil, map[string]string{}, ""))
	require.Equal(t, http.StatusOK, res.Outputs.Res.StatusCode)
	require.Contains(t, res.Outputs.Res.Body, `"host":"myapp.azurewebsites.net"`)

	// A body that is no envelope fails the invocation (the host answers the
	// caller 500): a host bug, not a caller's.
	resp, body := app.do(t, http.MethodPost, "/RebootDevice", "not json", nil)
	requireProblem(t, resp, body, http.StatusBadRequest, "MalformedInvocation")
}

func TestReadinessAndUnknownRoutes(t *testing.T) {
	t.Parallel()
	app := newFakeHubApp(t, &fakeHub{status: http.StatusInternalServerError})
	resp, body := app.do(t, http.MethodGet, "/", "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ok\n", string(body))
	require.NotContains(t, app.logs.String(), `route="GET /{$}"`, "health pings are not logged")

	resp, body = app.do(t, http.MethodGet, "/api/nothing", "", nil)
	requireProblem(t, resp, body, http.StatusNotFound, "NotFound")
	resp, body = app.do(t, http.MethodGet, "/api/devices/dev-1/reboot", "", nil)
	requireProblem(t, resp, body, http.StatusNotFound, "NotFound")
}
