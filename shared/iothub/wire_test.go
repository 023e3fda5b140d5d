package iothub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"
)

// TestRequestWireFormat checks what each operation puts on the wire.
func TestRequestWireFormat(t *testing.T) {
	staleETag := azcore.ETag("AAAAAAAAAAc=")
	quotedETag := azcore.ETag(`"MzE4NzUxOTU1"`)
	tests := []struct {
		name       string
		respond    cannedResponse
		call       func(ctx context.Context, c *Client) error
		wantMethod string
		wantPath   string
		wantHeader map[string]string // "" means must be absent
		wantBody   string            // "" means no body
	}{
		{
			name:    "invoke with nil payload and defaults",
			respond: cannedResponse{status: 200, body: `{"status":200,"payload":null}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.InvokeMethod(ctx, "d1", MethodRequest{MethodName: "reboot"}, nil)
				return err
			},
			wantMethod: "POST",
			wantPath:   "/twins/d1/methods",
			wantHeader: map[string]string{"Content-Type": "application/json"},
			wantBody:   `{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		},
		{
			name:    "invoke with payload and timeouts rounded up",
			respond: cannedResponse{status: 200, body: `{"status":200,"payload":{}}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.InvokeMethod(ctx, "d1", MethodRequest{
					MethodName:      "setTemp",
					Payload:         json.RawMessage(`{"celsius":21.5}`),
					ResponseTimeout: 5500 * time.Millisecond,
					ConnectTimeout:  10 * time.Second,
				}, nil)
				return err
			},
			wantMethod: "POST",
			wantPath:   "/twins/d1/methods",
			wantBody:   `{"methodName":"setTemp","payload":{"celsius":21.5},"responseTimeoutInSeconds":6,"connectTimeoutInSeconds":10}`,
		},
		{
			name:    "device id escaped per segment",
			respond: cannedResponse{status: 200, body: `{"deviceId":"a#b?c%d:e;f+g"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetTwin(ctx, "a#b?c%d:e;f+g", nil)
				return err
			},
			wantMethod: "GET",
			wantPath:   "/twins/a%23b%3Fc%25d%3Ae%3Bf%2Bg",
		},
		{
			name:    "every byte but the unreserved ones is escaped",
			respond: cannedResponse{status: 200, body: `{"status":200,"payload":null}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.InvokeMethod(ctx, "d.v-1_+%2E%2E$@!*'(),=;:", MethodRequest{MethodName: "reboot"}, nil)
				return err
			},
			wantMethod: "POST",
			wantPath:   "/twins/d.v-1_%2B%252E%252E%24%40%21%2A%27%28%29%2C%3D%3B%3A/methods",
			wantBody:   `{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
		},
		{
			name:    "dots inside an id stay one segment",
			respond: cannedResponse{status: 200, body: `{"deviceId":"..."}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetTwin(ctx, "...", nil)
				return err
			},
			wantMethod: "GET",
			wantPath:   "/twins/...",
		},
		{
			name:    "get twin",
			respond: cannedResponse{status: 200, body: `{"deviceId":"d1"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetTwin(ctx, "d1", nil)
				return err
			},
			wantMethod: "GET",
			wantPath:   "/twins/d1",
			wantHeader: map[string]string{"Accept": "application/json"},
		},
		{
			name:    "update twin unconditionally",
			respond: cannedResponse{status: 200, body: `{"deviceId":"d1"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateTwin(ctx, "d1", TwinPatch{Desired: map[string]any{"fw": "1.2", "old": nil}}, nil)
				return err
			},
			wantMethod: "PATCH",
			wantPath:   "/twins/d1",
			wantHeader: map[string]string{"If-Match": ""},
			wantBody:   `{"properties":{"desired":{"fw":"1.2","old":null}}}`,
		},
		{
			name:    "update twin tags with etag",
			respond: cannedResponse{status: 200, body: `{"deviceId":"d1"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateTwin(ctx, "d1", TwinPatch{Tags: map[string]any{"site": "a"}}, &UpdateTwinOptions{IfMatch: &staleETag})
				return err
			},
			wantMethod: "PATCH",
			wantPath:   "/twins/d1",
			wantHeader: map[string]string{"If-Match": `"AAAAAAAAAAc="`},
			wantBody:   `{"tags":{"site":"a"}}`,
		},
		{
			name:    "create device",
			respond: cannedResponse{status: 200, body: `{"deviceId":"d1"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateDevice(ctx, "d1", nil)
				return err
			},
			wantMethod: "PUT",
			wantPath:   "/devices/d1",
			wantHeader: map[string]string{"If-Match": ""},
			wantBody:   `{"deviceId":"d1","status":"enabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}},"capabilities":{"iotEdge":false}}`,
		},
		{
			name:    "get device",
			respond: cannedResponse{status: 200, body: `{"deviceId":"d1"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetDevice(ctx, "d1", nil)
				return err
			},
			wantMethod: "GET",
			wantPath:   "/devices/d1",
		},
		{
			name:    "delete device defaults to any etag",
			respond: cannedResponse{status: 204},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.DeleteDevice(ctx, "d1", nil)
				return err
			},
			wantMethod: "DELETE",
			wantPath:   "/devices/d1",
			wantHeader: map[string]string{"If-Match": "*"},
		},
		{
			name:    "delete device keeps a quoted etag",
			respond: cannedResponse{status: 204},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.DeleteDevice(ctx, "d1", &DeleteDeviceOptions{IfMatch: &quotedETag})
				return err
			},
			wantMethod: "DELETE",
			wantPath:   "/devices/d1",
			wantHeader: map[string]string{"If-Match": `"MzE4NzUxOTU1"`},
		},
		{
			name:    "query first page",
			respond: cannedResponse{status: 200, body: `[]`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.NewQueryPager("SELECT * FROM devices", &QueryOptions{PageSize: 2}).NextPage(ctx)
				return err
			},
			wantMethod: "POST",
			wantPath:   "/devices/query",
			wantHeader: map[string]string{"x-ms-max-item-count": "2", "x-ms-continuation": ""},
			wantBody:   `{"query":"SELECT * FROM devices"}`,
		},
		{
			name:    "schedule device method with defaults",
			respond: cannedResponse{status: 200, body: `{"jobId":"j1","type":"scheduleDeviceMethod","status":"queued"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ScheduleDeviceMethod(ctx, "j1", "tags.site = 'a'", MethodRequest{MethodName: "reboot"}, nil)
				return err
			},
			wantMethod: "PUT",
			wantPath:   "/jobs/v2/j1",
			wantBody: `{"jobId":"j1","type":"scheduleDeviceMethod","queryCondition":"tags.site = 'a'","maxExecutionTimeInSeconds":3600,` +
				`"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}}`,
		},
		{
			name:    "schedule twin update at a time",
			respond: cannedResponse{status: 200, body: `{"jobId":"j2","type":"scheduleUpdateTwin","status":"queued"}`},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.ScheduleTwinUpdate(ctx, "j2", "*", TwinPatch{Tags: map[string]any{"wave": 2}, Desired: map[string]any{"fw": "2"}},
					&ScheduleTwinUpdateOptions{StartTime: time.Date(2030, 1, 2, 4, 4, 5, 0, time.FixedZone("", 3600)), MaxExecutionTime: 90500 * time.Millisecond})
				return err
			},
			wantMethod: "PUT",
			wantPath:   "/jobs/v2/j2",
			wantBody: `{"jobId":"j2","type":"scheduleUpdateTwin","queryCondition":"*","startTime":"2030-01-02T03:04:05Z","maxExecutionTimeInSeconds":91,` +
				`"updateTwin":{"etag":"*","tags":{"wave":2},"properties":{"desired":{"fw":"2"}}}}`,
		},
		{
			name:       "get job",
			respond:    cannedResponse{status: 200, body: `{"jobId":"j1","type":"scheduleDeviceMethod","status":"running"}`},
			call:       func(ctx context.Context, c *Client) error { _, err := c.GetJob(ctx, "j1", nil); return err },
			wantMethod: "GET",
			wantPath:   "/jobs/v2/j1",
		},
		{
			name:       "cancel job",
			respond:    cannedResponse{status: 200, body: `{"jobId":"j1","type":"scheduleDeviceMethod","status":"cancelled"}`},
			call:       func(ctx context.Context, c *Client) error { _, err := c.CancelJob(ctx, "j1", nil); return err },
			wantMethod: "POST",
			wantPath:   "/jobs/v2/j1/cancel",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newRecordedClient(t, tt.respond)
			require.NoError(t, tt.call(t.Context(), c))

			reqs := rec.recorded()
			require.Len(t, reqs, 1)
			got := reqs[0]
			require.Equal(t, tt.wantMethod, got.Method)
			require.Equal(t, tt.wantPath, got.Path)
			q, err := url.ParseQuery(got.Query)
			require.NoError(t, err)
			require.Equal(t, url.Values{"api-version": {"2021-04-12"}}, q)
			require.True(t, strings.HasPrefix(got.Header.Get("Authorization"), "SharedAccessSignature "))
			for k, v := range tt.wantHeader {
				require.Equal(t, v, got.Header.Get(k), "header %s", k)
			}
			if tt.wantBody == "" {
				require.Empty(t, got.Body)
				return
			}
			requireJSONBody(t, tt.wantBody, got.Body)
		})
	}
}

func TestInvokeMethodIsNeverRetried(t *testing.T) {
	for _, status := range []int{429, 500, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			c, rec := newRecordedClient(t, cannedResponse{status: status, header: map[string]string{"iothub-errorcode": "GatewayTimeout"}})
			_, err := c.InvokeMethod(t.Context(), "d1", MethodRequest{MethodName: "reboot"}, nil)
			var respErr *azcore.ResponseError
			require.ErrorAs(t, err, &respErr)
			require.Equal(t, status, respErr.StatusCode)
			require.Len(t, rec.recorded(), 1, "a direct method must run at most once")
		})
	}
}

func TestInvokeMethodTryTimeoutExceedsHubTimeouts(t *testing.T) {
	tests := []struct {
		name    string
		req     MethodRequest
		atLeast time.Duration
	}{
		{"defaults", MethodRequest{MethodName: "m"}, 30 * time.Second},
		{"long", MethodRequest{MethodName: "m", ResponseTimeout: 300 * time.Second, ConnectTimeout: 300 * time.Second}, 600 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The caller's own retry options must not shorten the try either.
			rec := &recorder{responses: []cannedResponse{{status: 200, body: `{"status":200}`}}}
			c, err := NewClientFromConnectionString(
				"HostName=h;SharedAccessKeyName=service;SharedAccessKey="+testKey,
				&ClientOptions{ClientOptions: policy.ClientOptions{Transport: rec, Retry: policy.RetryOptions{TryTimeout: time.Second}}},
			)
			require.NoError(t, err)
			start := time.Now()
			_, err = c.InvokeMethod(t.Context(), "d1", tt.req, nil)
			require.NoError(t, err)

			reqs := rec.recorded()
			require.Len(t, reqs, 1)
			require.False(t, reqs[0].Deadline.IsZero(), "the try has a deadline")
			require.Greater(t, reqs[0].Deadline.Sub(start), tt.atLeast+20*time.Second, "hub timeouts plus a margin")
		})
	}
}

func TestInvokeMethodResponse(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		wantStatus  int
		wantPayload string
	}{
		{"object", `{"status":201,"payload":{"ok":true}}`, 201, `{"ok":true}`},
		{"string payload", `{"status":200,"payload":"Reboot started"}`, 200, `"Reboot started"`},
		{"null payload", `{"status":500,"payload":null}`, 500, `null`},
		{"no payload", `{"status":200}`, 200, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newRecordedClient(t, cannedResponse{status: 200, body: tt.body})
			resp, err := c.InvokeMethod(t.Context(), "d1", MethodRequest{MethodName: "m"}, nil)
			require.NoError(t, err)
			require.Equal(t, tt.wantStatus, resp.Status)
			require.JSONEq(t, tt.wantPayload, string(resp.Payload))
		})
	}
}

func TestClientSideValidation(t *testing.T) {
	c, rec := newRecordedClient(t)
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"invoke empty device", func() error {
			_, err := c.InvokeMethod(ctx, "", MethodRequest{MethodName: "m"}, nil)
			return err
		}, "device id is empty"},
		{"invoke empty method", func() error {
			_, err := c.InvokeMethod(ctx, "d1", MethodRequest{}, nil)
			return err
		}, "MethodName is empty"},
		{"invoke invalid payload", func() error {
			_, err := c.InvokeMethod(ctx, "d1", MethodRequest{MethodName: "m", Payload: json.RawMessage(`{`)}, nil)
			return err
		}, "Payload valid JSON"},
		{"get twin", func() error { _, err := c.GetTwin(ctx, "", nil); return err }, "device id is empty"},
		{"update twin", func() error { _, err := c.UpdateTwin(ctx, "", TwinPatch{}, nil); return err }, "device id is empty"},
		{"create device", func() error { _, err := c.CreateDevice(ctx, "", nil); return err }, "device id is empty"},
		{"get device", func() error { _, err := c.GetDevice(ctx, "", nil); return err }, "device id is empty"},
		{"delete device", func() error { _, err := c.DeleteDevice(ctx, "", nil); return err }, "device id is empty"},
		{"invalid device id", func() error { _, err := c.GetTwin(ctx, "a b", nil); return err }, "device id contains ' '"},
		// Dot-segments would be resolved away (/twins/../methods is
		// /methods), so they are refused rather than sent.
		{"invoke on ..", func() error {
			_, err := c.InvokeMethod(ctx, "..", MethodRequest{MethodName: "reboot"}, nil)
			return err
		}, `".." cannot be sent as a path segment`},
		{"get twin of .", func() error { _, err := c.GetTwin(ctx, ".", nil); return err }, `"." cannot be sent as a path segment`},
		{"update twin of ..", func() error { _, err := c.UpdateTwin(ctx, "..", TwinPatch{}, nil); return err }, "cannot be sent"},
		{"create device ..", func() error { _, err := c.CreateDevice(ctx, "..", nil); return err }, "cannot be sent"},
		{"get device .", func() error { _, err := c.GetDevice(ctx, ".", nil); return err }, "cannot be sent"},
		{"delete device ..", func() error { _, err := c.DeleteDevice(ctx, "..", nil); return err }, "cannot be sent"},
		{"schedule with a bad job id", func() error {
			_, err := c.ScheduleDeviceMethod(ctx, "wave_1", "*", MethodRequest{MethodName: "reboot"}, nil)
			return err
		}, "job id contains '_'"},
		{"schedule a long job id", func() error {
			_, err := c.ScheduleTwinUpdate(ctx, strings.Repeat("j", 65), "*", TwinPatch{Tags: map[string]any{"a": 1}}, nil)
			return err
		}, "maximum is 64"},
		{"schedule without a condition", func() error {
			_, err := c.ScheduleDeviceMethod(ctx, "j1", " ", MethodRequest{MethodName: "reboot"}, nil)
			return err
		}, `use "*" for every device`},
		{"schedule without a method", func() error {
			_, err := c.ScheduleDeviceMethod(ctx, "j1", "*", MethodRequest{}, nil)
			return err
		}, "MethodName is empty"},
		{"schedule an empty patch", func() error {
			_, err := c.ScheduleTwinUpdate(ctx, "j1", "*", TwinPatch{}, nil)
			return err
		}, "neither tags nor desired"},
		{"schedule an invalid payload", func() error {
			_, err := c.ScheduleDeviceMethod(ctx, "j1", "*", MethodRequest{MethodName: "m", Payload: json.RawMessage(`{`)}, nil)
			return err
		}, "payload valid JSON"},
		{"get job without id", func() error { _, err := c.GetJob(ctx, "", nil); return err }, "job id is empty"},
		{"cancel job without id", func() error { _, err := c.CancelJob(ctx, "", nil); return err }, "job id is empty"},
		{"get job ..", func() error { _, err := c.GetJob(ctx, "..", nil); return err }, "cannot be sent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorContains(t, tt.call(), tt.want)
		})
	}
	require.Empty(t, rec.recorded(), "invalid calls send nothing")
}

