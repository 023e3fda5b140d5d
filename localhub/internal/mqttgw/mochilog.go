package mqttgw

import (
	"context"
	"log/slog"
)

// mochiLogHandler demotes mochi's Info and Warn records to Debug. mochi
// warns about every connection that ends with an error, including refused
// CONNECTs and devices disconnected for a forbidden topic; the gateway
// already logs those at Info with the IoT Hub reason.
type mochiLogHandler struct {
	slog.Handler
}

func (h mochiLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(level))
}

func (h mochiLogHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h mochiLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return mochiLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h mochiLogHandler) WithGroup(name string) slog.Handler {
	return mochiLogHandler{h.Handler.WithGroup(name)}
}

func demote(l slog.Level) slog.Level {
	if l < slog.LevelError {
		return slog.LevelDebug
	}
	return l
}
