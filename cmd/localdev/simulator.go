package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// simulatorStopGrace is how long the simulator may take to disconnect its
// devices after SIGTERM.
const simulatorStopGrace = 10 * time.Second

// simulator is the device simulator child process.
type simulator struct {
	cmd      *exec.Cmd
	exited   chan struct{}
	stopped  chan struct{} // closed by stop: the exit that follows is expected
	stopOnce sync.Once
	stopErr  error
	logger   *slog.Logger
}

// startSimulator starts bin/simulator with devices PREFIX0001… created (or
// reused) through the registryReadWrite policy and pointed at the hub. It
// returns nil, nil when there is no simulator to run, saying why.
func startSimulator(cfg config, hub *localhub.Hub, out io.Writer, logger *slog.Logger) (*simulator, error) {
	if cfg.devices == 0 {
		logger.Info("no simulated devices (--devices 0)")
		return nil, nil
	}
	path, err := filepath.Abs(cfg.simulator)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		logger.Warn("device simulator not found: running without devices; build it with `make build` "+
			"(or: cd simulator && go build -o ../bin/simulator ./cmd/simulator)", "path", path)
		return nil, nil
	}
	cs, err := hub.ServiceConnectionString("registryReadWrite")
	if err != nil {
		return nil, err
	}
	ca, err := filepath.Abs(hub.CAFile())
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path,
		"--count", strconv.Itoa(cfg.devices),
		"--prefix", cfg.prefix,
		"--mqtt-addr", hub.MQTTAddr(),
		"--service-endpoint", hub.HTTPSURL(),
		"--ca-file", ca,
	)
	// The connection string goes through the environment, not argv, where
	// every user of the machine could read it.
	cmd.Env = append(os.Environ(), "SIMULATOR_SERVICE_CONNECTION_STRING="+cs)
	prefixed := &prefixWriter{prefix: "simulator | ", w: out}
	cmd.Stdout, cmd.Stderr = prefixed, prefixed
	cmd.SysProcAttr = childProcAttr()
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the device simulator: %w", err)
	}
	s := &simulator{cmd: cmd, exited: make(chan struct{}), stopped: make(chan struct{}), logger: logger}
	logger.Info("device simulator started", "pid", cmd.Process.Pid, "devices", cfg.devices, "prefix", cfg.prefix)
	go func() {
		err := cmd.Wait()
		prefixed.flush()
		close(s.exited)
		select {
		case <-s.stopped:
		default:
			logger.Warn("device simulator exited", "err", errOrExit(err))
		}
	}()
	return s, nil
}

func errOrExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// stop terminates the simulator and waits for it, killing it after
// simulatorStopGrace. It returns an error when the simulator had to be
// killed or reported a failure on its way out. Safe twice.
func (s *simulator) stop() error {
	s.stopOnce.Do(func() {
		start := time.Now()
		close(s.stopped)
		select {
		case <-s.exited:
			return // it ended by itself, which was logged then
		default:
		}
		if err := terminate(s.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.cmd.Process.Kill()
		}
		grace := time.NewTimer(simulatorStopGrace)
		defer grace.Stop()
		select {
		case <-s.exited:
			if ps := s.cmd.ProcessState; ps != nil && !ps.Success() && ps.ExitCode() > 0 {
				s.stopErr = fmt.Errorf("the device simulator exited with code %d when asked to stop", ps.ExitCode())
			}
		case <-grace.C:
			s.logger.Warn("device simulator did not stop; killing it", "grace", simulatorStopGrace)
			s.cmd.Process.Kill()
			<-s.exited
			s.stopErr = fmt.Errorf("the device simulator did not stop within %s and was killed", simulatorStopGrace)
		}
		if s.stopErr != nil {
			s.logger.Error("device simulator stopped with an error", "err", s.stopErr, "took", since(start))
			return
		}
		s.logger.Info("device simulator stopped", "took", since(start))
	})
	return s.stopErr
}

// prefixWriter writes each complete line of a child's output with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := append([]byte(p.prefix), p.buf[:i+1]...)
		p.buf = p.buf[i+1:]
		if _, err := p.w.Write(line); err != nil {
			return len(b), err
		}
	}
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.w.Write(append(append([]byte(p.prefix), p.buf...), '\n'))
		p.buf = nil
	}
}
