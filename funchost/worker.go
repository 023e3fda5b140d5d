package funchost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Worker process behaviour (functions-custom-handler.md §1.3-§1.5).
const (
	readinessInterval = 25 * time.Millisecond
	// restartExitCode asks the host for a restart (IntentionalRestartExitCode).
	restartExitCode = 200
	// maxWorkerErrors failures within workerErrorWindow stop the host.
	maxWorkerErrors   = 3
	workerErrorWindow = 30 * time.Minute
	// stopGrace is how long a handler may take to exit after SIGTERM. The
	// real host kills it at once; a grace period lets this repository's
	// handler log its clean shutdown.
	stopGrace = 5 * time.Second
)

// worker supervises the custom handler process: it starts it, waits until
// it answers HTTP, restarts it when it crashes and gives up, as the host
// does, after maxWorkerErrors failures in workerErrorWindow.
type worker struct {
	root   string
	cfg    handlerConfig
	env    settings // the app settings; the per-process variables are added per start
	logger *slog.Logger
	ping   *http.Client
	// listener, when set, is a bound socket every process inherits as fd 3
	// instead of binding FUNCTIONS_CUSTOMHANDLER_PORT itself: the tests'
	// fake handler serves on it, so no test depends on a port staying free
	// between the host choosing it and the handler binding it.
	listener *os.File
	port     func() (int, error)

	mu   sync.Mutex
	base string // http://127.0.0.1:port of the ready process; "" when none is

	ready chan struct{} // closed when a process first became ready
}

func newWorker(root string, cfg handlerConfig, env settings, logger *slog.Logger) *worker {
	w := &worker{
		root:   root,
		cfg:    cfg,
		env:    env,
		logger: logger,
		ping:   &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second},
		ready:  make(chan struct{}),
	}
	w.port = w.unusedPort
	return w
}

// inherit makes every handler process serve on ln (see worker.listener).
func (w *worker) inherit(ln *net.TCPListener) error {
	f, err := ln.File()
	if err != nil {
		return fmt.Errorf("pass the handler listener: %w", err)
	}
	w.listener = f
	port := ln.Addr().(*net.TCPAddr).Port
	w.port = func() (int, error) { return port, nil }
	return nil
}

// baseURL is the running handler's address, or "" while none is ready.
func (w *worker) baseURL() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.base
}

func (w *worker) setBase(u string) {
	w.mu.Lock()
	w.base = u
	w.mu.Unlock()
}

// run supervises processes until ctx ends or the host would give up. When
// ctx ends it stops the process and returns what went wrong doing so (nil
// for a clean stop); when it gives up it returns why.
func (w *worker) run(ctx context.Context) error {
	if w.listener != nil {
		defer w.listener.Close()
	}
	var failures []time.Time
	firstReady := false
	for {
		exit, err := w.runOnce(ctx, func() {
			if !firstReady {
				firstReady = true
				close(w.ready)
			}
		})
		if ctx.Err() != nil {
			return err
		}
		switch {
		case err == nil && exit == 0:
			// The host closes the channel and does not restart it:
			// invocations fail until the host itself restarts.
			w.logger.Error("custom handler exited with code 0; it is not restarted (as in the Functions host), so invocations fail until the host restarts")
			return errors.New("funchost: the custom handler exited with code 0")
		case err == nil && exit == restartExitCode:
			w.logger.Info("custom handler exited with code 200 (intentional restart); restarting it")
			continue
		case err == nil:
			err = fmt.Errorf("custom handler exited with code %d", exit)
		}
		now := time.Now()
		failures = append(failures, now)
		for len(failures) > 0 && now.Sub(failures[0]) > workerErrorWindow {
			failures = failures[1:]
		}
		if len(failures) >= maxWorkerErrors {
			w.logger.Error("custom handler failed too often; stopping the host", "err", err, "failures", len(failures), "window", workerErrorWindow)
			return fmt.Errorf("funchost: the custom handler failed %d times within %s; last: %w", len(failures), workerErrorWindow, err)
		}
		w.logger.Error("custom handler failed; restarting it", "err", err, "failures", len(failures))
	}
}

// runOnce starts one process, waits for it to be ready (calling onReady)
// and then for it to exit. It returns the exit code, or an error when the
// process could not start or never became ready. When ctx ends it stops
// the process and returns only what went wrong stopping it.
func (w *worker) runOnce(ctx context.Context, onReady func()) (int, error) {
	port, err := w.port()
	if err != nil {
		return 0, err
	}
	cmd, err := w.command(port)
	if err != nil {
		return 0, err
	}
	stdout := newLineLogger(w.logger, false)
	stderr := newLineLogger(w.logger, true)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start custom handler %s: %w", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	w.logger.Info("custom handler started", "path", cmd.Path, "pid", pid, "port", port)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		// Wait returns once the output is copied, so every line is logged
		// before exited is closed.
		waitErr = cmd.Wait()
		stdout.flush()
		stderr.flush()
		close(exited)
	}()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	readyErr := w.awaitReady(ctx, base, exited)
	if readyErr == nil {
		w.setBase(base)
		w.logger.Info("custom handler is ready", "pid", pid, "url", base)
		onReady()
		select {
		case <-exited:
		case <-ctx.Done():
		}
	}
	w.setBase("")
	var stopErr error
	select {
	case <-exited:
	default:
		stopErr = w.stop(cmd, exited)
	}
	if ctx.Err() != nil {
		if stopErr == nil {
			stopErr = stoppedAbnormally(cmd.ProcessState)
		}
		if stopErr == nil {
			w.logger.Info("custom handler stopped", "pid", pid)
		}
		return 0, stopErr
	}
	if readyErr != nil && !errors.Is(readyErr, errExitedEarly) {
		return 0, readyErr
	}
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		return 0, fmt.Errorf("custom handler: %w", waitErr)
	}
	code := cmd.ProcessState.ExitCode()
	if code < 0 {
		return 0, fmt.Errorf("custom handler ended by %s", cmd.ProcessState)
	}
	if readyErr != nil && code == 0 {
		return 0, errors.New("custom handler exited with code 0 before it answered HTTP")
	}
	return code, nil
}

