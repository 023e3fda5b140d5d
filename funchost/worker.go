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

	mu   sync.Mutex
	base string // http://127.0.0.1:port of the ready process; "" when none is

	ready   chan struct{} // closed when a process first became ready
	stopped chan struct{} // closed when the supervisor ends
	err     error         // why it ended; read after stopped is closed
}

func newWorker(root string, cfg handlerConfig, env settings, logger *slog.Logger) *worker {
	return &worker{
		root:    root,
		cfg:     cfg,
		env:     env,
		logger:  logger,
		ping:    &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 2 * time.Second},
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
	}
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

// run supervises processes until ctx ends (then the process is stopped
// and run returns nil) or the host would give up.
func (w *worker) run(ctx context.Context) {
	defer close(w.stopped)
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
			return
		}
		switch {
		case err == nil && exit == 0:
			// The host closes the channel and does not restart it:
			// invocations fail until the host itself restarts.
			w.logger.Error("custom handler exited with code 0; it is not restarted (as in the Functions host), so invocations fail until the host restarts")
			w.err = errors.New("funchost: the custom handler exited with code 0")
			return
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
			w.err = fmt.Errorf("funchost: the custom handler failed %d times within %s; last: %w", len(failures), workerErrorWindow, err)
			return
		}
		w.logger.Error("custom handler failed; restarting it", "err", err, "failures", len(failures))
	}
}

// runOnce starts one process, waits for it to be ready (calling onReady)
// and then for it to exit. It returns the exit code, or an error when the
// process could not start or never became ready.
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
	w.logger.Info("custom handler started", "path", cmd.Path, "pid", cmd.Process.Pid, "port", port)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		stdout.flush()
		stderr.flush()
		close(exited)
	}()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	readyErr := w.awaitReady(ctx, base, exited)
	if readyErr == nil {
		w.setBase(base)
		w.logger.Info("custom handler is ready", "pid", cmd.Process.Pid, "url", base)
		onReady()
		select {
		case <-exited:
		case <-ctx.Done():
		}
	}
	w.setBase("")
	select {
	case <-exited:
	default:
		w.stop(cmd, exited)
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
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

var errExitedEarly = errors.New("custom handler exited before it answered HTTP")

// awaitReady sends GET / every 25 ms until any HTTP answer arrives, the
// process exits, or the initialization timeout passes.
func (w *worker) awaitReady(ctx context.Context, base string, exited <-chan struct{}) error {
	deadline := time.NewTimer(w.cfg.initTimeout)
	defer deadline.Stop()
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
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errExitedEarly
		case <-deadline.C:
			return fmt.Errorf("initializing the custom handler timed out: no HTTP answer on %s/ within %s", base, w.cfg.initTimeout)
		case <-tick.C:
		}
	}
}

// stop asks the process to end and kills it after stopGrace.
func (w *worker) stop(cmd *exec.Cmd, exited <-chan struct{}) {
	if err := terminate(cmd.Process); err != nil {
		cmd.Process.Kill()
	}
	select {
	case <-exited:
	case <-time.After(stopGrace):
		w.logger.Warn("custom handler did not exit after SIGTERM; killing it", "pid", cmd.Process.Pid)
		cmd.Process.Kill()
		<-exited
	}
}

// port is customHandler.port or a free loopback port, chosen the way the
// host's GetUnusedTcpPort does: bind :0, read the port, release it.
func (w *worker) port() (int, error) {
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
