package httpstatus

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRecorder(t *testing.T) {
	tests := []struct {
		name  string
		write func(w http.ResponseWriter)
		want  int
	}{
		{"nothing", func(http.ResponseWriter) {}, 0},
		{"body only", func(w http.ResponseWriter) { w.Write([]byte("x")) }, 200},
		{"explicit", func(w http.ResponseWriter) { w.WriteHeader(404); w.WriteHeader(500) }, 404},
		{"informational first", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(202) }, 202},
		{"flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rw := httptest.NewRecorder()
			r := NewRecorder(rw)
			tt.write(r)
			if got := r.Status(); got != tt.want {
				t.Errorf("Status() = %d, want %d", got, tt.want)
			}
			if got := r.Written(); got != (tt.want != 0) {
				t.Errorf("Written() = %v, want %v", got, tt.want != 0)
			}
		})
	}
}

func TestRecorderReachesUnderlyingWriter(t *testing.T) {
	rw := httptest.NewRecorder()
	rc := http.NewResponseController(NewRecorder(rw))
	// httptest.ResponseRecorder has no deadlines: the controller must have
	// reached it through Unwrap to report that, rather than ErrNotSupported
	// from the wrapper itself.
	if err := rc.Flush(); err != nil {
		t.Fatalf("Flush through the controller: %v", err)
	}
	if !rw.Flushed {
		t.Error("the underlying writer was not flushed")
	}
	if err := rc.SetWriteDeadline(time.Now()); err == nil {
		t.Error("SetWriteDeadline on a recorder without deadlines succeeded")
	}
}
