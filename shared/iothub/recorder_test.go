package iothub

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/stretchr/testify/require"
)

// testKey is a valid base64 key used by every unit test.
const testKey = "c2VjcmV0LWtleS1mb3ItdW5pdC10ZXN0cy0wMTIzNDU2Nzg5"

// recordedRequest is what our client put on the wire.
type recordedRequest struct {
	Method   string
	Path     string // escaped, as sent
	Query    string
	Header   http.Header
	Body     []byte
	Deadline time.Time // zero when the request context had none
}

// recorder is a policy.Transporter that records requests and answers them
// with canned responses. It checks OUR wire output; it does not stand in for
// the hub's behaviour.
type recorder struct {
	mu        sync.Mutex
	requests  []recordedRequest
	responses []cannedResponse // used in order; the last one repeats
}

type cannedResponse struct {
	status int
	header map[string]string
	body   string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	deadline, _ := req.Context().Deadline()
	r.mu.Lock()
	r.requests = append(r.requests, recordedRequest{
		Method:   req.Method,
		Path:     req.URL.EscapedPath(),
		Query:    req.URL.RawQuery,
		Header:   req.Header.Clone(),
		Body:     body,
		Deadline: deadline,
	})
	canned := cannedResponse{status: http.StatusOK, body: "{}"}
	if n := len(r.requests); len(r.responses) > 0 {
		canned = r.responses[min(n, len(r.responses))-1]
	}
	r.mu.Unlock()

	resp := &http.Response{
		StatusCode: canned.status,
		Status:     http.StatusText(canned.status),
		Header:     http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body:       io.NopCloser(strings.NewReader(canned.body)),
		Request:    req,
	}
	for k, v := range canned.header {
		resp.Header.Set(k, v)
	}
	return resp, nil
}

func (r *recorder) recorded() []recordedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedRequest(nil), r.requests...)
}

// newRecordedClient returns a connection-string client whose requests go to
// a recorder answering with responses.
func newRecordedClient(t *testing.T, responses ...cannedResponse) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{responses: responses}
	c, err := NewClientFromConnectionString(
		"HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey="+testKey,
		&ClientOptions{ClientOptions: policy.ClientOptions{
			Transport: rec,
			// Fast retries, so tests that exercise them stay quick.
			Retry: policy.RetryOptions{RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond},
		}},
	)
	require.NoError(t, err)
	return c, rec
}

func requireJSONBody(t *testing.T, want string, got []byte) {
	t.Helper()
	require.JSONEq(t, want, string(bytes.TrimSpace(got)))
}
