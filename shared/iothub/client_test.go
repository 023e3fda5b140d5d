package iothub_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// Acceptance tests: the client against a real local hub, with devices
// played by paho over MQTT/TLS.

// newServiceClient returns a client for hub authenticated by the named
// shared access policy.
func newServiceClient(t testing.TB, hub *localhub.Hub, policyName string) *iothub.Client {
	t.Helper()
	cs, err := hub.ServiceConnectionString(policyName)
	require.NoError(t, err)
	return newClientFromConnStr(t, hub, cs)
}

func newClientFromConnStr(t testing.TB, hub *localhub.Hub, cs string) *iothub.Client {
	t.Helper()
	c, err := iothub.NewClientFromConnectionString(cs, hubOptions(hub, nil))
	require.NoError(t, err)
	return c
}

// hubOptions points a client at hub, sending through transport (nil: the
// hub's HTTP client).
func hubOptions(hub *localhub.Hub, transport policy.Transporter) *iothub.ClientOptions {
	if transport == nil {
		transport = hub.HTTPClient()
	}
	return &iothub.ClientOptions{
		Endpoint:      hub.HTTPSURL(),
		ClientOptions: azcore.ClientOptions{Transport: transport},
	}
}

// requireCode asserts err is an *azcore.ResponseError with status and code.
func requireCode(t testing.TB, err error, status int, code iothub.ErrorCode) {
	t.Helper()
	var respErr *azcore.ResponseError
	require.ErrorAs(t, err, &respErr)
	require.Equal(t, status, respErr.StatusCode, "status; error: %v", err)
	require.Equal(t, string(code), respErr.ErrorCode, "error code; error: %v", err)
}

func echo(call localhubtest.MethodCall) *localhubtest.MethodReply {
	return &localhubtest.MethodReply{Status: 200, Payload: call.Payload}
}

func createDevice(t testing.TB, hub *localhub.Hub, id string) string {
	t.Helper()
	cs, err := hub.CreateDevice(id)
	require.NoError(t, err)
	return cs
}

func TestInvokeMethod(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "service")
	device := localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "dev-1"), func(call localhubtest.MethodCall) *localhubtest.MethodReply {
		if len(call.Payload) == 0 {
			return &localhubtest.MethodReply{Status: 202, Payload: []byte(`"no payload"`)}
		}
		return &localhubtest.MethodReply{Status: 200, Payload: call.Payload}
	})

	tests := []struct {
		name        string
		payload     json.RawMessage
		wantBody    string // what the device receives
		wantStatus  int
		wantPayload string
	}{
		{"object payload", json.RawMessage(`{"delay":5}`), `{"delay":5}`, 200, `{"delay":5}`},
		{"string payload", json.RawMessage(`"now"`), `"now"`, 200, `"now"`},
		{"nil payload reaches the device as null", nil, `null`, 200, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.InvokeMethod(t.Context(), "dev-1", iothub.MethodRequest{
				MethodName:      "reboot",
				Payload:         tt.payload,
				ResponseTimeout: 10 * time.Second,
			}, nil)
			require.NoError(t, err)
			require.Equal(t, tt.wantStatus, resp.Status)
			require.JSONEq(t, tt.wantPayload, string(resp.Payload))

			call := <-device.Calls
			require.Equal(t, "reboot", call.Name)
			require.Equal(t, tt.wantBody, string(call.Payload))
		})
	}
}

// A device reply that is not JSON reaches the caller as a typed error: the
// hub copies it into the response verbatim, as IoT Hub does.
func TestInvokeMethodDeviceReplyNotJSON(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "service")
	localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "dev-raw"), localhubtest.Reply(200, `{'filename': 'logs.zip'}`))

	_, err := client.InvokeMethod(t.Context(), "dev-raw", iothub.MethodRequest{MethodName: "upload", ResponseTimeout: 10 * time.Second}, nil)
	var payloadErr *iothub.DevicePayloadError
	require.ErrorAs(t, err, &payloadErr)
	require.Contains(t, string(payloadErr.Body), `{'filename': 'logs.zip'}`)
}

