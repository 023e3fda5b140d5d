package funchost

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Invocation headers (functions-custom-handler.md §0.3, §8.4).
const (
	// HostVersion is the Functions host version the local host reports in
	// X-Azure-Functions-HostVersion and User-Agent.
	HostVersion          = "4.1037.0.0"
	headerInvocationID   = "X-Azure-Functions-InvocationId"
	headerHostVersion    = "X-Azure-Functions-HostVersion"
	headerMSInvocationID = "x-ms-invocation-id"
	userAgent            = "Azure-Functions-Host/" + HostVersion
	envelopeContentType  = "application/json; charset=utf-8"
	// maxResultBody bounds an invocation response read into memory.
	maxResultBody = 64 << 20
)

// invocationResult is the handler's answer to an envelope
// ({"Outputs","Logs","ReturnValue"}); keys match case-insensitively, as
// the host's Newtonsoft reader does.
type invocationResult struct {
	Outputs     map[string]json.RawMessage
	Logs        []json.RawMessage
	ReturnValue json.RawMessage
}

// output returns Outputs[name], matching the name case-insensitively.
func (r invocationResult) output(name string) (json.RawMessage, bool) {
	if v, ok := r.Outputs[name]; ok {
		return v, true
	}
	for k, v := range r.Outputs {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// invoker POSTs invocation envelopes to the handler.
type invoker struct {
	worker *worker
	client *http.Client
	logger *slog.Logger
}

// newInvocationClient is the host's client to the handler: loopback, no
// proxy, no redirects followed, and a timeout of functionTimeout + 1 min
// (none when functionTimeout is unset).
func newInvocationClient(functionTimeout time.Duration) *http.Client {
	c := &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	if functionTimeout > 0 {
		c.Timeout = functionTimeout + time.Minute
	}
	return c
}

// invoke POSTs body to /<FunctionName>. Any non-2xx answer, or one that is
// not an invocation result, fails the invocation (EnsureSuccessStatusCode);
// the error message is .NET's, since it reaches RetryContext.Exception.
func (inv *invoker) invoke(ctx context.Context, fn *function, invocationID string, body []byte) (invocationResult, error) {
	base := inv.worker.baseURL()
	if base == "" {
		return invocationResult{}, errors.New("the custom handler is not running")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+fn.name, bytes.NewReader(body))
	if err != nil {
		return invocationResult{}, err
	}
	req.Header.Set("Content-Type", envelopeContentType)
	addInvocationHeaders(req.Header, invocationID)
	resp, err := inv.client.Do(req)
	if err != nil {
		return invocationResult{}, fmt.Errorf("invocation request failed: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResultBody))
	if err != nil {
		return invocationResult{}, fmt.Errorf("read invocation response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		//lint:ignore ST1005 the Functions host's own message (HttpResponseMessage.EnsureSuccessStatusCode), which users search for
		return invocationResult{}, fmt.Errorf("Response status code does not indicate success: %d (%s).", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	var res invocationResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return invocationResult{}, fmt.Errorf("invalid HttpResponseMessage: the body is not an invocation result: %w", err)
	}
	inv.logInvocationLogs(ctx, fn, invocationID, res)
	return res, nil
}

// logInvocationLogs logs each entry of Logs once, at Information, against
// the invocation, as ProcessLogsFromHttpResponse does. The host logs the
// handler's stdout as well, under its own category: a handler that writes
// a line to both shows it twice, under func start and in Azure alike.
func (inv *invoker) logInvocationLogs(ctx context.Context, fn *function, invocationID string, res invocationResult) {
	category := functionUserCategory(fn.name)
	for _, l := range res.Logs {
		inv.logger.LogAttrs(ctx, slog.LevelInfo, scalarString(l),
			slog.String("function", fn.name), slog.String("invocationId", invocationID), slog.String("category", category))
	}
}

// addInvocationHeaders adds the host's headers. User-Agent is appended to
// what is there (HttpHeaders.UserAgent.ParseAdd), so a forwarded request
// keeps the caller's product tokens.
func addInvocationHeaders(h http.Header, invocationID string) {
	h.Set(headerHostVersion, HostVersion)
	h.Set(headerInvocationID, invocationID)
	if ua := h.Get("User-Agent"); ua != "" {
		h.Set("User-Agent", ua+" "+userAgent)
	} else {
		h.Set("User-Agent", userAgent)
	}
}

// newGUID returns a random (version 4) GUID in .NET's "D" format.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// sysData is the sys object of every envelope's Metadata.
type sysData struct {
	MethodName string `json:"MethodName"`
	UtcNow     string `json:"UtcNow"`
	RandGuid   string `json:"RandGuid"`
}

// dotnetUTC renders a UTC time as Newtonsoft renders a UTC DateTime:
// seven fractional digits at most, trailing zeros dropped, and Z.
const dotnetUTC = "2006-01-02T15:04:05.9999999Z"

func newSys(function string, now time.Time) sysData {
	return sysData{MethodName: function, UtcNow: now.UTC().Format(dotnetUTC), RandGuid: newGUID()}
}

// marshal encodes v as JSON without Go's HTML escaping of <, > and &,
// which Newtonsoft does not do either.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
