package amqp_test

import (
	"bufio"
	"errors"
	"io"
	"math"
	"net"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// rawClient speaks AMQP frame by frame, to send what no real client
// would.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
	// heartbeats counts empty frames read.
	heartbeats int
}

func rawDial(t testing.TB, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	_, err := c.nc.Write(b)
	require.NoError(c.t, err)
}

func mustFrame(t testing.TB, b frame.Body) []byte {
	buf, err := frame.AppendFrame(nil, 0, b)
	require.NoError(t, err)
	return buf
}

func (c *rawClient) send(ch uint16, b frame.Body) {
	c.t.Helper()
	buf, err := frame.AppendFrame(nil, ch, b)
	require.NoError(c.t, err)
	c.write(buf)
}

func (c *rawClient) expectHeader(want [8]byte) {
	c.t.Helper()
	var got [8]byte
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadFull(c.r, got[:])
	require.NoError(c.t, err)
	require.Equal(c.t, want, got)
}

// read returns the next non-empty frame.
func (c *rawClient) read() (uint16, frame.Body) {
	c.t.Helper()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, body, err := frame.ReadFrame(c.r, math.MaxUint32)
		require.NoError(c.t, err)
		if len(body) == 0 {
			c.heartbeats++
			continue
		}
		b, err := frame.ParseBody(h.Type, body)
		require.NoError(c.t, err)
		return h.Channel, b
	}
}

func readAs[T frame.Body](c *rawClient) T {
	c.t.Helper()
	_, b := c.read()
	v, ok := b.(T)
	require.True(c.t, ok, "got %#v, want %T", b, v)
	return v
}

func (c *rawClient) expectEOF() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	require.False(c.t, errors.As(err, &ne) && ne.Timeout(), "connection still open")
}

// expectClose reads up to the server's close and checks its condition,
// then that the socket is closed.
func (c *rawClient) expectClose(cond codec.Symbol) *frame.Error {
	c.t.Helper()
	for {
		_, b := c.read()
		if cl, ok := b.(*frame.Close); ok {
			require.NotNil(c.t, cl.Error, "close without an error")
			require.Equal(c.t, cond, cl.Error.Condition, cl.Error.Description)
			_, _ = c.nc.Write(mustFrame(c.t, &frame.Close{})) // as a client would; the server may be gone
			c.expectEOF()
			return cl.Error
		}
	}
}

// open runs SASL ANONYMOUS and the open exchange.
func (c *rawClient) open() *frame.Open {
	c.t.Helper()
	c.write(frame.ProtoSASL[:])
	c.expectHeader(frame.ProtoSASL)
	readAs[*frame.SASLMechanisms](c)
	c.send(0, &frame.SASLInit{Mechanism: "ANONYMOUS", InitialResponse: []byte("anonymous")})
	out := readAs[*frame.SASLOutcome](c)
	require.Equal(c.t, frame.SASLOK, out.Code)
	c.write(frame.ProtoAMQP[:])
	c.expectHeader(frame.ProtoAMQP)
	c.send(0, &frame.Open{ContainerID: "raw", MaxFrameSize: 65536, ChannelMax: 10})
	return readAs[*frame.Open](c)
}

func (c *rawClient) begin(ch uint16) *frame.Begin {
	c.t.Helper()
	c.send(ch, &frame.Begin{NextOutgoingID: 0, IncomingWindow: 1000, OutgoingWindow: 1000, HandleMax: 10})
	b := readAs[*frame.Begin](c)
	require.NotNil(c.t, b.RemoteChannel)
	require.Equal(c.t, ch, *b.RemoteChannel)
	return b
}

// attach attaches a link to addr; role is the client's.
func (c *rawClient) attach(ch uint16, handle uint32, role frame.Role, addr string) *frame.Attach {
	c.t.Helper()
	a := &frame.Attach{Name: "raw-" + addr, Handle: handle, Role: role, Source: &frame.Source{Address: addr}, Target: &frame.Target{Address: addr}}
	c.send(ch, a)
	return readAs[*frame.Attach](c)
}

func u32p(v uint32) *uint32 { return &v }