func TestInvokeMethodErrors(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "service")
	createDevice(t, hub, "offline")
	localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "online"), echo)

	tests := []struct {
		name       string
		deviceID   string
		req        iothub.MethodRequest
		wantStatus int
		wantCode   iothub.ErrorCode
	}{
		{"device offline", "offline", iothub.MethodRequest{MethodName: "reboot"}, 404, iothub.DeviceNotOnline},
		{"unknown device", "nobody", iothub.MethodRequest{MethodName: "reboot"}, 404, iothub.DeviceNotFound},
		{"response timeout below range", "online", iothub.MethodRequest{MethodName: "reboot", ResponseTimeout: 2 * time.Second}, 400, iothub.ArgumentInvalid},
		{"response timeout above range", "online", iothub.MethodRequest{MethodName: "reboot", ResponseTimeout: 301 * time.Second}, 400, iothub.ArgumentInvalid},
		{"connect timeout above range", "online", iothub.MethodRequest{MethodName: "reboot", ConnectTimeout: 301 * time.Second}, 400, iothub.ArgumentInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.InvokeMethod(t.Context(), tt.deviceID, tt.req, nil)
			requireCode(t, err, tt.wantStatus, tt.wantCode)
		})
	}
}

func TestInvokeMethodTimeoutIsNotRetried(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "service")
	device := localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "slow"), localhubtest.Silent)

	start := time.Now()
	_, err := client.InvokeMethod(t.Context(), "slow", iothub.MethodRequest{
		MethodName:      "reboot",
		ResponseTimeout: 5 * time.Second, // the hub's minimum
	}, nil)
	requireCode(t, err, http.StatusGatewayTimeout, iothub.GatewayTimeout)
	require.GreaterOrEqual(t, time.Since(start), 5*time.Second, "the hub waits the full response timeout")

	// Any retry would have reached the device before InvokeMethod returned.
	require.Len(t, device.Calls, 1, "the device must see the request exactly once")
}

func TestInvokeMethodWaitsForDeviceToConnect(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	deviceConnStr := createDevice(t, hub, "late")

	// Learn when the request has left the client, so the device provably
	// connects after the call began.
	sent := make(chan struct{})
	transport := &traceTransport{next: hub.HTTPClient(), wrote: sent}
	client, err := iothub.NewClientFromConnectionString(mustServiceConnStr(t, hub, "service"), hubOptions(hub, transport))
	require.NoError(t, err)

	type result struct {
		resp iothub.InvokeMethodResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.InvokeMethod(t.Context(), "late", iothub.MethodRequest{
			MethodName:      "reboot",
			Payload:         json.RawMessage(`{"at":"late"}`),
			ResponseTimeout: 5 * time.Second,
			ConnectTimeout:  10 * time.Second,
		}, nil)
		done <- result{resp, err}
	}()

	select {
	case <-sent:
	case res := <-done:
		t.Fatalf("InvokeMethod returned before the device connected: %+v", res)
	}
	localhubtest.ConnectDevice(t, hub, deviceConnStr, echo)

	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, 200, res.resp.Status)
	require.JSONEq(t, `{"at":"late"}`, string(res.resp.Payload))
}

// traceTransport signals wrote once the first request is fully written.
type traceTransport struct {
	next  *http.Client
	wrote chan struct{}
}

func (tt *traceTransport) Do(req *http.Request) (*http.Response, error) {
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) {
		select {
		case <-tt.wrote:
		default:
			close(tt.wrote)
		}
	}}
	return tt.next.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
}

func mustServiceConnStr(t testing.TB, hub *localhub.Hub, policyName string) string {
	t.Helper()
	cs, err := hub.ServiceConnectionString(policyName)
	require.NoError(t, err)
	return cs
}

