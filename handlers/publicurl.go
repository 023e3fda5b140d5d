package handlers

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// routePrefix is host.json's extensions.http.routePrefix: with forwarding
// the handler sees the public paths, so the two must agree.
const routePrefix = "/api"

// requestedAtLayout renders requestedAt in status URLs and bodies:
// RFC 3339, UTC, milliseconds (the precision the status check compares at).
const requestedAtLayout = "2006-01-02T15:04:05.000Z07:00"

// publicBaseURL is scheme://host as the caller reached the app. The host
// forwards the caller's Host header; behind App Service's front end the
// original scheme is in X-Forwarded-Proto.
func publicBaseURL(r *http.Request) string {
	host := firstToken(r.Header.Get("X-Forwarded-Host"))
	if host == "" {
		host = r.Host
	}
	scheme := strings.ToLower(firstToken(r.Header.Get("X-Forwarded-Proto")))
	if scheme != "http" && scheme != "https" {
		switch {
		case r.URL.Scheme != "":
			scheme = r.URL.Scheme // envelope mode: from the host's Url
		case r.TLS != nil:
			scheme = "https"
		default:
			scheme = "http"
		}
	}
	return scheme + "://" + host
}

func firstToken(v string) string {
	v, _, _ = strings.Cut(v, ",")
	return strings.TrimSpace(v)
}

// statusURL is the RebootStatus URL of a request. It carries everything
// the status check needs (stateless), plus the caller's own ?code= function
// key if the caller used one, so that a Logic App polling exactly this URL
// is authorized too.
func statusURL(r *http.Request, deviceID, requestID string, requestedAt time.Time) string {
	q := url.Values{}
	q.Set("requestedAt", requestedAt.UTC().Format(requestedAtLayout))
	if code := r.URL.Query().Get("code"); code != "" {
		q.Set("code", code)
	}
	return publicBaseURL(r) + routePrefix + "/reboots/" + url.PathEscape(deviceID) + "/" + url.PathEscape(requestID) + "?" + q.Encode()
}

// selfURL is the absolute URL of the current request.
func selfURL(r *http.Request) string {
	return publicBaseURL(r) + r.URL.RequestURI()
}
