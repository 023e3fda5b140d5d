package amqp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

func TestSendAndReceive(t *testing.T) {
	_, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	snd, err := s.NewSender(ctx(t), "q/a", nil)
	require.NoError(t, err)
	require.Equal(t, uint64(amqp.DefaultMaxMessageSize), snd.MaxMessageSize(), "max-message-size in the attach reply")

	rcv, err := s.NewReceiver(ctx(t), "q/a", nil)
	require.NoError(t, err)

	const n = 50
	for i := range n {
		msg := goamqp.NewMessage([]byte(fmt.Sprintf("body-%d", i)))
		msg.ApplicationProperties = map[string]any{"i": int32(i)}
		msg.Annotations = goamqp.Annotations{goamqp.Symbol("x-opt-offset"): fmt.Sprint(i)}
		require.NoError(t, snd.Send(ctx(t), msg, nil))
	}
	for i := range n {
		msg, err := rcv.Receive(ctx(t), nil)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("body-%d", i), string(msg.GetData()))
		require.Equal(t, int32(i), msg.ApplicationProperties["i"])
		require.Equal(t, fmt.Sprint(i), msg.Annotations["x-opt-offset"])
		require.NoError(t, rcv.AcceptMessage(ctx(t), msg)) // pre-settled: a no-op
	}
}

// TestMultiFrame sends messages several times the frame size both ways:
// the client splits them and we reassemble; we split and it reassembles.
func TestMultiFrame(t *testing.T) {
	_, addr := startApp(t, nil)
	c := dial(t, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous(), MaxFrameSize: 4096})
	s := session(t, c)
	snd, err := s.NewSender(ctx(t), "q/big", nil)
	require.NoError(t, err)
	rcv, err := s.NewReceiver(ctx(t), "q/big", nil)
	require.NoError(t, err)
	for _, size := range []int{0, 1, 4000, 4096, 70_000, 900_000} {
		body := bytes.Repeat([]byte{byte(size)}, size)
		require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage(body), nil), "size %d", size)
		msg, err := rcv.Receive(ctx(t), nil)
		require.NoError(t, err)
		require.Equal(t, body, msg.GetData(), "size %d", size)
	}
}

func TestSASL(t *testing.T) {
	identity := make(chan any, 1)
	_, addr := startApp(t, func(o *amqp.Options) {
		o.Connect = func(ctx context.Context, c *amqp.Conn) error {
			identity <- c.SASL().Identity
			return nil
		}
	})

	t.Run("plain", func(t *testing.T) {
		dial(t, addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("user", "pass")})
		require.Equal(t, "identity-of-user", <-identity)
	})
	t.Run("plain with a wrong password", func(t *testing.T) {
		_, err := goamqp.Dial(ctx(t), "amqp://"+addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("user", "nope")})
		require.Error(t, err)
	})
	t.Run("anonymous", func(t *testing.T) {
		dial(t, addr, nil)
		require.Nil(t, <-identity)
	})
	t.Run("no SASL", func(t *testing.T) {
		c := dial(t, addr, &goamqp.ConnOptions{})
		<-identity
		_, err := session(t, c).NewSender(ctx(t), "q/nosasl", nil)
		require.NoError(t, err)
	})
}

func TestRequireSASL(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) { o.RequireSASL = true })
	_, err := goamqp.Dial(ctx(t), "amqp://"+addr, &goamqp.ConnOptions{})
	require.Error(t, err)
	dial(t, addr, nil)
}

func TestPlainNotOfferedWithoutValidator(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) { o.PlainAuth = nil })
	_, err := goamqp.Dial(ctx(t), "amqp://"+addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypePlain("user", "pass")})
	require.Error(t, err)
}

func TestRefusedLink(t *testing.T) {
	_, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	for _, role := range []string{"receiver", "sender"} {
		var err error
		if role == "receiver" {
			_, err = s.NewReceiver(ctx(t), "refuse", nil)
		} else {
			_, err = s.NewSender(ctx(t), "refuse", nil)
		}
		var ae *goamqp.Error
		require.ErrorAs(t, err, &ae, role)
		require.Equal(t, goamqp.ErrCond("amqp:not-found"), ae.Condition)
		require.Contains(t, ae.Description, "could not be found")
	}
	// The session survives a refusal.
	_, err := s.NewSender(ctx(t), "q/after-refusal", nil)
	require.NoError(t, err)
}

