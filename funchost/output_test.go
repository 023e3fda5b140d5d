package funchost

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLineLogger(t *testing.T) {
	tests := []struct {
		name   string
		stderr bool
		writes []string
		want   []string
	}{
		{"stdout lines at info", false, []string{"one\ntw", "o\r\n", "\n", "three"}, []string{"INFO one", "INFO two", "INFO three"}},
		{"stderr at error", true, []string{"boom\n"}, []string{"ERROR boom"}},
		{"stderr with warn at warning", true, []string{"level=WARN msg=x\n", "a Warning here\n"}, []string{"WARN level=WARN msg=x", "WARN a Warning here"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newLogRecorder(t)
			l := newLineLogger(rec.logger(), tt.stderr)
			for _, w := range tt.writes {
				n, err := l.Write([]byte(w))
				require.NoError(t, err)
				require.Equal(t, len(w), n)
			}
			l.flush()
			var got []string
			for _, line := range rec.lines {
				msg, _, _ := strings.Cut(line, " source=handler")
				got = append(got, msg)
			}
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("an endless partial line is logged in pieces", func(t *testing.T) {
		rec := newLogRecorder(t)
		l := newLineLogger(rec.logger(), false)
		chunk := []byte(strings.Repeat("x", 32<<10))
		for range 3 {
			l.Write(chunk) // as the pipe delivers it: no newline yet
		}
		l.Write([]byte("\n"))
		require.Equal(t, 2, len(rec.lines), "one piece at the limit, then the rest")
	})
}

// TestAwaitReady: any HTTP answer, a 404 included, means ready (§1.4); a
// socket that takes connections and never answers HTTP is not.
func TestAwaitReady(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	w := newWorker(t.TempDir(), handlerConfig{initTimeout: 5 * time.Second}, settings{}, newLogRecorder(t).logger())
	require.NoError(t, w.awaitReady(t.Context(), srv.URL, make(chan struct{})))

	mute, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	muteURL := "http://" + mute.Addr().String()
	w.cfg.initTimeout = 100 * time.Millisecond
	require.ErrorContains(t, w.awaitReady(t.Context(), muteURL, make(chan struct{})), "timed out")

	exited := make(chan struct{})
	close(exited)
	w.cfg.initTimeout = time.Minute
	require.ErrorIs(t, w.awaitReady(t.Context(), muteURL, exited), errExitedEarly)
}