func TestRawOpenAndSASLMechanisms(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) { o.IdleTimeout = 20 * time.Second })
	c := rawDial(t, addr)
	c.write(frame.ProtoSASL[:])
	c.expectHeader(frame.ProtoSASL)
	mechs := readAs[*frame.SASLMechanisms](c)
	require.Equal(t, []codec.Symbol{"MSSBCBS", "ANONYMOUS", "PLAIN"}, mechs.Mechanisms)
	// The .NET client: MSSBCBS without an initial response.
	c.send(0, &frame.SASLInit{Mechanism: "MSSBCBS"})
	require.Equal(t, frame.SASLOK, readAs[*frame.SASLOutcome](c).Code)
	c.write(frame.ProtoAMQP[:])
	c.expectHeader(frame.ProtoAMQP)
	c.send(0, &frame.Open{ContainerID: "dotnet-like", MaxFrameSize: 65536, ChannelMax: 10, IdleTimeout: 60000})
	o := readAs[*frame.Open](c)
	require.NotEmpty(t, o.ContainerID)
	require.Equal(t, uint32(amqp.DefaultMaxFrameSize), o.MaxFrameSize)
	require.Equal(t, uint16(amqp.DefaultMaxSessions-1), o.ChannelMax)
	require.Equal(t, uint32(10000), o.IdleTimeout, "half the idle timeout, and at least the 5 s .NET requires")

	c.begin(3)
	// A link where the server sends: initial-delivery-count must be there
	// (.NET reads it unconditionally), settle mode settled by default.
	a := c.attach(3, 0, frame.RoleReceiver, "hold")
	require.Equal(t, frame.RoleSender, a.Role)
	require.Equal(t, frame.SenderSettleSettled, *a.SndSettleMode)
	require.Equal(t, frame.ReceiverSettleFirst, *a.RcvSettleMode)
	require.Equal(t, "hold", a.Source.Address)
	// A link where the client sends: max-message-size and credit.
	a = c.attach(3, 1, frame.RoleSender, "hold")
	require.Equal(t, frame.RoleReceiver, a.Role)
	require.Equal(t, uint64(amqp.DefaultMaxMessageSize), a.MaxMessageSize)
	f := readAs[*frame.Flow](c)
	require.Equal(t, a.Handle, *f.Handle)
	require.Equal(t, uint32(0), *f.DeliveryCount)
	require.Equal(t, uint32(amqp.DefaultCredit), *f.LinkCredit)
}

func TestRawSASLFailures(t *testing.T) {
	_, addr := startApp(t, nil)
	tests := []struct {
		name string
		init frame.Body
		code frame.SASLCode
	}{
		{"unknown mechanism", &frame.SASLInit{Mechanism: "SCRAM-SHA-256"}, frame.SASLAuth},
		{"plain with a bad password", &frame.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00user\x00bad")}, frame.SASLAuth},
		{"plain malformed", &frame.SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("user:pass")}, frame.SASLAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawDial(t, addr)
			c.write(frame.ProtoSASL[:])
			c.expectHeader(frame.ProtoSASL)
			readAs[*frame.SASLMechanisms](c)
			c.send(0, tt.init)
			require.Equal(t, tt.code, readAs[*frame.SASLOutcome](c).Code)
			c.expectEOF()
		})
	}
	t.Run("AMQP frame instead of sasl-init", func(t *testing.T) {
		c := rawDial(t, addr)
		c.write(frame.ProtoSASL[:])
		c.expectHeader(frame.ProtoSASL)
		readAs[*frame.SASLMechanisms](c)
		c.send(0, &frame.Open{ContainerID: "x"})
		c.expectEOF()
	})
}

func TestRawProtocolHeaders(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) { o.HandshakeTimeout = 500 * time.Millisecond })
	t.Run("not AMQP", func(t *testing.T) {
		c := rawDial(t, addr)
		c.write([]byte("GET / HTTP/1.1\r\n\r\n"))
		c.expectEOF()
	})
	t.Run("AMQP over TLS header", func(t *testing.T) {
		c := rawDial(t, addr)
		c.write(frame.ProtoTLS[:])
		c.expectHeader(frame.ProtoSASL) // what we speak instead
		c.expectEOF()
	})
	t.Run("silent client", func(t *testing.T) {
		c := rawDial(t, addr)
		c.expectEOF() // HandshakeTimeout
	})
	t.Run("no open after the header", func(t *testing.T) {
		c := rawDial(t, addr)
		c.write(frame.ProtoAMQP[:])
		c.expectHeader(frame.ProtoAMQP)
		c.expectEOF()
	})
	t.Run("begin before open", func(t *testing.T) {
		c := rawDial(t, addr)
		c.write(frame.ProtoAMQP[:])
		c.expectHeader(frame.ProtoAMQP)
		c.send(0, &frame.Begin{IncomingWindow: 1, OutgoingWindow: 1})
		readAs[*frame.Open](c)
		c.expectClose(frame.CondNotAllowed)
	})
	t.Run("max-frame-size below 512", func(t *testing.T) {
		c := rawDial(t, addr)
		c.write(frame.ProtoAMQP[:])
		c.expectHeader(frame.ProtoAMQP)
		c.send(0, &frame.Open{ContainerID: "tiny", MaxFrameSize: 100})
		readAs[*frame.Open](c)
		c.expectClose(frame.CondInvalidField)
	})
}