// TestDetachFromServer detaches a consumer as an epoch takeover would.
func TestDetachFromServer(t *testing.T) {
	app, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	rcv, err := s.NewReceiver(ctx(t), "hold", nil)
	require.NoError(t, err)
	l := app.nextLink(t)
	l.Detach(amqp.Errorf(frame.CondStolen, "New receiver with higher epoch of '1' is created"))
	<-l.Done()

	_, err = rcv.Receive(ctx(t), nil)
	var le *goamqp.LinkError
	require.ErrorAs(t, err, &le)
	require.NotNil(t, le.RemoteErr)
	require.Equal(t, goamqp.ErrCond("amqp:link:stolen"), le.RemoteErr.Condition)

	var ours *amqp.LinkError
	require.ErrorAs(t, l.Err(), &ours)
	require.Equal(t, frame.CondStolen, ours.Local.Condition)
	require.Error(t, l.Send(ctx(t), []byte{}))
}

func TestDetachFromClient(t *testing.T) {
	app, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	snd, err := s.NewSender(ctx(t), "hold", nil)
	require.NoError(t, err)
	l := app.nextLink(t)
	require.NoError(t, snd.Close(ctx(t)))
	<-l.Done()
	var le *amqp.LinkError
	require.ErrorAs(t, l.Err(), &le)
	require.Nil(t, le.Remote)
	_, err = l.Receive(ctx(t))
	require.ErrorAs(t, err, &le)
}

func TestSessionEndDetachesLinks(t *testing.T) {
	app, addr := startApp(t, nil)
	c := dial(t, addr, nil)
	s := session(t, c)
	_, err := s.NewReceiver(ctx(t), "hold", nil)
	require.NoError(t, err)
	l := app.nextLink(t)
	// go-amqp ends CBS sessions without detaching their links first.
	require.NoError(t, s.Close(ctx(t)))
	<-l.Done()
	var se *amqp.SessionError
	require.ErrorAs(t, l.Err(), &se)
	// The connection goes on.
	_, err = session(t, c).NewSender(ctx(t), "q/x", nil)
	require.NoError(t, err)
}

func TestCloseFromServer(t *testing.T) {
	var conn = make(chan *amqp.Conn, 1)
	_, addr := startApp(t, func(o *amqp.Options) {
		o.Connect = func(ctx context.Context, c *amqp.Conn) error { conn <- c; return nil }
	})
	c := dial(t, addr, nil)
	rcv, err := session(t, c).NewReceiver(ctx(t), "hold", nil)
	require.NoError(t, err)
	sc := <-conn
	sc.Close(amqp.Errorf(frame.CondConnectionForced, "bye"))
	<-sc.Done()
	_, err = rcv.Receive(ctx(t), nil)
	var ce *goamqp.ConnError
	require.ErrorAs(t, err, &ce)
	require.NotNil(t, ce.RemoteErr)
	require.Equal(t, goamqp.ErrCond("amqp:connection:forced"), ce.RemoteErr.Condition)
}

func TestConnectRefused(t *testing.T) {
	_, addr := startApp(t, func(o *amqp.Options) {
		o.Connect = func(ctx context.Context, c *amqp.Conn) error {
			return amqp.Errorf(frame.CondUnauthorizedAccess, "go away")
		}
	})
	c, err := goamqp.Dial(ctx(t), "amqp://"+addr, &goamqp.ConnOptions{SASLType: goamqp.SASLTypeAnonymous()})
	if err == nil {
		// The close may arrive after Dial returned.
		_, err = c.NewSession(ctx(t), nil)
	}
	var ce *goamqp.ConnError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, goamqp.ErrCond("amqp:unauthorized-access"), ce.RemoteErr.Condition)
}

// TestCreditLimited: the server sends no more than the credit granted.
func TestCreditLimited(t *testing.T) {
	app, addr := startApp(t, nil)
	for i := range 10 {
		app.queue("credit") <- mustMessage(t, fmt.Sprint(i))
	}
	s := session(t, dial(t, addr, nil))
	rcv, err := s.NewReceiver(ctx(t), "q/credit", &goamqp.ReceiverOptions{Credit: -1})
	require.NoError(t, err)
	require.NoError(t, rcv.IssueCredit(3))
	for i := range 3 {
		msg, err := rcv.Receive(ctx(t), nil)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(msg.GetData()))
	}
	// The drain completes only once the server has answered: every
	// transfer it sent before is in by then.
	require.NoError(t, rcv.DrainCredit(ctx(t), nil))
	require.Nil(t, rcv.Prefetched(), "a 4th message arrived with credit for 3")

	require.NoError(t, rcv.IssueCredit(2))
	for i := 3; i < 5; i++ {
		msg, err := rcv.Receive(ctx(t), nil)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint(i), string(msg.GetData()))
	}
}