func TestReportedPropertiesReachTwinAndEvents(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "service")
	device := localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "reporter"), echo)

	events := hub.Events()
	partition := events.PartitionFor("reporter")
	info, err := events.Info(partition)
	require.NoError(t, err)
	from := info.LastSequenceNumber + 1

	version, err := device.Report(`{"iothubDM":{"reboot":{"lastReboot":"2026-03-01T12:00:00Z"}}}`)
	require.NoError(t, err)

	twin, err := client.GetTwin(t.Context(), "reporter", nil)
	require.NoError(t, err)
	require.Equal(t, "reporter", twin.DeviceID)
	require.NotEmpty(t, twin.ETag)
	require.Equal(t, "Connected", twin.ConnectionState)
	reported := twin.Properties.Reported
	require.Equal(t, map[string]any{"reboot": map[string]any{"lastReboot": "2026-03-01T12:00:00Z"}}, reported["iothubDM"])
	require.Equal(t, float64(version), reported["$version"], "the MQTT response carries the new reported $version")

	// The hub routes the change to the built-in endpoint.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		batch, err := events.Read(ctx, partition, from, 16)
		require.NoError(t, err, "no twinChangeEvents event for the reported patch")
		from = batch[len(batch)-1].SequenceNumber + 1
		for _, e := range batch {
			if e.Annotations["iothub-message-source"] != "twinChangeEvents" {
				continue
			}
			require.Equal(t, "reporter", e.DeviceID)
			require.Equal(t, "reporter", e.Annotations["iothub-connection-device-id"])
			require.Equal(t, "twinChangeNotification", e.Properties["iothub-message-schema"])
			require.Equal(t, "updateTwin", e.Properties["opType"])
			require.Equal(t, "reporter", e.Properties["deviceId"])
			require.Equal(t, "application/json", e.ContentType)
			var body struct {
				Properties struct {
					Reported map[string]any `json:"reported"`
				} `json:"properties"`
			}
			require.NoError(t, json.Unmarshal(e.Body, &body), "body %s", e.Body)
			require.Contains(t, body.Properties.Reported, "iothubDM")
			require.Equal(t, float64(version), body.Properties.Reported["$version"])
			return
		}
	}
}

func TestUpdateTwinDesired(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "service")
	device := localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "thermo"), echo)

	before, err := client.GetTwin(t.Context(), "thermo", nil)
	require.NoError(t, err)

	updated, err := client.UpdateTwin(t.Context(), "thermo", iothub.TwinPatch{
		Tags:    map[string]any{"site": "lab"},
		Desired: map[string]any{"targetTemp": 21.5},
	}, &iothub.UpdateTwinOptions{IfMatch: &before.ETag})
	require.NoError(t, err)
	require.Equal(t, "lab", updated.Tags["site"])
	require.Equal(t, 21.5, updated.Properties.Desired["targetTemp"])
	require.NotEqual(t, before.ETag, updated.ETag)
	require.Greater(t, updated.Version, before.Version)

	select {
	case body := <-device.Desired:
		var patch map[string]any
		require.NoError(t, json.Unmarshal(body, &patch))
		require.Equal(t, 21.5, patch["targetTemp"])
		require.Equal(t, updated.Properties.Desired["$version"], patch["$version"])
		require.NotContains(t, patch, "site", "tags never reach the device")
	case <-time.After(localhubtest.DeviceTimeout):
		t.Fatal("the device got no desired-properties notification")
	}

	// The old etag is stale now.
	_, err = client.UpdateTwin(t.Context(), "thermo", iothub.TwinPatch{Desired: map[string]any{"targetTemp": 19}},
		&iothub.UpdateTwinOptions{IfMatch: &before.ETag})
	requireCode(t, err, http.StatusPreconditionFailed, iothub.PreconditionFailed)

	// Deleting a desired property with null.
	cleared, err := client.UpdateTwin(t.Context(), "thermo", iothub.TwinPatch{Desired: map[string]any{"targetTemp": nil}}, nil)
	require.NoError(t, err)
	require.NotContains(t, cleared.Properties.Desired, "targetTemp")

	_, err = client.GetTwin(t.Context(), "nobody", nil)
	requireCode(t, err, http.StatusNotFound, iothub.DeviceNotFound)
}

