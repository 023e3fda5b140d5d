package amqp_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
	"github.com/iothub-reboot/devmgmt/localhub/internal/tlsca"
)

// TestSlowConsumerIsolated: a client that grants credit but stops reading
// the socket is dropped after WriteTimeout; the application's Send fails
// instead of blocking for ever, and another client on the same server is
// served throughout.
func TestSlowConsumerIsolated(t *testing.T) {
	app, addr := startApp(t, func(o *amqp.Options) { o.WriteTimeout = 300 * time.Millisecond })
	good := session(t, dial(t, addr, nil))
	snd, err := good.NewSender(ctx(t), "q/good", nil)
	require.NoError(t, err)
	rcv, err := good.NewReceiver(ctx(t), "q/good", nil)
	require.NoError(t, err)

	c := rawDial(t, addr)
	require.NoError(t, c.nc.(*net.TCPConn).SetReadBuffer(4096))
	c.open()
	c.begin(0)
	c.attach(0, 0, frame.RoleReceiver, "hold")
	c.send(0, &frame.Flow{NextIncomingID: u32p(0), IncomingWindow: 1 << 30, OutgoingWindow: 100,
		Handle: u32p(0), DeliveryCount: u32p(0), LinkCredit: u32p(1 << 30)})
	l := app.nextLink(t)

	sendErr := make(chan error, 1)
	go func() {
		msg := mustMessage(t, string(make([]byte, 16<<10)))
		for {
			if err := l.Send(context.Background(), msg); err != nil {
				sendErr <- err
				return
			}
		}
	}()
	// While the slow client's writes are stuck, the good one round-trips.
	require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage([]byte("still here")), nil))
	m, err := rcv.Receive(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, "still here", string(m.GetData()))

	select {
	case err := <-sendErr:
		var le *amqp.LinkError
		require.ErrorAs(t, err, &le)
	case <-time.After(10 * time.Second):
		t.Fatal("Send to a client that does not read never failed")
	}
	<-l.Conn().Done()
	require.Error(t, l.Conn().Err())
}

// TestHeartbeatsKeepGoAMQPAlive: an idle go-amqp connection with short
// idle timeouts on both sides survives several timeouts' worth of silence.
func TestHeartbeatsKeepGoAMQPAlive(t *testing.T) {
	// Three idle timeouts of silence: without heartbeats both sides would
	// close. The timeout is long enough that scheduling delays under -race
	// on a busy machine do not count as silence.
	t.Parallel()
	const idle = time.Second
	_, addr := startApp(t, func(o *amqp.Options) { o.IdleTimeout = idle })
	c := dial(t, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), IdleTimeout: idle})
	s := session(t, c)
	rcv, err := s.NewReceiver(ctx(t), "q/idle", nil)
	require.NoError(t, err)
	wait, cancel := context.WithTimeout(context.Background(), 3*idle)
	defer cancel()
	_, err = rcv.Receive(wait, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded, "the connection must survive, not fail")

	snd, err := s.NewSender(ctx(t), "q/idle", nil)
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage([]byte("after the silence")), nil))
	m, err := rcv.Receive(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, "after the silence", string(m.GetData()))
}

func TestServerCloseForcesConnections(t *testing.T) {
	app := newTestApp(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := amqp.NewServer(amqp.Options{Attach: app.attach})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	c := dial(t, ln.Addr().String(), nil)
	rcv, err := session(t, c).NewReceiver(ctx(t), "hold", nil)
	require.NoError(t, err)
	l := app.nextLink(t)
	require.NoError(t, srv.Close())
	require.ErrorIs(t, <-served, amqp.ErrServerClosed)
	<-l.Done()
	_, err = rcv.Receive(ctx(t), nil)
	var ce *goamqp.ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, goamqp.ErrCond("amqp:connection:forced"), ce.RemoteErr.Condition)
	require.Empty(t, srv.Conns())
}

func TestMaxConnections(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) { o.MaxConnections = 1 })
	dial(t, addr, nil)
	c := rawDial(t, addr)
	c.write(frame.ProtoAMQP[:])
	c.expectEOF()
}

func TestTLSListener(t *testing.T) {
	bundle, err := tlsca.LoadOrCreate(t.TempDir(), nil)
	require.NoError(t, err)
	app := newTestApp(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := amqp.NewServer(amqp.Options{Attach: app.attach})
	go func() {
		_ = srv.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{bundle.ServerCert}, MinVersion: tls.VersionTLS12}))
	}()
	t.Cleanup(func() { require.NoError(t, srv.Close()) })

	c, err := goamqp.Dial(ctx(t), "amqps://"+ln.Addr().String(), &goamqp.ConnOptions{
		SASLType:  goamqp.SASLTypeAnonymous(),
		TLSConfig: &tls.Config{RootCAs: bundle.Pool, ServerName: "localhost", MinVersion: tls.VersionTLS12},
	})
	require.NoError(t, err)
	defer c.Close()
	s := session(t, c)
	snd, err := s.NewSender(ctx(t), "q/tls", nil)
	require.NoError(t, err)
	rcv, err := s.NewReceiver(ctx(t), "q/tls", nil)
	require.NoError(t, err)
	require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage([]byte("over TLS")), nil))
	m, err := rcv.Receive(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, "over TLS", string(m.GetData()))
}

// TestAttachHandlerPanic: a bug in the application refuses the link; the
// server and the connection go on.
func TestAttachHandlerPanic(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) {
		app := o.Attach
		o.Attach = func(ctx context.Context, l *amqp.Link) (amqp.LinkOptions, error) {
			if l.Address() == "panic" {
				panic("application bug")
			}
			return app(ctx, l)
		}
	})
	s := session(t, dial(t, addr, nil))
	_, err := s.NewReceiver(ctx(t), "panic", nil)
	var ae *goamqp.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, goamqp.ErrCond("amqp:internal-error"), ae.Condition)
	_, err = s.NewReceiver(ctx(t), "q/ok", nil)
	require.NoError(t, err)
}

// TestLinkPropertiesSeenByApplication: what the Event Hubs layer reads
// from an attach arrives with its exact types.
func TestLinkPropertiesSeenByApplication(t *testing.T) {
	app, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	_, err := s.NewReceiver(ctx(t), "hold", &goamqp.ReceiverOptions{
		Properties:          map[string]any{"com.microsoft:epoch": int64(3), "com.microsoft:receiver-name": "r1"},
		DesiredCapabilities: []string{"com.microsoft:georeplication"},
		Filters: []goamqp.LinkFilter{goamqp.NewLinkFilter("apache.org:selector-filter:string", 0x0000468C00000004,
			"amqp.annotation.x-opt-offset > '-1'")},
	})
	require.NoError(t, err)
	l := app.nextLink(t)
	epoch, ok := l.Properties().Get(codecSymbol("com.microsoft:epoch"))
	require.True(t, ok)
	require.Equal(t, int64(3), epoch)
	require.Equal(t, []any{codecSymbol("com.microsoft:georeplication")}, toAny(l.DesiredCapabilities()))
	f, ok := l.Source().Filter.Get(codecSymbol("apache.org:selector-filter:string"))
	require.True(t, ok)
	require.Equal(t, codecDescribed(uint64(0x0000468C00000004), "amqp.annotation.x-opt-offset > '-1'"), f)
	require.Equal(t, frame.RoleSender, l.Role())
	require.Equal(t, "hold", l.Address())
	require.NotEmpty(t, l.Conn().PeerOpen().ContainerID)
	require.NoError(t, l.Err())
}
