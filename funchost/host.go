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
	// Listener, when set, is where the HTTP triggers are served instead
	// of HTTPAddr (a socket bound by the caller). Close closes it.
	Listener net.Listener
	// CheckpointDir keeps the Event Hubs triggers' checkpoints, one file
	// per partition and consumer group, so that a restarted host resumes
	// where it stopped. It stands in for the AzureWebJobsStorage blob
	// container azure-webjobs-eventhub, where the Functions host keeps
	// them. Empty: checkpoints live in memory and every start is a start
	// without checkpoints (host.json's initialOffsetOptions).
	CheckpointDir string
	// DataDir holds what the host keeps across restarts besides
	// checkpoints: timer schedule status (timer.go). Empty: nothing is
	// kept.
	DataDir string
	// Logger receives the host's logs: the handler's stdout (Info) and
	// stderr (Error, or Warn for lines containing "warn"), every entry of
	// an invocation's Logs (Info, with the function name), and one line
	// per invocation. Nil discards them.
	Logger *slog.Logger

	// handlerListener, for this package's tests, is a bound socket every
	// handler process inherits as fd 3 (see worker.listener).
	handlerListener *net.TCPListener
}

// Host is a running local Functions host. Start runs it; Close stops it
// and waits for everything it started.
type Host struct {
	cfg     hostConfig
	fns     []*function
	routes  *routeTable
	worker  *worker
	invoker *invoker
	logger  *slog.Logger
	// checkpoints are the Event Hubs triggers' checkpoints.
	checkpoints *checkpointStore
	url         string
	srv         *http.Server

	// Close stops the parts in order: HTTP server, Event Hubs listeners,
	// timers, handler process. Each part's goroutines are joined before the next
	// part stops.
	stopListeners context.CancelFunc
	consumers     sync.WaitGroup
	stopTimers    context.CancelFunc
	timers        sync.WaitGroup
	stopWorker    context.CancelFunc
	workerDone    chan struct{}  // closed when the supervisor returned
	serving       sync.WaitGroup // the HTTP server's Serve
	requests      requestTracker

	done      chan struct{} // closed when the host stops for good
	doneOnce  sync.Once
	mu        sync.Mutex
	err       error // why the host stopped, or what went wrong stopping it
	closeOnce sync.Once
}

// Timeouts of Close.
const (
	// httpStopGrace is how long requests in flight may take to finish
	// before their connections are closed.
	httpStopGrace = 2 * time.Second
)

// Start indexes the functions of opts.ScriptRoot, starts the handler and
// waits until it answers HTTP, then serves the HTTP triggers and starts
// the Event Hubs listeners, waiting until each knows where its partitions
// start (or failed a first time and goes on trying in the background).
// ctx bounds start-up, both waits included; the host then runs until
// Close.
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

	w := newWorker(root, cfg.handler, s, logger)
	if opts.handlerListener != nil {
		if err := w.inherit(opts.handlerListener); err != nil {
			return nil, fmt.Errorf("funchost: %w", err)
		}
	}
	ln := opts.Listener
	if ln == nil {
		addr := opts.HTTPAddr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, "tcp", addr); err != nil {
			return nil, fmt.Errorf("funchost: listen: %w", err)
		}
	}

	h := &Host{
		cfg:         cfg,
		fns:         fns,
		routes:      newRouteTable(cfg.routePrefix, fns),
		worker:      w,
		invoker:     &invoker{worker: w, client: newInvocationClient(cfg.functionTimeout), logger: logger},
		checkpoints: newCheckpointStore(opts.CheckpointDir),
		logger:      logger,
		url:         "http://" + ln.Addr().String(),
		workerDone:  make(chan struct{}),
		done:        make(chan struct{}),
	}
	logger.Info("starting the Functions host", "scriptRoot", root, "hostVersion", HostVersion)
	workerCtx, stopWorker := context.WithCancel(context.Background())
	h.stopWorker = stopWorker
	go func() {
		defer close(h.workerDone)
		if err := w.run(workerCtx); err != nil {
			h.fail(err)
		}
	}()

	ready := false
	select {
	case <-w.ready:
		ready = true
	case <-h.workerDone:
	case <-ctx.Done():
	}
	if !ready {
		stopWorker()
		<-h.workerDone
		ln.Close()
		err := h.Err() // why the supervisor gave up, or what stopping it met
		if ctx.Err() != nil {
			err = errors.Join(fmt.Errorf("funchost: waiting for the custom handler to answer: %w", ctx.Err()), err)
		}
		return nil, err
	}

	h.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	h.serving.Go(func() {
		if err := h.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed; the host stops", "err", err)
			h.fail(fmt.Errorf("funchost: HTTP server: %w", err))
		}
	})
	listenersCtx, stopListeners := context.WithCancel(context.Background())
	h.stopListeners = stopListeners
	select {
	case <-h.startListeners(listenersCtx):
	case <-ctx.Done():
		return nil, errors.Join(fmt.Errorf("funchost: waiting for the Event Hubs listeners to start: %w", ctx.Err()), h.Close())
	}
	timersCtx, stopTimers := context.WithCancel(context.Background())
	h.stopTimers = stopTimers
	h.startTimers(timersCtx, opts.DataDir, s, &h.timers)
	h.logFunctions()
	logger.Info("Functions host started", "url", h.url)
	return h, nil
}