// stoppedAbnormally says whether a handler asked to stop reported a
// failure. Ending by the signal it was sent is normal: most runtimes do
// that, and the Functions host kills the process anyway.
func stoppedAbnormally(ps *os.ProcessState) error {
	if ps == nil || ps.Success() || ps.ExitCode() < 0 {
		return nil
	}
	return fmt.Errorf("funchost: the custom handler (pid %d) exited with code %d when asked to stop", ps.Pid(), ps.ExitCode())
}

var errExitedEarly = errors.New("custom handler exited before it answered HTTP")

// awaitReady sends GET / every 25 ms until any HTTP answer arrives, the
// process exits, or the initialization timeout passes. A ping in flight
// ends with any of these too, so a socket that accepts and never answers
// cannot stretch the timeout.
func (w *worker) awaitReady(ctx context.Context, base string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeoutCause(ctx, w.cfg.initTimeout,
		fmt.Errorf("initializing the custom handler timed out: no HTTP answer on %s/ within %s", base, w.cfg.initTimeout))
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel()
		<-watched
	}()
	tick := time.NewTicker(readinessInterval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := w.ping.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
		}
		select {
		case <-exited:
			return errExitedEarly
		default:
		}
		return context.Cause(ctx)
	}
}

// stop asks the process to end and kills it after stopGrace, which is an
// error: the handler ignored the request to stop.
func (w *worker) stop(cmd *exec.Cmd, exited <-chan struct{}) error {
	if err := terminate(cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		cmd.Process.Kill()
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case <-exited:
		return nil
	case <-grace.C:
	}
	w.logger.Warn("custom handler did not exit after SIGTERM; killing it", "pid", cmd.Process.Pid, "grace", stopGrace)
	cmd.Process.Kill()
	<-exited
	return fmt.Errorf("funchost: the custom handler (pid %d) did not exit within %s of SIGTERM and was killed", cmd.Process.Pid, stopGrace)
}

// unusedPort is customHandler.port or a free loopback port, chosen the
// way the host's GetUnusedTcpPort does: bind :0, read the port, release
// it. The handler then binds it; should another process take the port in
// between, the handler fails to start and is restarted on a new one.
func (w *worker) unusedPort() (int, error) {
	if w.cfg.port != 0 {
		return w.cfg.port, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for the custom handler: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// command builds the process as HttpWorkerProcess does: the executable
// resolved against the worker directory (else looked up on PATH), the
// arguments with %VAR% expanded, cwd = workingDirectory, env = app
// settings plus the host's five variables.
func (w *worker) command(port int) (*exec.Cmd, error) {
	workerDir := w.root
	if w.cfg.workerDirectory != "" {
		workerDir = resolveDir(w.root, w.cfg.workerDirectory)
	}
	exe := filepath.Join(workerDir, w.cfg.executable)
	if filepath.IsAbs(w.cfg.executable) {
		exe = w.cfg.executable
	}
	if _, err := os.Stat(exe); err != nil {
		found, lookErr := exec.LookPath(w.cfg.executable)
		if lookErr != nil {
			return nil, fmt.Errorf("custom handler executable %q: not in %s and not on PATH", w.cfg.executable, workerDir)
		}
		exe = found
	}
	id := newGUID()
	env := settings{}
	for k, v := range w.env {
		env[k] = v
	}
	p := strconv.Itoa(port)
	env.set("FUNCTIONS_CUSTOMHANDLER_PORT", p)
	env.set("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", id)
	env.set("FUNCTIONS_HTTPWORKER_PORT", p)
	env.set("FUNCTIONS_HTTPWORKER_ID", id)
	env.set("FUNCTIONS_APP_ROOT_PATH", w.root)

	args := expandArguments(w.cfg.arguments, env)
	if w.cfg.workerPath != "" {
		args = append(args, resolveDir(workerDir, w.cfg.workerPath))
	}
	args = append(args, expandArguments(w.cfg.workerArguments, env)...)
	cmd := exec.Command(exe, args...)
	cmd.Dir = w.root
	if w.cfg.workingDirectory != "" {
		cmd.Dir = resolveDir(w.root, w.cfg.workingDirectory)
	}
	cmd.Env = env.environ()
	if w.listener != nil {
		cmd.ExtraFiles = []*os.File{w.listener}
	}
	cmd.SysProcAttr = childProcAttr()
	// A grandchild holding the output pipes must not block Wait forever.
	cmd.WaitDelay = time.Second
	return cmd, nil
}

func resolveDir(base, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}