// TestDrain: go-amqp drains by sending link-credit 0 with drain set and
// waits for our flow with drain set (raw tests check a drain with credit
// left, TestRawDrainConsumesCredit).
func TestDrain(t *testing.T) {
	app, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	rcv, err := s.NewReceiver(ctx(t), "hold", &goamqp.ReceiverOptions{Credit: -1})
	require.NoError(t, err)
	l := app.nextLink(t)
	require.NoError(t, l.Send(ctx(t), mustMessage(t, "one")))
	require.NoError(t, rcv.IssueCredit(5))
	msg, err := rcv.Receive(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, "one", string(msg.GetData()))
	require.NoError(t, rcv.DrainCredit(ctx(t), nil))
	require.Nil(t, rcv.Prefetched())

	// After the drain the server holds what it is given until new credit.
	require.NoError(t, l.Send(ctx(t), mustMessage(t, "two")))
	require.NoError(t, rcv.DrainCredit(ctx(t), nil))
	require.NoError(t, rcv.IssueCredit(1))
	msg, err = rcv.Receive(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, "two", string(msg.GetData()))
}

func mustMessage(t testing.TB, body string) []byte {
	b, err := goamqp.NewMessage([]byte(body)).MarshalBinary()
	require.NoError(t, err)
	return b
}

// TestSettleModes covers what Event Hubs clients ask for and expect
// echoed: go-amqp refuses a link whose reply differs from its request.
func TestSettleModes(t *testing.T) {
	app, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	settled, unsettled, mixed := goamqp.SenderSettleModeSettled, goamqp.SenderSettleModeUnsettled, goamqp.SenderSettleModeMixed
	first, second := goamqp.ReceiverSettleModeFirst, goamqp.ReceiverSettleModeSecond

	t.Run("producer mixed/first", func(t *testing.T) {
		snd, err := s.NewSender(ctx(t), "q/modes", &goamqp.SenderOptions{SettlementMode: &mixed, RequestedReceiverSettleMode: &first})
		require.NoError(t, err)
		require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage([]byte("m")), nil)) // waits for our disposition
		require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage([]byte("s")), &goamqp.SendOptions{Settled: true}))
	})
	t.Run("sender with rcv-settle-mode second", func(t *testing.T) {
		snd, err := s.NewSender(ctx(t), "q/modes", &goamqp.SenderOptions{SettlementMode: &unsettled, RequestedReceiverSettleMode: &second})
		require.NoError(t, err)
		require.NoError(t, snd.Send(ctx(t), goamqp.NewMessage([]byte("second")), nil))
	})
	t.Run("reply receiver asks for settled", func(t *testing.T) {
		rcv, err := s.NewReceiver(ctx(t), "q/modes", &goamqp.ReceiverOptions{RequestedSenderSettleMode: &settled, SettlementMode: &first})
		require.NoError(t, err)
		for _, want := range []string{"m", "s", "second"} {
			msg, err := rcv.Receive(ctx(t), nil)
			require.NoError(t, err)
			require.Equal(t, want, string(msg.GetData()))
		}
		require.NoError(t, rcv.Close(ctx(t)))
	})
	t.Run("receiver insists on unsettled", func(t *testing.T) {
		rcv, err := s.NewReceiver(ctx(t), "hold", &goamqp.ReceiverOptions{RequestedSenderSettleMode: &unsettled, Credit: 2})
		require.NoError(t, err)
		l := app.nextLink(t)
		for i := range 6 {
			require.NoError(t, l.Send(ctx(t), mustMessage(t, fmt.Sprint(i))))
		}
		for i := range 6 {
			msg, err := rcv.Receive(ctx(t), nil)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(i), string(msg.GetData()))
			require.NoError(t, rcv.AcceptMessage(ctx(t), msg)) // go-amqp re-credits on settlement
		}
	})
	t.Run("receiver with rcv-settle-mode second", func(t *testing.T) {
		rcv, err := s.NewReceiver(ctx(t), "hold", &goamqp.ReceiverOptions{RequestedSenderSettleMode: &unsettled, SettlementMode: &second})
		require.NoError(t, err)
		l := app.nextLink(t)
		require.NoError(t, l.Send(ctx(t), mustMessage(t, "x")))
		msg, err := rcv.Receive(ctx(t), nil)
		require.NoError(t, err)
		require.NoError(t, rcv.AcceptMessage(ctx(t), msg)) // waits for our settlement
	})
}