func TestResponseErrorCarriesIoTHubCode(t *testing.T) {
	envelope := `{"Message":"{\"errorCode\":404103,\"trackingId\":\"x\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2019-11-12T22:27:46.5615872Z\"}","ExceptionMessage":""}`
	c, _ := newRecordedClient(t, cannedResponse{status: 404, header: map[string]string{"iothub-errorcode": "DeviceNotOnline"}, body: envelope})

	_, err := c.InvokeMethod(t.Context(), "d1", MethodRequest{MethodName: "reboot"}, nil)

	var respErr *azcore.ResponseError
	require.ErrorAs(t, err, &respErr)
	require.Equal(t, 404, respErr.StatusCode)
	require.Equal(t, string(DeviceNotOnline), respErr.ErrorCode)
	msg := err.Error()
	require.Contains(t, msg, "POST https://myhub.azure-devices.net/twins/d1/methods")
	require.Contains(t, msg, "RESPONSE 404")
	require.Contains(t, msg, "ERROR CODE: DeviceNotOnline")
	require.Contains(t, msg, "Timed out waiting for device to connect.")
	require.NotContains(t, msg, "SharedAccessSignature")
	require.NotContains(t, msg, testKey)
}

func TestQueryPagerFollowsContinuation(t *testing.T) {
	c, rec := newRecordedClient(t,
		cannedResponse{status: 200, header: map[string]string{"x-ms-item-type": "twin", "x-ms-continuation": "tok1"}, body: `[{"deviceId":"a"},{"deviceId":"b"}]`},
		cannedResponse{status: 200, header: map[string]string{"x-ms-item-type": "twin", "x-ms-continuation": "tok2"}, body: `[{"deviceId":"c"},{"deviceId":"d"}]`},
		cannedResponse{status: 200, header: map[string]string{"x-ms-item-type": "twin"}, body: `[{"deviceId":"e"}]`},
	)
	pager := c.NewQueryPager("SELECT * FROM devices", &QueryOptions{PageSize: 2})
	require.Empty(t, rec.recorded(), "creating a pager sends nothing")

	var ids []string
	pages := 0
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		require.NoError(t, err)
		require.Equal(t, "twin", page.ItemType)
		pages++
		for _, item := range page.Items {
			var twin Twin
			require.NoError(t, json.Unmarshal(item, &twin))
			ids = append(ids, twin.DeviceID)
		}
	}
	require.Equal(t, 3, pages)
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, ids)

	reqs := rec.recorded()
	require.Len(t, reqs, 3)
	for i, wantToken := range []string{"", "tok1", "tok2"} {
		require.Equal(t, wantToken, reqs[i].Header.Get("x-ms-continuation"), "request %d", i)
		require.Equal(t, "2", reqs[i].Header.Get("x-ms-max-item-count"))
	}
}

