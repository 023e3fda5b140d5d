package mqttgw

import (
	"context"
	"log/slog"
)

// mochiLogHandler demotes mochi's Info and Warn records to Debug. mochi
// warns about every connection that ends with an error, including refused
// CONNECTs and devices disconnected for a forbidden topic; the gateway
// already logs those at Info with the IoT Hub reason. It also renames
// mochi's keys to the hub's vocabulary: error → err, client → deviceId.
type mochiLogHandler struct {
	slog.Handler
}

func (h mochiLogHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, demote(level))
}

func (h mochiLogHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, demote(r.Level), r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(renameKey(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h mochiLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	renamed := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		renamed[i] = renameKey(a)
	}
	return mochiLogHandler{h.Handler.WithAttrs(renamed)}
}

func renameKey(a slog.Attr) slog.Attr {
	switch a.Key {
	case "error":
		a.Key = "err"
	case "client":
		a.Key = "deviceId"
	}
	return a
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
