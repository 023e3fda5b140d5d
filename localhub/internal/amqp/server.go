package amqp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// Defaults for zero Options fields (the reasons are in the package doc).
const (
	DefaultMaxFrameSize     = 65536
	DefaultMaxSessions      = 256
	DefaultMaxLinks         = 256
	DefaultSessionWindow    = 5000
	DefaultIdleTimeout      = 60 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxMessageSize   = 1 << 20
	DefaultReceiveBuffer    = 4 << 20
	DefaultSendBuffer       = 4 << 20
	DefaultLinkSendBuffer   = 256 << 10
	DefaultCredit           = 100
	DefaultMaxConnections   = 1024
)

// Errors returned by the API.
var (
	// ErrServerClosed is returned by Serve after Close.
	ErrServerClosed = errors.New("amqp: server closed")
	errConnClosed   = errors.New("amqp: connection closed")
)

// AttachFunc decides on a link a peer attaches. It runs on the
// connection's own goroutine, before any later frame of that connection is
// handled, so it must not block for long (it may start goroutines that use
// the link). Returning an error refuses the link: the peer gets a null
// terminus and a detach carrying the error (an *Error keeps its condition;
// any other error becomes amqp:internal-error).
type AttachFunc func(ctx context.Context, l *Link) (LinkOptions, error)

// Options configure a Server. Zero fields take the defaults above.
type Options struct {
	// ContainerID is sent in our open; default "localhub-<random>".
	ContainerID string
	Logger      *slog.Logger

	// Attach is called for every link a peer attaches; nil refuses all
	// links with amqp:not-found.
	Attach AttachFunc
	// Connect, if set, is called when a connection is open; an error
	// closes it (an *Error keeps its condition).
	Connect func(ctx context.Context, c *Conn) error
	// PlainAuth validates SASL PLAIN credentials; what it returns becomes
	// SASLInfo.Identity. Nil means PLAIN is not offered.
	PlainAuth func(ctx context.Context, username, password string) (identity any, err error)
	// RequireSASL refuses clients that start with the bare AMQP header.
	RequireSASL bool

	// MaxFrameSize is the largest frame we accept (and send).
	MaxFrameSize uint32
	// MaxSessions is the channel-max we announce (+1).
	MaxSessions int
	// MaxLinks bounds the links of one connection (across its sessions);
	// it is also each session's handle-max (+1).
	MaxLinks int
	// SessionWindow is the incoming-window, in transfer frames, we grant
	// each session.
	SessionWindow uint32
	// IdleTimeout closes a connection that sends nothing for this long; we
	// announce half of it, as the spec advises, so peers heartbeat in time.
	// Negative disables it. .NET clients refuse an announced value below
	// 5 s, so keep it at 10 s or more outside tests.
	IdleTimeout time.Duration
	// WriteTimeout bounds every network write; a peer that does not read
	// for this long is disconnected.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the protocol headers, SASL and open.
	HandshakeTimeout time.Duration
	// MaxMessageSize is the default max-message-size of the links on
	// which we receive.
	MaxMessageSize uint64
	// ReceiveBuffer bounds the bytes of one connection's incoming frames
	// and messages not yet taken by the application; past it we stop
	// reading the socket.
	ReceiveBuffer int
	// SendBuffer bounds the bytes one connection's links hold for sending;
	// past it Link.Send blocks.
	SendBuffer int
	// MaxConnections bounds concurrent connections; more are closed at
	// once.
	MaxConnections int
}

func (o *Options) setDefaults() {
	if o.ContainerID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.ContainerID = "localhub-" + hex.EncodeToString(b[:])
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxFrameSize == 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.MaxFrameSize < frame.MinMaxFrameSize {
		o.MaxFrameSize = frame.MinMaxFrameSize
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = DefaultMaxSessions
	}
	o.MaxSessions = min(o.MaxSessions, 1<<16)
	if o.MaxLinks <= 0 {
		o.MaxLinks = DefaultMaxLinks
	}
	if o.SessionWindow == 0 {
		o.SessionWindow = DefaultSessionWindow
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.ReceiveBuffer <= 0 {
		o.ReceiveBuffer = DefaultReceiveBuffer
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = DefaultSendBuffer
	}
	if o.MaxConnections <= 0 {
		o.MaxConnections = DefaultMaxConnections
	}
}

// Server is an AMQP 1.0 server: it accepts connections, runs SASL and the
// connection, session and link state machines, and hands links to the
// application through Options.Attach.
type Server struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*Conn]struct{}
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup
}

// NewServer returns a server with opts (defaults filled in).
func NewServer(opts Options) *Server {
	opts.setDefaults()
	return &Server{
		opts:      opts,
		log:       opts.Logger,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*Conn]struct{}{},
		done:      make(chan struct{}),
	}
}

// Serve accepts connections on ln (plain TCP or a tls.Listener) until ln
// fails or Close is called; it then returns ErrServerClosed. Serve may be
// called for several listeners at once.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return ErrServerClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off, as
				// net/http does, rather than spin.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("amqp: accept failed; retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-s.done:
					return ErrServerClosed
				}
				continue
			}
			return fmt.Errorf("amqp: accept: %w", err)
		}
		delay = 0
		s.ServeConn(nc)
	}
}

// ServeConn runs one connection already accepted, in its own goroutines.
func (s *Server) ServeConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closed || len(s.conns) >= s.opts.MaxConnections {
		full := !s.closed
		s.mu.Unlock()
		if full {
			s.log.Warn("amqp: too many connections; closing a new one", "remote", nc.RemoteAddr().String(), "max", s.opts.MaxConnections)
		}
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		c.run()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// Close stops the listeners, closes every connection with
// amqp:connection:forced and waits for their goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return nil
	}
	s.closed = true
	close(s.done)
	for ln := range s.listeners {
		_ = ln.Close()
	}
	for c := range s.conns {
		c.Close(&Error{Condition: frame.CondConnectionForced, Description: "server shutting down"})
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Conns returns the open connections.
func (s *Server) Conns() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Error is an AMQP error (condition, description, info); handlers return
// one to choose what the peer sees.
type Error = frame.Error

// Errorf returns an *Error with a formatted description.
func Errorf(cond codec.Symbol, format string, args ...any) *Error {
	return frame.Errorf(cond, format, args...)
}

// asAMQPError turns any error into the *Error sent to a peer.
func asAMQPError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Condition: frame.CondInternalError, Description: err.Error()}
}
