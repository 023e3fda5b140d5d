package iothub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// newRequest builds a request for the API path made of segments, each
// escaped with escapeSegment, carrying api-version. A segment that cannot
// be sent as one path segment is an error, and nothing is sent.
func (c *Client) newRequest(ctx context.Context, method string, segments ...string) (*policy.Request, error) {
	var b strings.Builder
	b.WriteString(c.endpoint)
	for _, s := range segments {
		escaped, err := escapeSegment(s)
		if err != nil {
			return nil, fmt.Errorf("iothub: building %s request: %w", method, err)
		}
		b.WriteByte('/')
		b.WriteString(escaped)
	}
	// Not runtime.JoinPaths: its path.Join would resolve ".." segments.
	req, err := runtime.NewRequest(ctx, method, b.String())
	if err != nil {
		return nil, fmt.Errorf("iothub: building %s request: %w", method, err)
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", apiVersion)
	req.Raw().URL.RawQuery = q.Encode()
	req.Raw().Header.Set("Accept", "application/json")
	return req, nil
}

// escapeSegment renders s as exactly one path segment: every byte but
// RFC 3986's unreserved characters (letters, digits, - . _ ~) is
// percent-encoded, so no id can add a segment ('/'), start a query or
// fragment ('?', '#') or smuggle an escape ('%'). "." and ".." are
// refused: they are dot-segments, which URL normalisation on any hop
// (a proxy, the hub's front end) removes together with the segment
// before, sending the request to another resource. IoT Hub ids may
// contain dots, but an id made only of one or two dots cannot be
// addressed over HTTP.
func escapeSegment(s string) (string, error) {
	switch s {
	case "":
		return "", errors.New("empty path segment")
	case ".", "..":
		return "", fmt.Errorf("%q cannot be sent as a path segment", s)
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String(), nil
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
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
