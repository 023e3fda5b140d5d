package funchost

import (
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// maxHTTPRequestBody bounds a request body read into an envelope (the
// host's default request size limit is 100 MB).
const maxHTTPRequestBody = 100 << 20

// httpRequestData is Data.<trigger> for an HTTP trigger in the default
// mode (GetRequestAsJObject, functions-custom-handler.md §2.1).
type httpRequestData struct {
	URL        string              `json:"Url"`
	Method     string              `json:"Method"`
	Query      map[string]string   `json:"Query"`
	Headers    map[string][]string `json:"Headers"`
	Params     map[string]string   `json:"Params"`
	Identities []claimsIdentity    `json:"Identities"`
	Body       *string             `json:"Body,omitempty"`
}

// claimsIdentity is a serialized .NET ClaimsIdentity; locally every caller
// is the anonymous identity.
type claimsIdentity struct {
	AuthenticationType *string `json:"AuthenticationType"`
	IsAuthenticated    bool    `json:"IsAuthenticated"`
	Actor              any     `json:"Actor"`
	BootstrapContext   any     `json:"BootstrapContext"`
	Claims             []any   `json:"Claims"`
	Label              *string `json:"Label"`
	Name               *string `json:"Name"`
	NameClaimType      string  `json:"NameClaimType"`
	RoleClaimType      string  `json:"RoleClaimType"`
}

var anonymousIdentity = claimsIdentity{
	Claims:        []any{},
	NameClaimType: "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
	RoleClaimType: "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
}

type httpEnvelope struct {
	Data     map[string]httpRequestData `json:"Data"`
	Metadata map[string]any             `json:"Metadata"`
}

// buildHTTPEnvelope renders the invocation body for an HTTP trigger named
// trigger. body is the request body, read only when Content-Length > 0.
func buildHTTPEnvelope(r *http.Request, trigger string, params map[string]string, body []byte, sys sysData) ([]byte, error) {
	q := r.URL.Query()
	data := httpRequestData{
		URL:        "http://" + r.Host + r.URL.RequestURI(),
		Method:     r.Method,
		Query:      make(map[string]string, len(q)),
		Headers:    make(map[string][]string, len(r.Header)+1),
		Params:     params,
		Identities: []claimsIdentity{anonymousIdentity},
	}
	if data.Params == nil {
		data.Params = map[string]string{}
	}
	meta := map[string]any{}
	for k, vs := range q {
		v := strings.Join(vs, ",")
		data.Query[k] = v
		if !strings.EqualFold(k, "code") {
			meta[k] = jsonString(v)
		}
	}
	headers := map[string]string{}
	for k, vs := range r.Header {
		data.Headers[k] = vs
		headers[k] = strings.Join(vs, ",")
	}
	// ASP.NET lists Host among the request headers.
	if _, ok := r.Header["Host"]; !ok && r.Host != "" {
		data.Headers["Host"] = []string{r.Host}
		headers["Host"] = r.Host
	}
	for k, v := range params {
		meta[k] = jsonString(v)
	}
	meta["Query"] = data.Query
	meta["Headers"] = headers
	meta["sys"] = sys
	if len(body) > 0 {
		s := string(body)
		if binaryMediaType(r.Header.Get("Content-Type")) {
			s = base64.StdEncoding.EncodeToString(body)
		}
		data.Body = &s
	}
	return marshal(httpEnvelope{Data: map[string]httpRequestData{trigger: data}, Metadata: meta})
}

func binaryMediaType(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/octet-stream" || strings.HasPrefix(mt, "multipart/"))
}

// jsonString is v JSON-encoded once more: the host's encoding of string
// metadata values.
func jsonString(v string) string {
	b, _ := marshal(v)
	return string(b)
}

// invokeHTTP runs an HTTP function in the default mode: envelope to
// /<FunctionName>, Outputs.<http out> mapped back to a response.
func (h *Host) invokeHTTP(w http.ResponseWriter, r *http.Request, fn *function, params map[string]string, invocationID string) error {
	var body []byte
	if r.ContentLength > 0 {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxHTTPRequestBody)); err != nil {
			return fmt.Errorf("read request body: %w", err)
		}
	}
	env, err := buildHTTPEnvelope(r, fn.trigger.Name, params, body, newSys(fn.name, time.Now()))
	if err != nil {
		return fmt.Errorf("build invocation: %w", err)
	}
	res, err := h.invoker.invoke(r.Context(), fn, invocationID, env)
	if err != nil {
		return err
	}
	resp, err := httpResponseOf(fn, res)
	if err != nil {
		return err
	}
	resp.write(w)
	return nil
}
