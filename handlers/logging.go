package handlers

import (
	"context"
	"io"
	"log/slog"
)

// NewLogger returns the handler's logger: logfmt lines (key=value, so a
// line reads "deviceId=dev-1 lastReboot=…") with Info and Debug on stdout
// and Warn and above on stderr. The host logs stdout lines at Information,
// and stderr lines at Warning when they contain "warn" (every WARN line
// does) and at Error otherwise, so levels survive into Application
// Insights.
func NewLogger(stdout, stderr io.Writer, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	return slog.New(splitHandler{
		low:  slog.NewTextHandler(stdout, opts),
		high: slog.NewTextHandler(stderr, opts),
	})
}

// splitHandler sends records below Warn to low and the rest to high.
type splitHandler struct {
	low, high slog.Handler
}

func (h splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l >= slog.LevelWarn {
		return h.high.Enabled(ctx, l)
	}
	return h.low.Enabled(ctx, l)
}

func (h splitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		return h.high.Handle(ctx, r)
	}
	return h.low.Handle(ctx, r)
}

func (h splitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return splitHandler{low: h.low.WithAttrs(attrs), high: h.high.WithAttrs(attrs)}
}

func (h splitHandler) WithGroup(name string) slog.Handler {
	return splitHandler{low: h.low.WithGroup(name), high: h.high.WithGroup(name)}
}
