package main

import (
	"errors"
	"log/slog"
	"time"
)

// shutdown stops what run started, the last started first, so that
// nothing outlives what it talks to: the simulator's devices leave before
// the host, whose handler calls the hub, stops before the hub.
type shutdown struct {
	logger *slog.Logger
	steps  []func() error
}

// push adds the stop of a part that has started. The step logs its own
// stop; its error says which part it is.
func (s *shutdown) push(stop func() error) { s.steps = append(s.steps, stop) }

// stop runs every step, even after one fails, and returns all their
// errors. A second call does nothing.
func (s *shutdown) stop() error {
	if len(s.steps) == 0 {
		return nil
	}
	start := time.Now()
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		errs = append(errs, s.steps[i]())
	}
	s.steps = nil
	s.logger.Info("local system stopped", "took", since(start))
	return errors.Join(errs...)
}

// since is a duration for the log: milliseconds are precise enough.
func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Microsecond) }
