package iothub

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// newRequest builds a request for the API path made of segments, each
// escaped with url.PathEscape, carrying api-version.
func (c *Client) newRequest(ctx context.Context, method string, segments ...string) (*policy.Request, error) {
	escaped := make([]string, len(segments))
	for i, s := range segments {
		escaped[i] = url.PathEscape(s)
	}
	req, err := runtime.NewRequest(ctx, method, runtime.JoinPaths(c.endpoint, escaped...))
	if err != nil {
		return nil, fmt.Errorf("iothub: building %s request: %w", method, err)
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", apiVersion)
	req.Raw().URL.RawQuery = q.Encode()
	req.Raw().Header.Set("Accept", "application/json")
	return req, nil
}

// do sends req and returns the response if its status is one of want; any
// other status becomes an *azcore.ResponseError.
func (c *Client) do(req *policy.Request, want ...int) (*http.Response, error) {
	resp, err := c.internal.Pipeline().Do(req)
	if err != nil {
		return nil, err
	}
	if !runtime.HasStatusCode(resp, want...) {
		return nil, newResponseError(resp)
	}
	return resp, nil
}

// ifMatchValue formats an etag for If-Match as IoT Hub expects it: "*" bare
// and any other etag quoted (the hub's body etags come unquoted).
func ifMatchValue(etag *azcore.ETag) string {
	if etag == nil || *etag == azcore.ETagAny || *etag == `"*"` {
		return "*"
	}
	s := string(*etag)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s
	}
	return `"` + s + `"`
}