// TestRawBadFrames sends one bad frame per connection after open, while a
// well-behaved go-amqp client keeps working on the same server.
func TestRawBadFrames(t *testing.T) {
	_, addr := startApp(t, nil)
	good := session(t, dial(t, addr, nil))
	snd, err := good.NewSender(ctx(t), "q/good", nil)
	require.NoError(t, err)
	rcv, err := good.NewReceiver(ctx(t), "q/good", nil)
	require.NoError(t, err)

	body := func(b frame.Body) []byte {
		enc, err := b.AppendBody(nil)
		require.NoError(t, err)
		return enc
	}
	rawFrame := func(doff, typ byte, ch uint16, body []byte) []byte {
		size := 8 + len(body)
		return append([]byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size), doff, typ, byte(ch >> 8), byte(ch)}, body...)
	}
	attachNoRole, _ := codec.Append(nil, codec.Described{Descriptor: uint64(0x12), Value: []any{"n", uint32(0)}})
	unknown, _ := codec.Append(nil, codec.Described{Descriptor: uint64(0x19), Value: []any{}})
	tests := []struct {
		name  string
		frame []byte
		cond  codec.Symbol
	}{
		{"oversize frame", []byte{0, 1, 0, 1, 2, 0, 0, 0}, frame.CondFramingError},
		{"size below header", []byte{0, 0, 0, 4, 2, 0, 0, 0}, frame.CondFramingError},
		{"data offset 1", rawFrame(1, 0, 0, body(&frame.End{})), frame.CondFramingError},
		{"garbage body", rawFrame(2, 0, 0, []byte{0xff, 0xfe}), frame.CondDecodeError},
		{"not a performative", rawFrame(2, 0, 0, []byte{0x45}), frame.CondDecodeError},
		{"unknown performative", rawFrame(2, 0, 0, unknown), frame.CondDecodeError},
		{"attach without role", rawFrame(2, 0, 0, attachNoRole), frame.CondDecodeError},
		{"truncated performative", rawFrame(2, 0, 0, body(&frame.Open{ContainerID: "x"})[:6]), frame.CondDecodeError},
		{"flow on a channel without session", rawFrame(2, 0, 5, body(&frame.Flow{IncomingWindow: 1, OutgoingWindow: 1})), frame.CondNotAllowed},
		{"second open", rawFrame(2, 0, 0, body(&frame.Open{ContainerID: "again"})), frame.CondIllegalState},
		{"SASL frame after open", rawFrame(2, 1, 0, body(&frame.SASLInit{Mechanism: "ANONYMOUS"})), frame.CondFramingError},
		{"begin beyond channel-max", rawFrame(2, 0, 300, body(&frame.Begin{IncomingWindow: 1, OutgoingWindow: 1})), frame.CondNotAllowed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawDial(t, addr)
			c.open()
			c.write(tt.frame)
			c.expectClose(tt.cond)

			require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage([]byte{byte(i)}), nil))
			m, err := rcv.Receive(ctx(t), nil)
			require.NoError(t, err, "the well-behaved client was affected")
			require.Equal(t, []byte{byte(i)}, m.GetData())
		})
	}
}

func TestRawSessionErrors(t *testing.T) {
	_, addr := startApp(t, nil)
	t.Run("handle in use", func(t *testing.T) {
		c := rawDial(t, addr)
		c.open()
		c.begin(0)
		c.attach(0, 0, frame.RoleReceiver, "hold")
		c.send(0, &frame.Attach{Name: "again", Handle: 0, Role: frame.RoleReceiver, Source: &frame.Source{Address: "hold"}})
		e := readAs[*frame.End](c)
		require.Equal(t, frame.CondHandleInUse, e.Error.Condition)
	})
	t.Run("unattached handle", func(t *testing.T) {
		c := rawDial(t, addr)
		c.open()
		c.begin(0)
		c.send(0, &frame.Transfer{Handle: 7, DeliveryID: u32p(0), DeliveryTag: []byte{1}, Payload: []byte{0x00, 0x53, 0x77, 0x40}})
		e := readAs[*frame.End](c)
		require.Equal(t, frame.CondUnattachedHandle, e.Error.Condition)
		// The session is over, the connection is not.
		c.send(0, &frame.End{})
		c.begin(1)
	})
}

