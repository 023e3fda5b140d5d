// Package hubrest makes the few IoT Hub service REST calls the simulator
// needs (create or reuse devices), signed with a shared access policy. It
// talks to Azure IoT Hub and to the local hub alike.
package hubrest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/amenzhinsky/iothub/common"
)

// APIVersion is the service API version sent with every call, the one the
// current Azure SDKs use.
const APIVersion = "2021-04-12"

// Options for NewClient. The zero value is right for Azure IoT Hub.
type Options struct {
	// Endpoint is the base URL of the REST API (https://127.0.0.1:8443 for
	// the local hub); empty means https://<HostName>.
	Endpoint string
	// HTTPClient sends the requests (give it the local hub's CA); nil
	// means a client with a one-minute timeout and the system roots.
	HTTPClient *http.Client
}

// Client calls the service API with a shared access policy.
type Client struct {
	hostName, keyName, key string
	endpoint               *url.URL
	http                   *http.Client
}

// NewClient parses a service connection string
// (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...).
func NewClient(serviceConnectionString string, opts Options) (*Client, error) {
	m, err := common.ParseConnectionString(serviceConnectionString, "HostName", "SharedAccessKeyName", "SharedAccessKey")
	if err != nil {
		return nil, fmt.Errorf("service connection string: %w", err)
	}
	if _, err := base64.StdEncoding.DecodeString(m["SharedAccessKey"]); err != nil {
		return nil, errors.New("service connection string: SharedAccessKey is not base64")
	}
	c := &Client{hostName: m["HostName"], keyName: m["SharedAccessKeyName"], key: m["SharedAccessKey"], http: opts.HTTPClient}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = "https://" + c.hostName
	}
	if c.endpoint, err = url.Parse(endpoint); err != nil || c.endpoint.Scheme == "" || c.endpoint.Host == "" {
		return nil, fmt.Errorf("service endpoint %q: want a URL such as https://127.0.0.1:8443", endpoint)
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: time.Minute}
	}
	return c, nil
}

// HostName is the hub's host name from the connection string.
func (c *Client) HostName() string { return c.hostName }

// ResponseError is a call the hub answered with a status other than 2xx.
type ResponseError struct {
	StatusCode int
	ErrorCode  string // the iothub-errorcode header
	Body       []byte
	retryAfter string
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("IoT Hub answered %d %s: %s", e.StatusCode, e.ErrorCode, bytes.TrimSpace(e.Body))
}

// Do sends one request to path (such as /devices/dev-1) and returns the
// body of a 2xx answer, or a *ResponseError. body, when not nil, is JSON.
// Throttling (429) and 503 are retried a few times, after Retry-After when
// the hub sends it.
func (c *Client) Do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	const attempts = 5
	wait := time.Second
	for attempt := 1; ; attempt++ {
		b, err := c.do(ctx, method, path, body)
		var re *ResponseError
		if attempt == attempts || !errors.As(err, &re) || (re.StatusCode != http.StatusTooManyRequests && re.StatusCode != http.StatusServiceUnavailable) {
			return b, err
		}
		if d, ok := retryAfter(re); ok {
			wait = d
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		wait *= 2
	}
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	u := c.endpoint.JoinPath(path)
	u.RawQuery = url.Values{"api-version": {APIVersion}}.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	// The token names the hub's host name, as Azure expects, not the
	// endpoint we dial.
	sas, err := common.NewSharedAccessSignature(c.hostName, c.keyName, c.key, time.Now().Add(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	req.Header.Set("Authorization", sas.String())
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &ResponseError{StatusCode: resp.StatusCode, ErrorCode: resp.Header.Get("iothub-errorcode"), Body: b, retryAfter: resp.Header.Get("Retry-After")}
	}
	return b, nil
}

func retryAfter(re *ResponseError) (time.Duration, bool) {
	secs, err := strconv.Atoi(re.retryAfter)
	if err != nil || secs <= 0 || secs > 60 {
		return 0, false
	}
	return time.Duration(secs) * time.Second, true
}

// device is the part of the registry's device JSON we read and write.
type device struct {
	DeviceID       string `json:"deviceId"`
	Authentication struct {
		Type         string        `json:"type"`
		SymmetricKey *symmetricKey `json:"symmetricKey,omitempty"`
	} `json:"authentication"`
}

type symmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// EnsureDevice creates the device with new SAS keys, or reuses it when it
// already exists (409 DeviceAlreadyExists), and returns its connection
// string. Keys are made here rather than left to the hub, so that creation
// does not depend on how a hub fills in missing keys.
func (c *Client) EnsureDevice(ctx context.Context, id string) (string, error) {
	var d device
	d.DeviceID = id
	d.Authentication.Type = "sas"
	d.Authentication.SymmetricKey = &symmetricKey{newKey(), newKey()}
	body, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	path := "/devices/" + url.PathEscape(id)
	got, err := c.Do(ctx, http.MethodPut, path, body)
	var re *ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusConflict {
		got, err = c.Do(ctx, http.MethodGet, path, nil)
	}
	if err != nil {
		return "", fmt.Errorf("device %s: %w", id, err)
	}
	var reg device // what the registry holds, which may not be what we sent
	if err := json.Unmarshal(got, &reg); err != nil {
		return "", fmt.Errorf("device %s: decode registry answer: %w", id, err)
	}
	if reg.Authentication.SymmetricKey == nil || reg.Authentication.SymmetricKey.PrimaryKey == "" {
		return "", fmt.Errorf("device %s exists but has no symmetric key (authentication type %q)", id, reg.Authentication.Type)
	}
	return "HostName=" + c.hostName + ";DeviceId=" + id + ";SharedAccessKey=" + reg.Authentication.SymmetricKey.PrimaryKey, nil
}

// newKey is a 256-bit key in base64, as IoT Hub generates them.
func newKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(b)
}