// fail records why the host stopped (or what went wrong stopping it) and
// marks it done.
func (h *Host) fail(err error) {
	h.mu.Lock()
	h.err = errors.Join(h.err, err)
	h.mu.Unlock()
	h.doneOnce.Do(func() { close(h.done) })
}

// startListeners starts the Event Hubs listeners, which run until ctx
// ends. The returned channel is closed when every listener is ready (see
// startConsumers).
func (h *Host) startListeners(ctx context.Context) <-chan struct{} {
	var starting sync.WaitGroup
	for _, fn := range h.fns {
		if fn.eventHub != nil && !fn.disabled {
			ready := h.startConsumers(ctx, fn)
			starting.Go(func() { <-ready })
		}
	}
	all := make(chan struct{})
	go func() {
		starting.Wait()
		close(all)
	}()
	return all
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
// Functions host then stops, or stops invoking it), or the HTTP server
// failing.
func (h *Host) Done() <-chan struct{} { return h.done }

// Err says why the host stopped by itself, and what went wrong stopping
// it; nil while it runs and after a clean Close.
func (h *Host) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Close stops the host in order and waits for every part: the HTTP server
// (requests in flight get httpStopGrace to finish, since they need the
// handler), then the Event Hubs listeners (invocations in flight are
// cancelled and not checkpointed, so a restarted host delivers their
// events again), then the timers (an invocation in flight is cancelled),
// then the handler process. It returns Err: why the
// host stopped by itself, if it did, and what went wrong stopping it.
// Safe to call more than once.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		start := time.Now()
		if h.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), httpStopGrace)
			if err := h.srv.Shutdown(ctx); err != nil {
				h.logger.Warn("HTTP requests still in flight when stopping; closing their connections", "grace", httpStopGrace)
				if err := h.srv.Close(); err != nil {
					h.fail(fmt.Errorf("funchost: close the HTTP server: %w", err))
				}
			}
			cancel()
			h.serving.Wait()
		}
		if h.stopListeners != nil {
			h.stopListeners()
			h.consumers.Wait()
		}
		if h.stopTimers != nil {
			h.stopTimers()
			h.timers.Wait()
		}
		// A connection the host dialled and never used counts as active
		// for the handler's http.Server.Shutdown for five seconds: close
		// them all so the handler can stop at once.
		h.invoker.client.CloseIdleConnections()
		h.stopWorker()
		<-h.workerDone
		// Requests cut off above end once the handler is gone.
		h.requests.closeAndWait()
		h.doneOnce.Do(func() { close(h.done) })
		h.logger.Info("Functions host stopped", "took", time.Since(start).Round(time.Millisecond))
	})
	return h.Err()
}

// requestTracker counts HTTP requests being served so Close can wait for
// them; once closed it admits none.
type requestTracker struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// begin admits a request; the caller calls end when it is done.
func (t *requestTracker) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

func (t *requestTracker) end() { t.wg.Done() }

func (t *requestTracker) closeAndWait() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
