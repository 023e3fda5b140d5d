package rest

import (
	"cmp"
	"log/slog"
	"net/http"
	"time"

	"github.com/iothub-reboot/devmgmt/shared/httpstatus"
)

// logRequest logs each request at Debug with its route pattern (a bounded
// label), the operation, status and duration. It never logs headers: they
// carry tokens.
func logRequest(d Deps, op string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := httpstatus.NewRecorder(w)
			next.ServeHTTP(sw, r)
			level := slog.LevelDebug
			if sw.Status() >= 500 {
				level = slog.LevelError
			}
			// Building the attributes costs an allocation per request;
			// the hub runs at Info unless asked.
			if !d.Logger.Enabled(r.Context(), level) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("pattern", r.Pattern),
				slog.String("op", op),
				slog.Int("status", cmp.Or(sw.Status(), http.StatusOK)),
				slog.Duration("duration", time.Since(start)),
			}
			if id := r.PathValue("id"); id != "" {
				attrs = append(attrs, slog.String("deviceId", id))
			}
			d.Logger.LogAttrs(r.Context(), level, "rest request", attrs...)
		})
	}
}

// requireAPIVersion refuses requests whose api-version query parameter is
// missing or not a version IoT Hub serves, as IoT Hub does: 400
// InvalidProtocolVersion. With the parameter repeated, the first counts.
func requireAPIVersion(d Deps) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !supportedAPIVersion(r.URL.Query().Get("api-version")) {
				writeError(w, d.Now(), classic, errInvalidProtocolVersion())
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
