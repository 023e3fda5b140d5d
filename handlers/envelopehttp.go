package handlers

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/iothub-reboot/devmgmt/handlers/internal/invocation"
)

// Binding names of the HTTP functions (functions/*/function.json).
const (
	httpTriggerBinding = "req"
	httpOutputBinding  = "res"
)

// maxInvocationBody bounds an HTTP function's envelope: the 16 KiB request
// body at most doubles in size once JSON-escaped, plus headers.
const maxInvocationBody = 1 << 20

// fromEnvelope adapts next, a handler for the public request, to the
// default custom-handler mode: the host POSTs {"Data":{"req":{…}}} to
// /<FunctionName> and expects {"Outputs":{"res":{statusCode,headers,body}}}.
// The original request is rebuilt (URL, method, headers, body, route
// values from Params), next answers it as it would a forwarded request,
// and its answer is wrapped for the host. Business errors travel inside
// Outputs.res with a 200 envelope: a non-2xx envelope would fail the
// invocation and the caller would see a bare 500.
func fromEnvelope(d Deps, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInvocationBody))
		if err != nil {
			writeProblem(w, r, badRequest(codeMalformedInvocation, "The invocation body could not be read: "+err.Error()))
			return
		}
		in, err := invocation.DecodeHTTPRequest(body, httpTriggerBinding)
		if err != nil {
			writeProblem(w, r, badRequest(codeMalformedInvocation, err.Error()))
			return
		}
		req, err := originalRequest(r, in)
		if err != nil {
			writeProblem(w, r, badRequest(codeMalformedInvocation, err.Error()))
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, req)

		resp := invocation.NewResponse()
		resp.Outputs[httpOutputBinding] = invocation.HTTPResponse{
			StatusCode: rec.Code,
			Headers:    flattenHeaders(rec.Header()),
			Body:       rec.Body.String(),
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// originalRequest rebuilds the caller's request from the envelope. The
// host's own headers (invocation id) are kept so logs correlate.
func originalRequest(outer *http.Request, in invocation.HTTPRequest) (*http.Request, error) {
	u, err := url.Parse(in.URL)
	if err != nil || u.Path == "" {
		return nil, errInvocation("Data.req.Url is not an absolute URL")
	}
	if u.RawQuery == "" && len(in.Query) > 0 {
		q := url.Values{}
		for k, v := range in.Query {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
	}
	method := strings.ToUpper(in.Method)
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(outer.Context(), method, u.String(), bytes.NewReader(in.Body))
	if err != nil {
		return nil, errInvocation("Data.req does not describe a valid request: " + err.Error())
	}
	for k, vs := range in.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if id := outer.Header.Get(headerInvocationID); id != "" {
		req.Header.Set(headerInvocationID, id)
	}
	req.Host = u.Host
	req.ContentLength = int64(len(in.Body))
	req.RequestURI = u.RequestURI()
	req.Pattern = outer.Pattern
	for k, v := range in.Params {
		req.SetPathValue(k, v)
	}
	return req, nil
}

// flattenHeaders renders headers as the host wants them: one string each.
// Content-Length is left to the host, which writes the body itself.
func flattenHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		if k == "Content-Length" {
			continue
		}
		out[k] = strings.Join(vs, ", ")
	}
	return out
}

type errInvocation string

func (e errInvocation) Error() string { return string(e) }
