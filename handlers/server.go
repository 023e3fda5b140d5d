package handlers

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/iothub-reboot/devmgmt/shared/httpstatus"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// Headers the host adds to every request it sends the handler.
const headerInvocationID = "X-Azure-Functions-InvocationId"

// Deps are the handlers' dependencies. Zero optional fields get defaults.
type Deps struct {
	// Hub is the IoT Hub client (required); build it with NewHubClient so
	// RebootReport can resume paged queries.
	Hub *iothub.Client
	// Logger receives one line per request and every reboot the processor
	// sees. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// NewRequestID makes reboot request ids. Default: random UUIDs.
	NewRequestID func() string
	// StatusDeadline: see Config.StatusDeadline. Default 10 minutes.
	StatusDeadline time.Duration
	// MaxConcurrentBatches caps the TwinChangeProcessor invocations
	// processed at once (each costs about its body's size in memory); more
	// wait. Default DefaultMaxConcurrentBatches.
	MaxConcurrentBatches int
	// RebootMemory is how many devices' reboot state TwinChangeProcessor
	// remembers to log each reboot once. Default DefaultRebootMemory.
	RebootMemory int

	// decodeBatch reads TwinChangeProcessor invocations (tests swap in
	// other JSON decoders for benchmarks). Default scanBatch.
	decodeBatch batchDecoder
}

func (d Deps) withDefaults() Deps {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.NewRequestID == nil {
		d.NewRequestID = newRequestID
	}
	if d.StatusDeadline <= 0 {
		d.StatusDeadline = DefaultStatusDeadline
	}
	if d.MaxConcurrentBatches <= 0 {
		d.MaxConcurrentBatches = DefaultMaxConcurrentBatches
	}
	if d.RebootMemory <= 0 {
		d.RebootMemory = DefaultRebootMemory
	}
	if d.decodeBatch == nil {
		d.decodeBatch = scanBatch
	}
	return d
}

// NewServer returns the handler's whole HTTP surface (routes.go).
func NewServer(d Deps) http.Handler {
	d = d.withDefaults()
	mux := http.NewServeMux()
	addRoutes(mux, d)
	return recoverPanics(d.Logger, logRequests(d.Logger, mux))
}

// logRequests logs one line per request with the route pattern, never the
// URL: it may carry the caller's ?code= function key. The host's readiness
// and health pings (GET /) are not logged.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := httpstatus.NewRecorder(w)
		next.ServeHTTP(rec, r)
		if r.Pattern == readinessPattern {
			return
		}
		outcome := slog.Int("status", rec.Status())
		switch {
		case !rec.Written() && r.Context().Err() != nil:
			// The handler gave up without answering: the caller went
			// away. Its own line says what that means for the device.
			outcome = slog.String("outcome", "callerDisconnected")
		case !rec.Written():
			outcome = slog.Int("status", http.StatusOK) // what net/http sends
		}
		logger.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("route", r.Pattern),
			outcome,
			slog.Duration("duration", time.Since(start)),
			slog.String("invocationId", r.Header.Get(headerInvocationID)))
	})
}

// recoverPanics turns a panic into a 500 problem: a dropped connection
// would fail the invocation with no explanation.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "handler panic",
					slog.String("route", r.Pattern), slog.String("panic", fmt.Sprint(v)))
				writeProblem(w, r, internalError("An unexpected error occurred."))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