// TestRequestResponse plays a CBS put-token as go-amqp's azeventhubs does.
func TestRequestResponse(t *testing.T) {
	_, addr := startApp(t, nil)
	s := session(t, dial(t, addr, nil))
	snd, err := s.NewSender(ctx(t), "$cbs", nil)
	require.NoError(t, err)
	settled, first := goamqp.SenderSettleModeSettled, goamqp.ReceiverSettleModeFirst
	const replyTo = "$cbs$$cbs-reply-to-1234"
	rcv, err := s.NewReceiver(ctx(t), "$cbs", &goamqp.ReceiverOptions{
		TargetAddress: replyTo, RequestedSenderSettleMode: &settled, SettlementMode: &first, Credit: 1000})
	require.NoError(t, err)
	for i := range 3 {
		id := fmt.Sprintf("req-%d", i)
		req := &goamqp.Message{
			Properties:            &goamqp.MessageProperties{MessageID: id, ReplyTo: &[]string{replyTo}[0]},
			ApplicationProperties: map[string]any{"operation": "put-token", "type": "servicebus.windows.net:sastoken"},
			Value:                 "SharedAccessSignature sr=x&sig=y&se=1&skn=z",
		}
		require.NoError(t, snd.Send(ctx(t), req, nil))
		resp, err := rcv.Receive(ctx(t), nil)
		require.NoError(t, err)
		require.Equal(t, id, resp.Properties.CorrelationID)
		require.Equal(t, int32(202), resp.ApplicationProperties["status-code"])
		require.Equal(t, "put-token", resp.ApplicationProperties["echo-operation"])
	}
	// go-amqp ends the session without detaching: nothing must break.
	require.NoError(t, s.Close(ctx(t)))
}

func TestManySessions(t *testing.T) {
	_, addr := startApp(t, nil)
	c := dial(t, addr, nil)
	const n = 40
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- func() error {
				s, err := c.NewSession(ctx(t), nil)
				if err != nil {
					return err
				}
				q := fmt.Sprintf("q/s%d", i)
				snd, err := s.NewSender(ctx(t), q, nil)
				if err != nil {
					return err
				}
				rcv, err := s.NewReceiver(ctx(t), q, nil)
				if err != nil {
					return err
				}
				for j := range 20 {
					if err := snd.Send(ctx(t), goamqp.NewMessage([]byte(fmt.Sprint(i, j))), nil); err != nil {
						return err
					}
					m, err := rcv.Receive(ctx(t), nil)
					if err != nil {
						return err
					}
					if string(m.GetData()) != fmt.Sprint(i, j) {
						return fmt.Errorf("session %d got %q", i, m.GetData())
					}
				}
				return s.Close(ctx(t))
			}()
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
}

// TestBackpressure: with no credit granted, Send blocks once the link's
// buffer is full, instead of queueing without bound.
func TestBackpressure(t *testing.T) {
	app, addr := startApp(t, nil)
	app.opts.SendBuffer = 4096
	s := session(t, dial(t, addr, nil))
	rcv, err := s.NewReceiver(ctx(t), "hold", &goamqp.ReceiverOptions{Credit: -1})
	require.NoError(t, err)
	l := app.nextLink(t)
	msg := mustMessage(t, string(bytes.Repeat([]byte{1}, 1000)))
	sent := 0
	for {
		c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := l.Send(c, msg)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		sent++
		require.LessOrEqual(t, sent, 4, "Send never blocked")
	}
	require.Equal(t, 4, sent, "4 KiB buffer holds four messages of 1 KiB")
	require.NoError(t, rcv.IssueCredit(10))
	for range sent {
		_, err := rcv.Receive(ctx(t), nil)
		require.NoError(t, err)
	}
	require.NoError(t, l.Send(ctx(t), msg), "room again once credit arrives")
}
