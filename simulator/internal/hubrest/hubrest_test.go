package hubrest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

const serviceCS = "HostName=myhub.azure-devices.net;SharedAccessKeyName=registryReadWrite;SharedAccessKey=c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY="

// fakeHub answers requests from a script, recording them, with no sockets.
type fakeHub struct {
	mu       sync.Mutex
	requests []recorded
	answers  []answer
}

type recorded struct {
	At     time.Time
	Method string
	URL    *url.URL
	Header http.Header
	Body   string
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *fakeHub) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, recorded{At: time.Now(), Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Body: string(body)})
	if len(f.answers) == 0 {
		return nil, errors.New("fakeHub: no answer scripted")
	}
	a := f.answers[0]
	f.answers = f.answers[1:]
	h := a.header
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: a.status, Header: h, Body: io.NopCloser(strings.NewReader(a.body)), Request: r}, nil
}

func newTestClient(t *testing.T, endpoint string, answers ...answer) (*Client, *fakeHub) {
	t.Helper()
	hub := &fakeHub{answers: answers}
	c, err := NewClient(serviceCS, Options{Endpoint: endpoint, HTTPClient: &http.Client{Transport: hub}})
	require.NoError(t, err)
	return c, hub
}

const deviceJSON = `{"deviceId":"dev 1","authentication":{"type":"sas","symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"}},"status":"enabled"}`

func TestEnsureDeviceCreates(t *testing.T) {
	c, hub := newTestClient(t, "https://127.0.0.1:8443", answer{status: 200, body: deviceJSON})
	cs, err := c.EnsureDevice(context.Background(), "dev 1")
	require.NoError(t, err)
	require.Equal(t, "HostName=myhub.azure-devices.net;DeviceId=dev 1;SharedAccessKey=cHJpbWFyeQ==", cs)

	require.Len(t, hub.requests, 1)
	r := hub.requests[0]
	require.Equal(t, http.MethodPut, r.Method)
	require.Equal(t, "127.0.0.1:8443", r.URL.Host, "dials the endpoint")
	require.Equal(t, "/devices/dev%201", r.URL.EscapedPath())
	require.Equal(t, "api-version=2021-04-12", r.URL.RawQuery)
	require.Equal(t, "application/json; charset=utf-8", r.Header.Get("Content-Type"))
	auth := r.Header.Get("Authorization")
	require.True(t, strings.HasPrefix(auth, "SharedAccessSignature sr=myhub.azure-devices.net&sig="), "token names the hub, not the endpoint: %s", auth)
	require.True(t, strings.HasSuffix(auth, "&skn=registryReadWrite"), auth)

	var sent struct {
		DeviceID       string `json:"deviceId"`
		Authentication struct {
			Type         string `json:"type"`
			SymmetricKey struct{ PrimaryKey, SecondaryKey string }
		} `json:"authentication"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.Body), &sent))
	require.Equal(t, "dev 1", sent.DeviceID)
	require.Equal(t, "sas", sent.Authentication.Type)
	for _, k := range []string{sent.Authentication.SymmetricKey.PrimaryKey, sent.Authentication.SymmetricKey.SecondaryKey} {
		raw, err := base64.StdEncoding.DecodeString(k)
		require.NoError(t, err)
		require.Len(t, raw, 32, "256-bit keys")
	}
	require.NotEqual(t, sent.Authentication.SymmetricKey.PrimaryKey, sent.Authentication.SymmetricKey.SecondaryKey)
}

func TestEnsureDeviceReusesAnExistingOne(t *testing.T) {
	c, hub := newTestClient(t, "",
		answer{status: 409, header: http.Header{"Iothub-Errorcode": {"DeviceAlreadyExists"}}, body: `{"Message":"ErrorCode:DeviceAlreadyExists;..."}`},
		answer{status: 200, body: deviceJSON})
	cs, err := c.EnsureDevice(context.Background(), "dev 1")
	require.NoError(t, err)
	require.Equal(t, "HostName=myhub.azure-devices.net;DeviceId=dev 1;SharedAccessKey=cHJpbWFyeQ==", cs)
	require.Len(t, hub.requests, 2)
	require.Equal(t, http.MethodGet, hub.requests[1].Method)
	require.Equal(t, "myhub.azure-devices.net", hub.requests[1].URL.Host, "no endpoint: https://HostName")
	require.Empty(t, hub.requests[1].Body)
}

func TestEnsureDeviceErrors(t *testing.T) {
	tests := []struct {
		name    string
		answers []answer
		want    string
	}{
		{"unauthorized", []answer{{status: 401, header: http.Header{"Iothub-Errorcode": {"IotHubUnauthorizedAccess"}}, body: `{"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized"}`}},
			"device d: IoT Hub answered 401 IotHubUnauthorizedAccess"},
		{"existing X.509 device", []answer{{status: 409}, {status: 200, body: `{"deviceId":"d","authentication":{"type":"selfSigned","x509Thumbprint":{}}}`}},
			`device d exists but has no symmetric key (authentication type "selfSigned")`},
		{"not JSON", []answer{{status: 200, body: `<html>`}}, "device d: decode registry answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, "", tt.answers...)
			_, err := c.EnsureDevice(context.Background(), "d")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestDoRetriesThrottling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, hub := newTestClient(t, "",
			answer{status: 429, header: http.Header{"Retry-After": {"7"}}},
			answer{status: 503},
			answer{status: 200, body: `{}`})
		start := time.Now()
		b, err := c.Do(context.Background(), http.MethodGet, "/statistics/service", nil)
		require.NoError(t, err)
		require.Equal(t, `{}`, string(b))
		require.Len(t, hub.requests, 3)
		require.Equal(t, 7*time.Second, hub.requests[1].At.Sub(start), "honours Retry-After")
		require.Equal(t, 14*time.Second, hub.requests[2].At.Sub(hub.requests[1].At), "then doubles")
	})
}

func TestDoGivesUpAfterFiveAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		throttled := answer{status: 429, header: http.Header{"Iothub-Errorcode": {"ThrottlingException"}}}
		c, hub := newTestClient(t, "", throttled, throttled, throttled, throttled, throttled)
		_, err := c.Do(context.Background(), http.MethodGet, "/x", nil)
		var re *ResponseError
		require.True(t, errors.As(err, &re))
		require.Equal(t, 429, re.StatusCode)
		require.Equal(t, "ThrottlingException", re.ErrorCode)
		require.Len(t, hub.requests, 5)
	})
}

func TestNewClientRefusesBadInput(t *testing.T) {
	tests := []struct {
		cs, endpoint, want string
	}{
		{"HostName=h;SharedAccessKeyName=p", "", "SharedAccessKey is required"},
		{"HostName=h;SharedAccessKeyName=p;SharedAccessKey=not base64!", "", "not base64"},
		{"garbage", "", "malformed connection string"},
		{serviceCS, "127.0.0.1:8443", "want a URL"},
	}
	for _, tt := range tests {
		_, err := NewClient(tt.cs, Options{Endpoint: tt.endpoint})
		require.ErrorContains(t, err, tt.want, "NewClient(%q, %q)", tt.cs, tt.endpoint)
	}
}
