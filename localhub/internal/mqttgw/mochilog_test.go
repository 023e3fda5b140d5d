package mqttgw

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMochiLogHandlerDemotes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(mochiLogHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})})
	log.Info("added hook")
	log.Warn("error processing packet")
	require.Empty(t, buf.String(), "Info and Warn become Debug")
	log.With("k", "v").WithGroup("g").Error("failed", "e", 1)
	require.Contains(t, buf.String(), "level=ERROR msg=failed k=v g.e=1")
}

func TestMochiLogHandlerRenamesKeys(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(mochiLogHandler{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})})
	log.With("client", "d1").Debug("client disconnected", "error", "EOF", "remote", "127.0.0.1:1")
	require.Contains(t, buf.String(), `msg="client disconnected" deviceId=d1 err=EOF remote=127.0.0.1:1`)
}
