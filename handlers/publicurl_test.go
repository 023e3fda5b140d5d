package handlers

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatusURL(t *testing.T) {
	at := time.Date(2025, 1, 31, 8, 0, 0, 123_000_000, time.UTC)
	tests := []struct {
		name    string
		target  string
		headers map[string]string
		tls     bool
		want    string
	}{
		{"func start", "http://localhost:7071/api/devices/dev-1/reboot", nil, false,
			"http://localhost:7071/api/reboots/dev-1/r1?requestedAt=2025-01-31T08%3A00%3A00.123Z"},
		{"behind App Service's front end", "http://app.azurewebsites.net/api/devices/dev-1/reboot",
			map[string]string{"X-Forwarded-Proto": "https"}, false,
			"https://app.azurewebsites.net/api/reboots/dev-1/r1?requestedAt=2025-01-31T08%3A00%3A00.123Z"},
		{"forwarded host and a function key in the query", "http://127.0.0.1:5000/api/devices/dev-1/reboot?code=k3y%3D%3D",
			map[string]string{"X-Forwarded-Host": "api.example.com", "X-Forwarded-Proto": "https, http"}, false,
			"https://api.example.com/api/reboots/dev-1/r1?code=k3y%3D%3D&requestedAt=2025-01-31T08%3A00%3A00.123Z"},
		{"TLS without proxy headers", "https://app/api/devices/dev-1/reboot", nil, true,
			"https://app/api/reboots/dev-1/r1?requestedAt=2025-01-31T08%3A00%3A00.123Z"},
		{"nonsense proto ignored", "http://app/api/devices/dev-1/reboot", map[string]string{"X-Forwarded-Proto": "gopher"}, false,
			"http://app/api/reboots/dev-1/r1?requestedAt=2025-01-31T08%3A00%3A00.123Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.target, nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			if !tt.tls {
				r.TLS = nil
			} else {
				r.TLS = &tls.ConnectionState{}
			}
			// Server-side requests carry no scheme in URL.
			r.URL.Scheme = ""
			require.Equal(t, tt.want, statusURL(r, "dev-1", "r1", at))
		})
	}
}

func TestStatusURLEscapesDeviceIDs(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "http://h/api/devices/x/reboot", nil)
	r.URL.Scheme = ""
	got := statusURL(r, "a#b?c%d e", "r1", time.Unix(0, 0))
	require.Equal(t, "http://h/api/reboots/a%23b%3Fc%25d%20e/r1?requestedAt=1970-01-01T00%3A00%3A00.000Z", got)
}

func TestPrefersAsync(t *testing.T) {
	tests := []struct {
		prefer []string
		want   bool
	}{
		{nil, false},
		{[]string{"respond-async"}, true},
		{[]string{"wait=10, Respond-Async"}, true},
		{[]string{"return=minimal", "respond-async; foo=bar"}, true},
		{[]string{"respond-asynchronously"}, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		for _, v := range tt.prefer {
			r.Header.Add("Prefer", v)
		}
		require.Equal(t, tt.want, prefersAsync(r), "Prefer %q", tt.prefer)
	}
}

func TestNewRequestID(t *testing.T) {
	uuid4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := newRequestID()
		require.Regexp(t, uuid4, id)
		require.False(t, seen[id])
		seen[id] = true
	}
}

func TestField(t *testing.T) {
	tests := []struct{ value, want string }{
		{"dev-1", " k=dev-1"},
		{"", ` k=""`},
		{"a b", ` k="a b"`},
		{`say "hi"`, ` k="say \"hi\""`},
		{"x=y", ` k="x=y"`},
		{"line\nbreak", ` k="line\nbreak"`},
	}
	for _, tt := range tests {
		var b stringsBuilder
		field(&b.Builder, "k", tt.value)
		require.Equal(t, tt.want, b.String())
	}
}

type stringsBuilder struct{ strings.Builder }
