package rest

import (
	"log/slog"
	"net/http"
	"time"
)

// logRequest logs each request at Debug with its route pattern (a bounded
// label), the operation, status and duration. It never logs headers: they
// carry tokens.
func logRequest(d Deps, op string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(sw, r)
			level := slog.LevelDebug
			if sw.status >= 500 {
				level = slog.LevelError
			}
			d.Logger.LogAttrs(r.Context(), level, "rest request",
				slog.String("method", r.Method),
				slog.String("pattern", r.Pattern),
				slog.String("op", op),
				slog.Int("status", sw.status),
				slog.Duration("duration", time.Since(start)))
		})
	}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// requireAPIVersion rejects requests without an api-version query parameter
// the way IoT Hub does (400 InvalidProtocolVersion). Any value is accepted:
// the local hub speaks one dialect for every SDK.
func requireAPIVersion(d Deps) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("api-version") == "" {
				writeError(w, d.Now(), classic, errInvalidProtocolVersion())
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
