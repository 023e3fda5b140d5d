package funchost

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
)

// Log categories of the Functions host, logged as "category" so that a
// reader knows where each line lands in Azure: both are user logs, shown
// by func start and sent to Application Insights, but only the
// invocation's Logs carry its invocation id there.
const (
	// categoryConsole is the handler's stdout and stderr
	// (WorkerConstants.ConsoleLogCategoryName, WorkerConsoleLogService).
	categoryConsole = "Host.Function.Console"
)

// functionUserCategory is the category of an invocation's Logs entries:
// the function's user logger (LogCategories.CreateFunctionUserCategory).
func functionUserCategory(function string) string { return "Function." + function + ".User" }

// maxLogLine bounds one logged line of handler output; longer lines are
// logged in pieces.
const maxLogLine = 64 << 10

// lineLogger turns the handler's stdout or stderr into log records, one per
// line, at the host's levels: stdout at Information; stderr at Error, or
// Warning when the line contains "warn" (UseStdErrorStreamForErrorsOnly).
// exec.Cmd writes to it from one goroutine at a time.
type lineLogger struct {
	logger *slog.Logger
	stderr bool
	buf    []byte
}

func newLineLogger(logger *slog.Logger, stderr bool) *lineLogger {
	return &lineLogger{logger: logger, stderr: stderr}
}

func (l *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) >= maxLogLine {
				l.emit(l.buf)
				l.buf = l.buf[:0]
			}
			break
		}
		line := p[:i]
		if len(l.buf) > 0 {
			l.buf = append(l.buf, line...)
			line = l.buf
		}
		l.emit(line)
		l.buf = l.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flush logs a last line that had no newline.
func (l *lineLogger) flush() {
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
}

func (l *lineLogger) emit(line []byte) {
	s := strings.TrimRight(string(line), "\r")
	if strings.TrimSpace(s) == "" {
		return
	}
	level, stream := slog.LevelInfo, "stdout"
	if l.stderr {
		stream = "stderr"
		level = slog.LevelError
		if strings.Contains(strings.ToLower(s), "warn") {
			level = slog.LevelWarn
		}
	}
	l.logger.LogAttrs(context.Background(), level, s,
		slog.String("source", "handler"), slog.String("stream", stream), slog.String("category", categoryConsole))
}
