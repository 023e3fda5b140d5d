package funchost

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// hopByHop headers belong to one connection and are never forwarded.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// forward passes the caller's request to the handler on its original path
// and the handler's response back, whatever its status
// (ProcessHttpInAndOutInvocationRequest, functions-custom-handler.md §2.4).
//
// Forwarding mode copies a body only when Content-Length > 0 and rebuilds
// the query from its parsed form (repeated keys comma-joined); proxying
// mode streams the request as it came and adds x-ms-invocation-id.
func (h *Host) forward(w http.ResponseWriter, r *http.Request, invocationID string) error {
	base := h.worker.baseURL()
	if base == "" {
		return errors.New("the custom handler is not running")
	}
	target := base + r.URL.EscapedPath()
	proxying := h.cfg.handler.proxying
	switch {
	case proxying && r.URL.RawQuery != "":
		target += "?" + r.URL.RawQuery
	case !proxying && r.URL.RawQuery != "":
		target += "?" + joinedQuery(r.URL.Query())
	}
	var body io.Reader
	if r.ContentLength > 0 || (proxying && r.ContentLength != 0) {
		body = r.Body
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, target, body)
	if err != nil {
		return fmt.Errorf("build forwarded request: %w", err)
	}
	if body != nil {
		out.ContentLength = r.ContentLength
	}
	for k, vs := range r.Header {
		out.Header[k] = append([]string(nil), vs...)
	}
	for _, k := range hopByHop {
		out.Header.Del(k)
	}
	// The caller's Host: the handler builds absolute URLs (Location) from it.
	out.Host = r.Host
	addInvocationHeaders(out.Header, invocationID)
	if proxying {
		out.Header.Set(headerMSInvocationID, invocationID)
	}

	resp, err := h.invoker.client.Do(out)
	if err != nil {
		return fmt.Errorf("forward to the custom handler: %w", err)
	}
	defer resp.Body.Close()
	for _, k := range hopByHop {
		resp.Header.Del(k)
	}
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	if _, ok := resp.Header["Content-Type"]; !ok {
		w.Header()["Content-Type"] = nil // pass "none" through: no sniffing
	}
	w.WriteHeader(resp.StatusCode)
	if proxying {
		return copyFlushing(w, resp.Body)
	}
	_, err = io.Copy(w, resp.Body)
	return ignoreClientGone(r, err)
}

// joinedQuery renders parsed query values the way the host rebuilds them:
// one entry per key, repeated values joined with ",".
func joinedQuery(q url.Values) string {
	out := url.Values{}
	for k, vs := range q {
		out.Set(k, strings.Join(vs, ","))
	}
	return out.Encode()
}

// copyFlushing streams src to w, flushing after every read.
func copyFlushing(w http.ResponseWriter, src io.Reader) error {
	f, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the caller went away
			}
			if f != nil {
				f.Flush()
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// ignoreClientGone drops copy errors caused by the caller disconnecting:
// the invocation itself succeeded.
func ignoreClientGone(r *http.Request, err error) error {
	if r.Context().Err() != nil {
		return nil
	}
	return err
}