func TestRawCreditViolation(t *testing.T) {
	app, addr := startApp(t, nil)
	app.opts.Credit = 2
	c := rawDial(t, addr)
	c.open()
	c.begin(0)
	c.attach(0, 0, frame.RoleSender, "hold")
	f := readAs[*frame.Flow](c)
	require.Equal(t, uint32(2), *f.LinkCredit)
	l := app.nextLink(t)
	for i := range uint32(3) {
		c.send(0, &frame.Transfer{Handle: 0, DeliveryID: u32p(i), DeliveryTag: []byte{byte(i)}, Settled: true,
			Payload: []byte{0x00, 0x53, 0x77, 0x40}})
	}
	d := readAs[*frame.Detach](c)
	require.Equal(t, frame.CondTransferLimitExceeded, d.Error.Condition)
	<-l.Done()
	// Two messages made it before the violation; the link is gone now.
	_, err := l.Receive(ctx(t))
	require.Error(t, err)
}

// TestRawWindowViolation: with the application not consuming and the
// receive buffer over half full, the session window is not renewed, and a
// peer that sends past it is stopped.
func TestRawWindowViolation(t *testing.T) {
	app, addr := startApp(t, func(o *amqp.Options) {
		o.SessionWindow = 4
		o.ReceiveBuffer = 1024
	})
	c := rawDial(t, addr)
	c.open()
	c.begin(0)
	c.attach(0, 0, frame.RoleSender, "hold")
	readAs[*frame.Flow](c)
	app.nextLink(t)
	for i := range uint32(30) {
		c.send(0, &frame.Transfer{Handle: 0, DeliveryID: u32p(i), DeliveryTag: []byte{byte(i)}, Settled: true,
			Payload: []byte{0x00, 0x53, 0x77, 0x40}})
	}
	for {
		_, b := c.read()
		if e, ok := b.(*frame.End); ok {
			require.Equal(t, frame.CondWindowViolation, e.Error.Condition)
			return
		}
	}
}

func TestRawMessageSizeExceeded(t *testing.T) {
	app, addr := startApp(t, nil)
	app.opts.MaxMessageSize = 1000
	c := rawDial(t, addr)
	c.open()
	c.begin(0)
	a := c.attach(0, 0, frame.RoleSender, "hold")
	require.Equal(t, uint64(1000), a.MaxMessageSize)
	readAs[*frame.Flow](c)
	l := app.nextLink(t)

	// Unsettled: rejected, the rest of the delivery dropped, the link kept.
	big := make([]byte, 800)
	c.send(0, &frame.Transfer{Handle: 0, DeliveryID: u32p(0), DeliveryTag: []byte{0}, More: true, Payload: big})
	c.send(0, &frame.Transfer{Handle: 0, More: true, Payload: big})
	c.send(0, &frame.Transfer{Handle: 0, Payload: big})
	d := readAs[*frame.Disposition](c)
	require.Equal(t, uint32(0), d.First)
	require.True(t, d.Settled)
	rej, ok := d.State.(*frame.Rejected)
	require.True(t, ok, "%#v", d.State)
	require.Equal(t, frame.CondMessageSizeExceeded, rej.Error.Condition)

	msg, _ := (&codec.Message{Value: "small", HasValue: true}).MarshalBinary()
	c.send(0, &frame.Transfer{Handle: 0, DeliveryID: u32p(1), DeliveryTag: []byte{1}, Payload: msg})
	got, err := l.Receive(ctx(t))
	require.NoError(t, err)
	require.Equal(t, msg, got.Payload)
	got.Accept()
	d = readAs[*frame.Disposition](c)
	require.Equal(t, uint32(1), d.First)
	require.IsType(t, &frame.Accepted{}, d.State)

	// Pre-settled: nothing to reject, so the link goes.
	c.send(0, &frame.Transfer{Handle: 0, DeliveryID: u32p(2), DeliveryTag: []byte{2}, Settled: true, More: true, Payload: big})
	c.send(0, &frame.Transfer{Handle: 0, Settled: true, Payload: big})
	dt := readAs[*frame.Detach](c)
	require.Equal(t, frame.CondMessageSizeExceeded, dt.Error.Condition)
}

