// Package httpstatus records the status code an http.Handler wrote, for the
// one log line per request that the hub, the function app and the local
// Functions host each write. It is the one recorder in this repository.
package httpstatus

import "net/http"

// Recorder wraps a ResponseWriter and remembers the first status written.
// It forwards Flush and exposes Unwrap so http.ResponseController (write
// deadlines, hijacking) reaches the underlying writer.
type Recorder struct {
	http.ResponseWriter
	status int
}

// NewRecorder wraps w.
func NewRecorder(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

// Status is the status code written: 200 once a body was written without
// WriteHeader, 0 if nothing was written at all (the handler returned without
// answering, e.g. because the caller went away).
func (r *Recorder) Status() int { return r.status }

// Written reports whether a status line was written.
func (r *Recorder) Written() bool { return r.status != 0 }

func (r *Recorder) WriteHeader(code int) {
	// Informational (1xx) headers may precede the real status.
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Flush sends buffered data to the client, so proxied responses stream.
func (r *Recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
