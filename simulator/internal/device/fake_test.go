package device

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeTransport is an in-memory hub connection: it records connects and
// reports, lets the test call methods and drop connections, and fails as
// many connects as it is told to.
type fakeTransport struct {
	mu       sync.Mutex
	failNext int         // connects left to refuse
	attempts []time.Time // every Connect call
	sessions []*fakeSession
}

type fakeSession struct {
	ctx      context.Context
	cancel   context.CancelFunc
	onMethod MethodHandler
	onLost   func()
	lost     chan struct{}

	mu      sync.Mutex
	reports []reported
	closed  bool
}

// reported is one decoded patch, with the fake clock's time it was sent.
type reported struct {
	At         time.Time
	LastReboot *string
	Status     *string
	RequestID  *string
	Reason     *string
}

var errRefused = errors.New("connection refused")

func (f *fakeTransport) Connect(ctx context.Context, onMethod MethodHandler, onLost func()) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts = append(f.attempts, time.Now())
	if f.failNext > 0 {
		f.failNext--
		return nil, errRefused
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &fakeSession{ctx: sctx, cancel: cancel, onMethod: onMethod, onLost: onLost, lost: make(chan struct{})}
	f.sessions = append(f.sessions, s)
	return s, nil
}

func (s *fakeSession) ReportProperties(_ context.Context, patch []byte) error {
	var v struct {
		IothubDM struct {
			Reboot map[string]*string `json:"reboot"`
		} `json:"iothubDM"`
	}
	if err := json.Unmarshal(patch, &v); err != nil {
		return err
	}
	r := v.IothubDM.Reboot
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("session closed")
	}
	s.reports = append(s.reports, reported{At: time.Now(), LastReboot: r["lastReboot"], Status: r["status"], RequestID: r["requestId"], Reason: r["reason"]})
	return nil
}

func (s *fakeSession) Lost() <-chan struct{} { return s.lost }

func (s *fakeSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.cancel()
	}
	return nil
}

func (s *fakeSession) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// drop simulates a connection loss.
func (s *fakeSession) drop() {
	close(s.lost)
	s.onLost()
}

// call invokes a direct method as the transport would.
func (s *fakeSession) call(name, payload string) (int, map[string]any) {
	status, reply := s.onMethod(s.ctx, name, []byte(payload))
	var m map[string]any
	if err := json.Unmarshal(reply, &m); err != nil {
		panic("reply is not a JSON object: " + string(reply))
	}
	return status, m
}

func (f *fakeTransport) session(t *testing.T, i int) *fakeSession {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Greater(t, len(f.sessions), i, "sessions so far")
	return f.sessions[i]
}

func (f *fakeTransport) sessionCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sessions)
}

func (f *fakeTransport) attemptTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.attempts...)
}

// allReports are the reports of every session, in order.
func (f *fakeTransport) allReports() []reported {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []reported
	for _, s := range f.sessions {
		s.mu.Lock()
		all = append(all, s.reports...)
		s.mu.Unlock()
	}
	return all
}

func (f *fakeTransport) lastReport(t *testing.T) reported {
	t.Helper()
	all := f.allReports()
	require.NotEmpty(t, all, "reports")
	return all[len(all)-1]
}

// runDevice starts d.Run in the bubble and returns a stop function that
// ends it and waits for it.
func runDevice(d *Device) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// stamp is how reports spell a time.
func stamp(t time.Time) string { return t.UTC().Format(timeLayout) }