func TestQueryPagerStopsOnError(t *testing.T) {
	c, _ := newRecordedClient(t, cannedResponse{status: 400, header: map[string]string{"iothub-errorcode": "ArgumentInvalid"}, body: `{"Message":"bad query"}`})
	pager := c.NewQueryPager("SELEC", nil)
	_, err := pager.NextPage(t.Context())
	var respErr *azcore.ResponseError
	require.ErrorAs(t, err, &respErr)
	require.Equal(t, string(ArgumentInvalid), respErr.ErrorCode)
	require.False(t, pager.More())
}

func TestNewClientFromConnectionStringErrors(t *testing.T) {
	tests := []struct {
		name string
		cs   string
		opts *ClientOptions
		want string
	}{
		{"empty", "", nil, "parsing connection string"},
		{"no host", "SharedAccessKeyName=p;SharedAccessKey=" + testKey, nil, "HostName"},
		{"device string", "HostName=h;DeviceId=d1;SharedAccessKey=" + testKey, nil, "names a device"},
		{"key not base64", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=not*base64", nil, "parsing connection string"},
		{"relative endpoint", "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + testKey, &ClientOptions{Endpoint: "127.0.0.1:443"}, "Endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClientFromConnectionString(tt.cs, tt.opts)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), testKey)
		})
	}
}