// TestRawDispositionBatches: consecutive accepted deliveries settle in one
// disposition range.
func TestRawDispositionBatches(t *testing.T) {
	app, addr := startApp(t, nil)
	c := rawDial(t, addr)
	c.open()
	c.begin(0)
	c.attach(0, 0, frame.RoleSender, "hold")
	readAs[*frame.Flow](c)
	l := app.nextLink(t)
	msg, _ := (&codec.Message{Data: [][]byte{{1}}}).MarshalBinary()
	for i := range uint32(3) {
		c.send(0, &frame.Transfer{Handle: 0, DeliveryID: u32p(10 + i), DeliveryTag: []byte{byte(i)}, Payload: msg})
	}
	var ds []*amqp.Delivery
	for range 3 {
		d, err := l.Receive(ctx(t))
		require.NoError(t, err)
		ds = append(ds, d)
	}
	// Settled together: the connection goroutine sees all three at once.
	for _, d := range ds {
		d.Accept()
	}
	first := readAs[*frame.Disposition](c)
	require.Equal(t, uint32(10), first.First)
	last := first.First
	if first.Last != nil {
		last = *first.Last
	}
	for last < 12 {
		d := readAs[*frame.Disposition](c)
		require.Equal(t, last+1, d.First)
		last = d.First
		if d.Last != nil {
			last = *d.Last
		}
	}
}

func TestRawDrainConsumesCredit(t *testing.T) {
	app, addr := startApp(t, nil)
	c := rawDial(t, addr)
	c.open()
	c.begin(0)
	c.attach(0, 0, frame.RoleReceiver, "hold")
	l := app.nextLink(t)
	require.NoError(t, l.Send(ctx(t), mustMessage(t, "only")))
	c.send(0, &frame.Flow{NextIncomingID: u32p(0), IncomingWindow: 100, NextOutgoingID: 0, OutgoingWindow: 100,
		Handle: u32p(0), DeliveryCount: u32p(0), LinkCredit: u32p(5), Drain: true})
	tr := readAs[*frame.Transfer](c)
	require.True(t, tr.Settled)
	require.Equal(t, uint32(0), *tr.MessageFormat)
	require.NotEmpty(t, tr.DeliveryTag)
	f := readAs[*frame.Flow](c)
	require.True(t, f.Drain)
	require.Equal(t, uint32(5), *f.DeliveryCount, "unused credit spent by the drain")
	require.Equal(t, uint32(0), *f.LinkCredit)
}

// TestRawIdleTimeout: we heartbeat at the pace the client asks for, and
// close a client that goes silent.
func TestRawIdleTimeout(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) { o.IdleTimeout = 400 * time.Millisecond })
	c := rawDial(t, addr)
	c.write(frame.ProtoAMQP[:])
	c.expectHeader(frame.ProtoAMQP)
	c.send(0, &frame.Open{ContainerID: "quiet", MaxFrameSize: 65536, IdleTimeout: 100})
	o := readAs[*frame.Open](c)
	require.Equal(t, uint32(200), o.IdleTimeout)
	c.expectClose(frame.CondResourceLimitExceeded)
	require.GreaterOrEqual(t, c.heartbeats, 2, "heartbeats every 50 ms before the 400 ms idle close")
}

// TestRawStalledApplication: a peer that fills the receive buffer of an
// application that never takes its messages is cut off after an idle
// timeout, not waited on forever.
func TestRawStalledApplication(t *testing.T) {
	app, addr := startApp(t, func(o *amqp.Options) {
		o.ReceiveBuffer = 4096
		o.IdleTimeout = 300 * time.Millisecond
	})
	c := rawDial(t, addr)
	c.open()
	c.begin(0)
	c.attach(0, 0, frame.RoleSender, "hold")
	readAs[*frame.Flow](c)
	app.nextLink(t)
	payload := make([]byte, 1000)
	for i := range uint32(10) {
		c.send(0, &frame.Transfer{Handle: 0, DeliveryID: u32p(i), DeliveryTag: []byte{byte(i)}, Settled: true, Payload: payload})
	}
	// Heartbeats keep the client within the idle timeout: the stall is ours.
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				_, _ = c.nc.Write(frame.Heartbeat)
			case <-done:
				return
			}
		}
	}()
	c.expectClose(frame.CondResourceLimitExceeded)
}

// TestRawFrameSizeTooSmall: a reply that cannot fit the client's
// max-frame-size closes the connection with amqp:frame-size-too-small.
func TestRawFrameSizeTooSmall(t *testing.T) {
	app, addr := startApp(t, nil)
	app.opts.Properties = codec.Map{{Key: codec.Symbol("big"), Value: string(make([]byte, 600))}}
	c := rawDial(t, addr)
	c.write(frame.ProtoAMQP[:])
	c.expectHeader(frame.ProtoAMQP)
	c.send(0, &frame.Open{ContainerID: "small-frames", MaxFrameSize: 512})
	readAs[*frame.Open](c)
	c.begin(0)
	c.send(0, &frame.Attach{Name: "l", Handle: 0, Role: frame.RoleReceiver, Source: &frame.Source{Address: "hold"}})
	c.expectClose(frame.CondFrameSizeTooSmall)
}
