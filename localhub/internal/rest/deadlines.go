package rest

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Timeouts bound how long the service API waits on a client, so that no
// client, however slow or idle, holds a connection or a goroutine for ever.
// A zero field takes its default.
type Timeouts struct {
	// Header bounds reading a request's line and headers. Default 10 s.
	Header time.Duration
	// Body bounds reading a request's body, on top of Header. IoT Hub's
	// largest bodies are 256 KB. Default 30 s.
	Body time.Duration
	// Idle bounds how long a keep-alive connection waits for its next
	// request. It is longer than Go's and Node's client-side idle timeouts
	// (90 s, none), so that a client closes first and never sends on a
	// connection the hub is closing. Default 120 s.
	Idle time.Duration
	// Write bounds producing and writing a response, counted from the end
	// of the request's headers. A direct method has its connect and
	// response timeouts on top (methodWriteDeadline,
	// extendResponseDeadline). Default 30 s.
	Write time.Duration
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Header <= 0 {
		t.Header = 10 * time.Second
	}
	if t.Body <= 0 {
		t.Body = 30 * time.Second
	}
	if t.Idle <= 0 {
		t.Idle = 120 * time.Second
	}
	if t.Write <= 0 {
		t.Write = 30 * time.Second
	}
	return t
}

// maxHeaderBytes caps a request's headers: IoT Hub's are a SAS token and a
// few short fields.
const maxHeaderBytes = 32 << 10

// NewHTTPServer returns the service API as an *http.Server with every
// timeout set; the caller serves it on its (TLS) listener.
//
// ReadTimeout bounds headers and body together; net/http lifts it once a
// handler has read the whole body, and it also bounds draining the unread
// body of a refused request before the connection is reused, so a body
// that never finishes is cut even after a 401. There is no global
// WriteTimeout: a direct method legitimately holds its request for up to
// connectTimeout + responseTimeout (600 s), so each request gets a
// response deadline of its own instead (withResponseDeadline).
func NewHTTPServer(d Deps, t Timeouts) *http.Server {
	t = t.withDefaults()
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           newServer(d, t),
		ReadHeaderTimeout: t.Header,
		ReadTimeout:       t.Header + t.Body,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
}

// withResponseDeadline gives a request's response a deadline of its own,
// write from now: a client that stops reading cannot hold the handler's
// goroutine and connection for ever.
func withResponseDeadline(write time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(write))
			next.ServeHTTP(w, r)
		})
	}
}

// methodWriteDeadline is a direct method's response deadline until its
// handler knows the call's own timeouts: the longest wait IoT Hub allows
// (connect and response timeouts of 300 s each) plus the time to write.
func methodWriteDeadline(t Timeouts) time.Duration {
	return time.Duration(maxConnectTimeoutSecs+maxResponseSecs)*time.Second + t.Write
}

// responseSlack is the time left to write a response after a handler's
// own wait (a direct method's timeouts) is over.
const responseSlack = 10 * time.Second

// extendResponseDeadline moves the response deadline to wait plus
// responseSlack from now, for handlers that legitimately wait longer than
// Timeouts.Write: a direct method calls it with connectTimeout +
// responseTimeout once it has parsed them.
func extendResponseDeadline(w http.ResponseWriter, wait time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + responseSlack))
}

// isTimeout reports whether err is a deadline passing on the connection.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