// staticCredential returns a fixed bearer token.
type staticCredential string

func (s staticCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	if len(opts.Scopes) != 1 || opts.Scopes[0] != "https://iothubs.azure.net/.default" {
		return azcore.AccessToken{}, errors.New("unexpected scopes")
	}
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestNewClientBearer(t *testing.T) {
	rec := &recorder{responses: []cannedResponse{{status: 200, body: `{"deviceId":"d1"}`}}}
	c, err := NewClient("myhub.azure-devices.net", staticCredential("t0k"), &ClientOptions{
		Endpoint:      "https://127.0.0.1:8443/",
		ClientOptions: policy.ClientOptions{Transport: rec},
	})
	require.NoError(t, err)
	_, err = c.GetTwin(t.Context(), "d1", nil)
	require.NoError(t, err)

	reqs := rec.recorded()
	require.Len(t, reqs, 1)
	require.Equal(t, "Bearer t0k", reqs[0].Header.Get("Authorization"))
	require.Equal(t, "/twins/d1", reqs[0].Path)

	_, err = NewClient("", staticCredential("t"), nil)
	require.ErrorContains(t, err, "hostname is empty")
	_, err = NewClient("h", nil, nil)
	require.ErrorContains(t, err, "credential is nil")
}

// TestPipelineAllowsAPIVersionOverride keeps ClientOptions.APIVersion
// working, as in other Azure SDK clients.
func TestPipelineAllowsAPIVersionOverride(t *testing.T) {
	rec := &recorder{responses: []cannedResponse{{status: 200, body: `{}`}}}
	c, err := NewClientFromConnectionString("HostName=h;SharedAccessKeyName=p;SharedAccessKey="+testKey, &ClientOptions{
		ClientOptions: policy.ClientOptions{Transport: rec, APIVersion: "2020-09-30"},
	})
	require.NoError(t, err)
	_, err = c.GetTwin(t.Context(), "d1", nil)
	require.NoError(t, err)
	require.Equal(t, "api-version=2020-09-30", rec.recorded()[0].Query)
}

var _ policy.Transporter = (*recorder)(nil)

func TestListJobsWireFormat(t *testing.T) {
	c, rec := newRecordedClient(t,
		cannedResponse{status: 200, header: map[string]string{"x-ms-continuation": "t1", "x-ms-item-type": "JobResponse"}, body: `[{"jobId":"a","type":"scheduleDeviceMethod","status":"completed"}]`},
		cannedResponse{status: 200, body: `[{"jobId":"b","type":"scheduleDeviceMethod","status":"completed"}]`},
	)
	pager := c.NewListJobsPager(&ListJobsOptions{Type: JobTypeScheduleDeviceMethod, Status: JobStatusCompleted, PageSize: 1})
	var ids []string
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		require.NoError(t, err)
		for _, j := range page.Jobs {
			ids = append(ids, j.JobID)
		}
	}
	require.Equal(t, []string{"a", "b"}, ids)
	reqs := rec.recorded()
	require.Len(t, reqs, 2)
	for i, r := range reqs {
		require.Equal(t, "GET", r.Method)
		require.Equal(t, "/jobs/v2/query", r.Path)
		q, err := url.ParseQuery(r.Query)
		require.NoError(t, err)
		require.Equal(t, url.Values{"api-version": {"2021-04-12"}, "jobType": {"scheduleDeviceMethod"}, "jobStatus": {"completed"}}, q)
		require.Equal(t, "1", r.Header.Get("x-ms-max-item-count"))
		require.Equal(t, []string{"", "t1"}[i], r.Header.Get("x-ms-continuation"))
	}
}

