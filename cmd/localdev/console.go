package main

import (
	"context"
	"io"
	"log/slog"
)

// consoleHandler prints the handler's own output lines, which funchost
// logs with source=handler, as they are with a "handler | " prefix, the
// way the simulator's lines appear, instead of quoting a logfmt line
// inside another. Every other record goes to next.
type consoleHandler struct {
	next slog.Handler
	out  io.Writer
}

func (h consoleHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h consoleHandler) Handle(ctx context.Context, r slog.Record) error {
	fromHandler := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "source" && a.Value.String() == "handler" {
			fromHandler = true
			return false
		}
		return true
	})
	if !fromHandler {
		return h.next.Handle(ctx, r)
	}
	_, err := io.WriteString(h.out, "handler   | "+r.Message+"\n")
	return err
}

func (h consoleHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return consoleHandler{next: h.next.WithAttrs(attrs), out: h.out}
}

func (h consoleHandler) WithGroup(name string) slog.Handler {
	return consoleHandler{next: h.next.WithGroup(name), out: h.out}
}
