package funchost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Options configure Start.
type Options struct {
	// ScriptRoot is the app root: host.json, the function folders and the
	// handler executable (as func start --script-root takes it).
	ScriptRoot string
	// Settings are app settings, merged over the process environment and
	// over the Values of ScriptRoot/local.settings.json when present. The
	// handler gets the merged set as its environment.
	Settings map[string]string
	// HTTPAddr is where the HTTP triggers are served. Default 127.0.0.1:0.
	HTTPAddr string
	// Events feeds every eventHubTrigger. Nil: such functions are not
	// started (a log line says so).
	Events EventSource
	// Logger receives the host's logs: the handler's stdout (Info) and
	// stderr (Error, or Warn for lines containing "warn"), every entry of
	// an invocation's Logs (Info, with the function name), and one line
	// per invocation. Nil discards them.
	Logger *slog.Logger
}

// Host is a running local Functions host.
type Host struct {
	cfg     hostConfig
	fns     []*function
	routes  *routeTable
	worker  *worker
	invoker *invoker
	events  EventSource
	logger  *slog.Logger
	url     string
	srv     *http.Server

	ctx       context.Context // the host's lifetime: cancelled by Close
	cancel    context.CancelFunc
	consumers sync.WaitGroup

	done      chan struct{}
	doneOnce  sync.Once
	mu        sync.Mutex
	err       error
	closeOnce sync.Once
}

// Start indexes the functions of opts.ScriptRoot, starts the handler and
// waits until it answers HTTP, then serves the HTTP triggers and starts
// the Event Hubs listeners. ctx bounds start-up, readiness included.
func Start(ctx context.Context, opts Options) (*Host, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	root, err := filepath.Abs(opts.ScriptRoot)
	if err != nil {
		return nil, fmt.Errorf("funchost: script root: %w", err)
	}
	s, err := loadSettings(root, os.Environ(), opts.Settings)
	if err != nil {
		return nil, fmt.Errorf("funchost: %w", err)
	}
	cfg, err := loadHostConfig(root, s)
	if err != nil {
		return nil, fmt.Errorf("funchost: %s: %w", root, err)
	}
	fns, fnErrs, err := loadFunctions(root, cfg, s)
	if err != nil {
		return nil, fmt.Errorf("funchost: %w", err)
	}
	for _, e := range fnErrs {
		logger.Error("function not loaded", "err", e)
	}

	addr := opts.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("funchost: listen: %w", err)
	}

	w := newWorker(root, cfg.handler, s, logger)
	h := &Host{
		cfg:     cfg,
		fns:     fns,
		routes:  newRouteTable(cfg.routePrefix, fns),
		worker:  w,
		invoker: &invoker{worker: w, client: newInvocationClient(cfg.functionTimeout), logger: logger},
		events:  opts.Events,
		logger:  logger,
		url:     "http://" + ln.Addr().String(),
		done:    make(chan struct{}),
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	logger.Info("starting the Functions host", "scriptRoot", root, "hostVersion", HostVersion)
	go w.run(h.ctx)

	select {
	case <-w.ready:
	case <-w.stopped:
		err = w.err
	case <-ctx.Done():
		err = fmt.Errorf("waiting for the custom handler to answer: %w", ctx.Err())
	}
	if err != nil {
		h.cancel()
		<-w.stopped
		ln.Close()
		return nil, fmt.Errorf("funchost: %w", err)
	}

	h.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "err", err)
		}
	}()
	if err := h.startListeners(); err != nil {
		h.Close()
		return nil, fmt.Errorf("funchost: %w", err)
	}
	go h.watchWorker()
	h.logFunctions()
	logger.Info("Functions host started", "url", h.url)
	return h, nil
}

// startListeners starts the Event Hubs consumers.
func (h *Host) startListeners() error {
	for _, fn := range h.fns {
		switch {
		case fn.eventHub == nil && !fn.trigger.is(typeEventHubTrigger):
		case fn.disabled:
		case h.events == nil:
			h.logger.Warn("no event source: the Event Hubs listener is not started", "function", fn.name)
		default:
			if fn.eventHub.untypedMany {
				h.logger.Warn("cardinality many without dataType: the host's encoding is unverified; events are sent as strings", "function", fn.name)
			}
			if err := h.startConsumers(fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// watchWorker ends the host when the handler supervisor gives up.
func (h *Host) watchWorker() {
	<-h.worker.stopped
	if h.ctx.Err() != nil {
		return // Close stopped it
	}
	h.mu.Lock()
	h.err = h.worker.err
	h.mu.Unlock()
	h.doneOnce.Do(func() { close(h.done) })
}

// logFunctions lists the functions the way func start does, and says
// what the local host does not emulate.
func (h *Host) logFunctions() {
	httpFunctions := false
	for _, fn := range h.fns {
		attrs := []any{"function", fn.name, "trigger", fn.trigger.Type}
		if fn.disabled {
			h.logger.Info("function disabled by AzureWebJobs."+fn.name+".Disabled", attrs...)
			continue
		}
		if fn.trigger.is(typeHTTPTrigger) {
			httpFunctions = true
			methods := "ALL"
			if len(fn.methods) > 0 {
				methods = strings.Join(fn.methods, ",")
			}
			mode := "envelope"
			if fn.forward {
				mode = "forwarded"
			}
			attrs = append(attrs, "methods", methods, "url", h.url+h.routes.publicPath(fn), "mode", mode)
			if c := fn.route.unknownConstraints(); len(c) > 0 {
				h.logger.Warn("route constraints not checked locally", "function", fn.name, "constraints", c)
			}
		}
		h.logger.Info("function loaded", attrs...)
		for _, o := range fn.outputs {
			if !o.is(typeHTTP) {
				h.logger.Warn("output binding not emulated locally: its Outputs value is ignored", "function", fn.name, "binding", o.Name, "type", o.Type)
			}
		}
	}
	if httpFunctions {
		h.logger.Info("authLevel is not enforced locally: function keys are neither required nor checked (as with func start)")
	}
}

// URL is the base URL of the HTTP triggers, e.g. http://127.0.0.1:7071.
func (h *Host) URL() string { return h.url }

// Done is closed when the host stops for good: Close, or the handler
// failing three times within 30 minutes, or exiting with code 0 (the
// Functions host then stops, or stops invoking it).
func (h *Host) Done() <-chan struct{} { return h.done }

// Err says why the host stopped by itself; nil while it runs and after
// Close.
func (h *Host) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Close stops serving, stops the listeners and then the handler process.
// Safe to call twice.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		if h.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := h.srv.Shutdown(ctx); err != nil {
				h.srv.Close()
			}
			cancel()
		}
		h.cancel()
		h.consumers.Wait()
		<-h.worker.stopped
		h.doneOnce.Do(func() { close(h.done) })
		h.logger.Info("Functions host stopped")
	})
	return nil
}