// IoT Hub may count an accepted job against the active-job limit before
// it answers a retry of the same creation: a 429
// ThrottlingMaxActiveJobCountExceeded is checked against the job read back.
func TestScheduleRecognisesItsOwnJobBehind429(t *testing.T) {
	existing := `{"jobId":"w1","type":"scheduleDeviceMethod","status":"scheduled","queryCondition":"*",` +
		`"maxExecutionTimeInSeconds":3600,"createdTime":"2030-01-01T00:00:00Z","startTime":"2030-01-01T01:00:00Z","endTime":"9999-12-31T23:59:59.9999999Z",` +
		`"cloudToDeviceMethod":{"methodName":"reboot","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}}`
	throttled := cannedResponse{status: 429, header: map[string]string{"iothub-errorcode": "ThrottlingMaxActiveJobCountExceeded"},
		body: `{"Message":"ErrorCode:ThrottlingMaxActiveJobCountExceeded;429","ExceptionMessage":""}`}
	c, rec := newRecordedClient(t, throttled, throttled, throttled, throttled, cannedResponse{status: 200, body: existing})
	resp, err := c.ScheduleDeviceMethod(t.Context(), "w1", "*", MethodRequest{MethodName: "reboot"}, nil)
	require.NoError(t, err)
	require.True(t, resp.Existing)
	require.Equal(t, JobStatusScheduled, resp.Status)
	require.Nil(t, resp.EndTime, "9999-12-31 means not ended")
	reqs := rec.recorded()
	require.Equal(t, "GET", reqs[len(reqs)-1].Method)

	// A different job behind the 429 leaves the 429.
	c, _ = newRecordedClient(t, throttled, throttled, throttled, throttled, cannedResponse{status: 200, body: existing})
	_, err = c.ScheduleDeviceMethod(t.Context(), "w1", "*", MethodRequest{MethodName: "shutdown"}, nil)
	var respErr *azcore.ResponseError
	require.ErrorAs(t, err, &respErr)
	require.Equal(t, "ThrottlingMaxActiveJobCountExceeded", respErr.ErrorCode)
}
