package handlers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownGrace bounds how long in-flight requests may finish once the
// host asks the handler to stop.
const shutdownGrace = 10 * time.Second

// Run is the handler process: it reads the configuration through getenv,
// serves on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT until ctx ends, then
// shuts down gracefully. A configuration error is returned before
// anything listens, so the process exits non-zero with the message on
// stderr (the host logs it as an error and retries the start).
func Run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	return run(ctx, nil, getenv, stdout, stderr)
}

// run is Run, serving on ln when it is not nil: tests pass a listener
// they bound, so no port is picked, released and hoped for.
func run(ctx context.Context, ln net.Listener, getenv func(string) string, stdout, stderr io.Writer) error {
	logger := NewLogger(stdout, stderr, slog.LevelInfo)
	cfg, err := LoadConfig(getenv)
	if err != nil {
		return err
	}
	hub, err := NewHubClient(cfg, nil)
	if err != nil {
		return fmt.Errorf("IoT Hub client: %w", err)
	}
	if ln == nil {
		var lc net.ListenConfig
		if ln, err = lc.Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", cfg.Port)); err != nil {
			return fmt.Errorf("listen on %s port %s: %w", envPort, cfg.Port, err)
		}
	}
	srv := &http.Server{
		Handler: NewServer(Deps{
			Hub:            hub,
			Logger:         logger,
			StatusDeadline: cfg.StatusDeadline,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("handler listening", "addr", ln.Addr().String(), "iothubAuth", cfg.authMode(), "statusDeadline", cfg.StatusDeadline)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	shutdownErr := srv.Shutdown(shutdownCtx)
	<-serveErr // Serve has returned (ErrServerClosed) once Shutdown began
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	logger.Info("handler stopped")
	return nil
}
