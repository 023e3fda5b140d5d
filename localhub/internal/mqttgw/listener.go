package mqttgw

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// trackingListener remembers every connection it hands to mochi so Close
// can end them all: mochi only knows connections that completed CONNECT,
// and waits for all of them on shutdown. Its connections put a deadline on
// every write.
type trackingListener struct {
	net.Listener
	writeTimeout time.Duration
	log          *slog.Logger

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newTrackingListener(ln net.Listener, writeTimeout time.Duration, log *slog.Logger) *trackingListener {
	return &trackingListener{Listener: ln, writeTimeout: writeTimeout, log: log, conns: make(map[*trackedConn]struct{})}
}

// Accept returns the next connection with a deadline for the TLS handshake
// and CONNECT; mochi replaces its read deadline with the keep-alive's after
// CONNECT.
//
// An error that is not the listener closing (too many open files, most
// likely, with thousands of devices and a low ulimit) is retried after a
// pause instead of being returned: mochi stops serving a listener for good
// on the first Accept error, so one file-descriptor shortage would leave
// the device endpoint dead until the hub restarts.
func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.acceptRetrying()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, owner: l}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = c.Close()
		return nil, net.ErrClosed
	}
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	_ = c.SetDeadline(time.Now().Add(connectDeadline))
	return tc, nil
}

// acceptRetrying accepts the next connection, pausing and retrying on
// errors until the listener is closed. The pause doubles from 5 ms to 1 s,
// as net/http's does, and each failure is logged.
func (l *trackingListener) acceptRetrying() (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		l.mu.Lock()
		closed := l.closed
		l.mu.Unlock()
		if closed || errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		pause = min(max(2*pause, 5*time.Millisecond), time.Second)
		l.log.Warn("mqtt accept failed; retrying", "err", err, "pause", pause)
		time.Sleep(pause)
	}
}

// shutdown stops accepting and closes every open connection.
func (l *trackingListener) shutdown() {
	l.mu.Lock()
	l.closed = true
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	_ = l.Listener.Close()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (l *trackingListener) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

var errWritesAborted = errors.New("writes aborted: the device connected again")

type trackedConn struct {
	net.Conn
	owner   *trackingListener
	once    sync.Once
	aborted atomic.Bool
	// deadline is the write deadline last set, in Unix nanoseconds.
	deadline atomic.Int64
}

// Write gives every write, the gateway's and mochi's alike, a deadline, so
// no write waits much longer than the write timeout for a device that does
// not read. mochi writes under the client's lock, so a write that never
// returned would also block every later write to that client. Setting a
// deadline costs a few hundred nanoseconds, so it is renewed only once a
// quarter of the timeout has passed: every write gets between 3/4 of the
// timeout and all of it. (Writes are serialised by mochi's client lock.)
func (c *trackedConn) Write(b []byte) (int, error) {
	timeout := int64(c.owner.writeTimeout)
	if now := time.Now().UnixNano(); c.deadline.Load()-now < timeout-timeout/4 {
		c.deadline.Store(now + timeout)
		if err := c.Conn.SetWriteDeadline(time.Unix(0, now+timeout)); err != nil {
			return 0, err
		}
	}
	if c.aborted.Load() {
		return 0, errWritesAborted
	}
	return c.Conn.Write(b)
}

// SetDeadline is how mochi applies the keep-alive after each packet read;
// it must leave the write deadline, which Write owns, alone.
func (c *trackedConn) SetDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(t)
}

// abortWrites makes the write in progress, and every later one, fail at
// once, without closing the connection.
func (c *trackedConn) abortWrites() {
	c.aborted.Store(true)
	_ = c.Conn.SetWriteDeadline(time.Unix(1, 0))
}

// Close closes the socket before the TLS connection: a TLS close first
// sends close_notify, which waits for a write in progress and can block
// for seconds on a full send buffer. Closing under it makes both fail at
// once, so closing a stuck device's connection never waits for it.
func (c *trackedConn) Close() error {
	c.once.Do(func() { c.owner.forget(c) })
	if tc, ok := c.Conn.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
	}
	return c.Conn.Close()
}