func TestQueryPaging(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "service")
	want := []string{"q1", "q2", "q3", "q4", "q5"}
	for _, id := range want {
		createDevice(t, hub, id)
	}

	pager := client.NewQueryPager("SELECT * FROM devices", &iothub.QueryOptions{PageSize: 2})
	var got []string
	var pageSizes []int
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		require.NoError(t, err)
		require.True(t, strings.EqualFold("twin", page.ItemType), "item type %q", page.ItemType)
		pageSizes = append(pageSizes, len(page.Items))
		for _, item := range page.Items {
			var twin iothub.Twin
			require.NoError(t, json.Unmarshal(item, &twin))
			got = append(got, twin.DeviceID)
		}
	}
	require.Equal(t, []int{2, 2, 1}, pageSizes)
	require.ElementsMatch(t, want, got)

	// A stateless caller resumes from a token it was handed earlier.
	first, err := client.NewQueryPager("SELECT * FROM devices", &iothub.QueryOptions{PageSize: 2}).NextPage(t.Context())
	require.NoError(t, err)
	require.NotNil(t, first.ContinuationToken)
	resumed := client.NewQueryPager("SELECT * FROM devices", &iothub.QueryOptions{PageSize: 2, ContinuationToken: *first.ContinuationToken})
	var rest []string
	for resumed.More() {
		page, err := resumed.NextPage(t.Context())
		require.NoError(t, err)
		for _, item := range page.Items {
			var twin iothub.Twin
			require.NoError(t, json.Unmarshal(item, &twin))
			rest = append(rest, twin.DeviceID)
		}
	}
	require.Equal(t, got[2:], rest, "the resumed pager continues where the token points")

	bad := client.NewQueryPager("SELECT FROM WHERE", nil)
	_, err = bad.NextPage(t.Context())
	requireCode(t, err, http.StatusBadRequest, iothub.ArgumentInvalid)
}

func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	client := newServiceClient(t, hub, "iothubowner")
	ctx := t.Context()

	created, err := client.CreateDevice(ctx, "crud-1", nil)
	require.NoError(t, err)
	require.Equal(t, "crud-1", created.DeviceID)
	require.Equal(t, "enabled", created.Status)
	require.Equal(t, "sas", created.Authentication.Type)
	require.NotEmpty(t, created.Authentication.SymmetricKey.PrimaryKey, "the hub generates keys")
	require.NotEmpty(t, created.Authentication.SymmetricKey.SecondaryKey)
	require.NotEmpty(t, created.ETag)

	_, err = client.CreateDevice(ctx, "crud-1", nil)
	requireCode(t, err, http.StatusConflict, iothub.DeviceAlreadyExists)

	got, err := client.GetDevice(ctx, "crud-1", nil)
	require.NoError(t, err)
	require.Equal(t, created.Authentication.SymmetricKey, got.Authentication.SymmetricKey)
	require.Equal(t, "Disconnected", got.ConnectionState)

	// The created keys work for a device.
	conn := sas.ConnectionString{HostName: hub.Hostname(), DeviceID: "crud-1", SharedAccessKey: got.Authentication.SymmetricKey.PrimaryKey}
	localhubtest.ConnectDevice(t, hub, conn.String(), echo)

	stale := azcore.ETag("bm90LXRoZS1ldGFn")
	_, err = client.DeleteDevice(ctx, "crud-1", &iothub.DeleteDeviceOptions{IfMatch: &stale})
	requireCode(t, err, http.StatusPreconditionFailed, iothub.PreconditionFailed)

	_, err = client.DeleteDevice(ctx, "crud-1", nil)
	require.NoError(t, err)
	_, err = client.GetDevice(ctx, "crud-1", nil)
	requireCode(t, err, http.StatusNotFound, iothub.DeviceNotFound)
	_, err = client.DeleteDevice(ctx, "crud-1", nil)
	requireCode(t, err, http.StatusNotFound, iothub.DeviceNotFound)

	withKeys, err := client.CreateDevice(ctx, "crud-2", &iothub.CreateDeviceOptions{
		PrimaryKey:   "cHJpbWFyeS1rZXktZm9yLWNydWQtMi0wMTIzNDU2Nzg5",
		SecondaryKey: "c2Vjb25kYXJ5LWtleS1mb3ItY3J1ZC0yLTAxMjM0NTY3",
	})
	require.NoError(t, err)
	require.Equal(t, "cHJpbWFyeS1rZXktZm9yLWNydWQtMi0wMTIzNDU2Nzg5", withKeys.Authentication.SymmetricKey.PrimaryKey)
}

