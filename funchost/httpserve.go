package funchost

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/iothub-reboot/devmgmt/shared/httpstatus"
)

// landingPage is what the host answers on / when no function serves it.
const landingPage = `<!DOCTYPE html><html><head><title>Your Functions 4.0 app is up and running</title></head>` +
	`<body><h1>Your Functions 4.0 app is up and running</h1><p>Local stand-in host (funchost).</p></body></html>`

// ServeHTTP serves the HTTP triggers: /{routePrefix}/{route} of every
// enabled HTTP function. Function keys are not checked, as `func start`
// does not check them either.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.requests.begin() {
		w.WriteHeader(http.StatusServiceUnavailable) // the host is stopping
		return
	}
	defer h.requests.end()
	fn, params, ok := h.routes.match(r.Method, r.URL.EscapedPath())
	if !ok {
		if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(landingPage))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		return
	}
	start := time.Now()
	id := newGUID()
	rec := httpstatus.NewRecorder(w)
	var err error
	if fn.forward {
		err = h.forward(rec, r, id)
	} else {
		err = h.invokeHTTP(rec, r, fn, params, id)
	}
	if err != nil {
		if r.Context().Err() == nil && !rec.Written() {
			// An invocation that failed is a 500 with no body for the caller.
			rec.WriteHeader(http.StatusInternalServerError)
		}
		h.logger.LogAttrs(r.Context(), slog.LevelError, "Executed 'Functions."+fn.name+"' (Failed)",
			slog.String("function", fn.name), slog.String("invocationId", id),
			slog.Duration("duration", time.Since(start)), slog.String("err", err.Error()))
		return
	}
	h.logger.LogAttrs(r.Context(), slog.LevelInfo, "Executed 'Functions."+fn.name+"' (Succeeded)",
		slog.String("function", fn.name), slog.String("invocationId", id),
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", rec.Status()), slog.Duration("duration", time.Since(start)))
}
