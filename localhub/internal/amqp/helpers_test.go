package amqp_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// testApp is a tiny application on the server API: named in-memory
// queues (attach a sender to "q/x" to fill queue x, a receiver from "q/x"
// to drain it), a "$cbs"-like request/response node, and addresses that
// are refused.
type testApp struct {
	t      testing.TB
	mu     sync.Mutex
	queues map[string]chan []byte
	links  chan *amqp.Link // every accepted link, for tests to act on
	opts   amqp.LinkOptions
}

func newTestApp(t testing.TB) *testApp {
	return &testApp{t: t, queues: map[string]chan []byte{}, links: make(chan *amqp.Link, 256)}
}

func (a *testApp) queue(name string) chan []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queues[name]
	if q == nil {
		q = make(chan []byte, 1000)
		a.queues[name] = q
	}
	return q
}

func (a *testApp) attach(ctx context.Context, l *amqp.Link) (amqp.LinkOptions, error) {
	addr := l.Address()
	switch {
	case addr == "refuse":
		return amqp.LinkOptions{}, amqp.Errorf(frame.CondNotFound, "The messaging entity 'refuse' could not be found")
	case addr == "$cbs" && l.Role() == frame.RoleReceiver:
		go func() {
			_ = amqp.ServeRequests(l.Context(), l, func(ctx context.Context, req *codec.Message) *codec.Message {
				op, _ := req.ApplicationProperties.Get("operation")
				return &codec.Message{ApplicationProperties: codec.Map{
					{Key: "status-code", Value: int32(202)},
					{Key: "status-description", Value: "Accepted"},
					{Key: "echo-operation", Value: op},
				}}
			})
		}()
	case addr == "$cbs":
		// the reply link: ServeRequests finds it
	case len(addr) > 2 && addr[:2] == "q/" && l.Role() == frame.RoleReceiver:
		q := a.queue(addr[2:])
		go func() {
			for {
				d, err := l.Receive(l.Context())
				if err != nil {
					return
				}
				q <- d.Payload
				d.Accept()
			}
		}()
	case len(addr) > 2 && addr[:2] == "q/":
		q := a.queue(addr[2:])
		go func() {
			for {
				select {
				case p := <-q:
					if err := l.Send(l.Context(), p); err != nil {
						q <- p // not sent: keep it for the next reader
						return
					}
				case <-l.Done():
					return
				}
			}
		}()
	case addr == "hold":
		// links the test drives itself, through a.links
		select {
		case a.links <- l:
		default:
		}
	default:
		return amqp.LinkOptions{}, amqp.Errorf(frame.CondNotFound, "no node %q", addr)
	}
	return a.opts, nil
}

// nextLink returns the next link the app accepted.
func (a *testApp) nextLink(t testing.TB) *amqp.Link {
	t.Helper()
	select {
	case l := <-a.links:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no link attached")
		return nil
	}
}

// startServer serves opts on a loopback listener until the test ends.
func startServer(t testing.TB, opts amqp.Options) (*amqp.Server, string) {
	t.Helper()
	if opts.Logger == nil && os.Getenv("AMQP_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := amqp.NewServer(opts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.ErrorIs(t, <-served, amqp.ErrServerClosed)
	})
	return srv, ln.Addr().String()
}

// startApp serves a testApp with SASL PLAIN for user/pass.
func startApp(t testing.TB, mod func(*amqp.Options)) (*testApp, string) {
	t.Helper()
	app := newTestApp(t)
	opts := amqp.Options{
		Attach: app.attach,
		PlainAuth: func(ctx context.Context, user, pass string) (any, error) {
			if user == "user" && pass == "pass" {
				return "identity-of-" + user, nil
			}
			return nil, errors.New("bad credentials")
		},
	}
	if mod != nil {
		mod(&opts)
	}
	_, addr := startServer(t, opts)
	return app, addr
}

func dial(t testing.TB, addr string, opts *goamqp.ConnOptions) *goamqp.Conn {
	t.Helper()
	if opts == nil {
		opts = &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := goamqp.Dial(ctx, "amqp://"+addr, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func session(t testing.TB, c *goamqp.Conn) *goamqp.Session {
	t.Helper()
	s, err := c.NewSession(ctx(t), nil)
	require.NoError(t, err)
	return s
}

// ctx is a test's context with a deadline, so that a hang fails fast.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func codecSymbol(s string) codec.Symbol { return codec.Symbol(s) }

func codecDescribed(d, v any) codec.Described { return codec.Described{Descriptor: d, Value: v} }

func toAny[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