func TestSASAuthorization(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "d1"), echo)
	invoke := func(c *iothub.Client) error {
		_, err := c.InvokeMethod(t.Context(), "d1", iothub.MethodRequest{MethodName: "reboot"}, nil)
		return err
	}

	t.Run("policy without ServiceConnect", func(t *testing.T) {
		err := invoke(newServiceClient(t, hub, "registryRead"))
		requireCode(t, err, http.StatusUnauthorized, iothub.IotHubUnauthorizedAccess)
	})
	t.Run("wrong key", func(t *testing.T) {
		cs, err := sas.ParseConnectionString(mustServiceConnStr(t, hub, "service"))
		require.NoError(t, err)
		cs.SharedAccessKey = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMDA="
		err = invoke(newClientFromConnStr(t, hub, cs.String()))
		var respErr *azcore.ResponseError
		require.ErrorAs(t, err, &respErr)
		require.Equal(t, http.StatusUnauthorized, respErr.StatusCode)
		require.Contains(t, []string{string(iothub.IotHubUnauthorized), string(iothub.IotHubUnauthorizedAccess)}, respErr.ErrorCode)
	})
	t.Run("service policy", func(t *testing.T) {
		require.NoError(t, invoke(newServiceClient(t, hub, "service")))
	})
}

// staticToken is an azcore.TokenCredential returning a fixed token, the
// stand-in for Entra ID that the hub's BearerToken option accepts.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestBearerCredential(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, &localhub.Options{BearerToken: "t"})
	localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "d1"), echo)

	tests := []struct {
		name    string
		token   string
		wantErr bool
	}{
		{"accepted token", "t", false},
		{"wrong token", "not-t", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := iothub.NewClient(hub.Hostname(), staticToken(tt.token), hubOptions(hub, nil))
			require.NoError(t, err)

			_, err = client.InvokeMethod(t.Context(), "d1", iothub.MethodRequest{MethodName: "reboot"}, nil)
			if !tt.wantErr {
				require.NoError(t, err)
				_, err = client.GetTwin(t.Context(), "d1", nil)
				require.NoError(t, err)
				return
			}
			var respErr *azcore.ResponseError
			require.ErrorAs(t, err, &respErr)
			require.Equal(t, http.StatusUnauthorized, respErr.StatusCode)
		})
	}
}

// A hub allowing one call per hour of each kind: the second of each is
// throttled with IoT Hub's 429 ThrottlingException, in the nested envelope
// for methods and the classic one for twins and queries.
func TestThrottlingErrors(t *testing.T) {
	t.Parallel()
	const oncePerHour = 1.0 / 3600
	hub := localhubtest.New(t, &localhub.Options{Quotas: localhub.Quotas{
		DirectMethods: oncePerHour, TwinReads: oncePerHour, TwinUpdates: oncePerHour, Queries: oncePerHour,
	}})
	cs, err := hub.ServiceConnectionString("service")
	require.NoError(t, err)
	opts := hubOptions(hub, nil)
	opts.Retry = policy.RetryOptions{MaxRetries: -1} // see each 429 once
	client, err := iothub.NewClientFromConnectionString(cs, opts)
	require.NoError(t, err)
	localhubtest.ConnectDevice(t, hub, createDevice(t, hub, "dev-q"), echo)

	invoke := func() error {
		_, err := client.InvokeMethod(t.Context(), "dev-q", iothub.MethodRequest{MethodName: "reboot", ResponseTimeout: 10 * time.Second}, nil)
		return err
	}
	getTwin := func() error { _, err := client.GetTwin(t.Context(), "dev-q", nil); return err }
	updateTwin := func() error {
		_, err := client.UpdateTwin(t.Context(), "dev-q", iothub.TwinPatch{Tags: map[string]any{"a": 1}}, nil)
		return err
	}
	query := func() error {
		_, err := client.NewQueryPager("SELECT * FROM devices", nil).NextPage(t.Context())
		return err
	}
	for name, call := range map[string]func() error{"invoke": invoke, "get twin": getTwin, "update twin": updateTwin, "query": query} {
		require.NoError(t, call(), "first %s", name)
		requireCode(t, call(), http.StatusTooManyRequests, iothub.ThrottlingException)
	}
}
