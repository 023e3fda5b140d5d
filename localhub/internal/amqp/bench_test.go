package amqp_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"testing"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// benchEvent is a 1 KB telemetry event with IoT Hub's annotations, encoded
// once, as the Event Hubs layer would keep it.
func benchEvent(b testing.TB) []byte {
	enqueued := time.UnixMilli(1700000000123).UTC()
	m := &codec.Message{
		Annotations: codec.Map{
			{Key: codec.Symbol("iothub-connection-device-id"), Value: "dev-0001"},
			{Key: codec.Symbol("iothub-connection-auth-method"), Value: `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`},
			{Key: codec.Symbol("iothub-connection-auth-generation-id"), Value: "638000000000000000"},
			{Key: codec.Symbol("iothub-enqueuedtime"), Value: enqueued},
			{Key: codec.Symbol("iothub-message-source"), Value: "Telemetry"},
			{Key: codec.Symbol("x-opt-sequence-number"), Value: int64(123456)},
			{Key: codec.Symbol("x-opt-offset"), Value: "987654321"},
			{Key: codec.Symbol("x-opt-enqueued-time"), Value: enqueued},
		},
		Properties:            &codec.Properties{MessageID: "6e1d0b9c-0b7a-4b7e-9a39-6f3b2a1c0d11", ContentType: "application/json"},
		ApplicationProperties: codec.Map{{Key: "temperatureAlert", Value: "false"}},
		Data:                  [][]byte{bytes.Repeat([]byte("x"), 1024)},
	}
	p, err := m.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// producer pushes p on l until ctx ends.
func producer(ctx context.Context, l *amqp.Link, p []byte) {
	for ctx.Err() == nil {
		if err := l.Send(ctx, p); err != nil {
			return
		}
	}
}

// BenchmarkDeliverGoAMQP: pre-settled 1 KB events to one go-amqp receiver
// with azeventhubs' settings (credit 300, rcv-settle-mode first), over
// loopback: the server, the socket and go-amqp's decoding together.
func BenchmarkDeliverGoAMQP(b *testing.B) {
	app, addr := startApp(b, nil)
	c := dial(b, addr, nil)
	s := session(b, c)
	first := goamqp.ReceiverSettleModeFirst
	rcv, err := s.NewReceiver(context.Background(), "hold", &goamqp.ReceiverOptions{Credit: 300, SettlementMode: &first})
	if err != nil {
		b.Fatal(err)
	}
	l := app.nextLink(b)
	p := benchEvent(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go producer(ctx, l, p)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := rcv.Receive(ctx, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDeliverRaw: the same deliveries read by a client that only
// splits frames: the server's own cost, without go-amqp's.
func BenchmarkDeliverRaw(b *testing.B) {
	app, addr := startApp(b, nil)
	c := rawDial(b, addr)
	c.open()
	c.begin(0)
	c.attach(0, 0, frame.RoleReceiver, "hold")
	c.send(0, &frame.Flow{NextIncomingID: u32p(0), IncomingWindow: math.MaxInt32, OutgoingWindow: 100,
		Handle: u32p(0), DeliveryCount: u32p(0), LinkCredit: u32p(math.MaxInt32)})
	l := app.nextLink(b)
	p := benchEvent(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go producer(ctx, l, p)
	_ = c.nc.SetReadDeadline(time.Time{})
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := skipFrame(c.r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// skipFrame reads past one frame without allocating.
func skipFrame(r *bufio.Reader) error {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	size := int(h[0])<<24 | int(h[1])<<16 | int(h[2])<<8 | int(h[3])
	if size == 8 {
		return skipFrame(r) // heartbeat
	}
	_, err := r.Discard(size - 8)
	return err
}

// BenchmarkDeliverFloorTCP is the floor for the two above: the same
// transfer frames, encoded once, written over loopback TCP and split by
// the same reader, with no AMQP state at all.
func BenchmarkDeliverFloorTCP(b *testing.B) {
	p := benchEvent(b)
	id, format := uint32(1000), uint32(0)
	fr, err := frame.AppendFrame(nil, 0, &frame.Transfer{Handle: 0, DeliveryID: &id, DeliveryTag: make([]byte, 8),
		MessageFormat: &format, Settled: true, Payload: p})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		w := bufio.NewWriterSize(nc, 64<<10)
		for ctx.Err() == nil {
			if _, err := w.Write(fr); err != nil {
				return
			}
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReaderSize(nc, 64<<10)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if err := skipFrame(r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReceiveFromGoAMQP: 1 KB messages sent unsettled by a go-amqp
// sender (as a producer does) and accepted by the application.
func BenchmarkReceiveFromGoAMQP(b *testing.B) {
	app, addr := startApp(b, nil)
	c := dial(b, addr, nil)
	s := session(b, c)
	snd, err := s.NewSender(context.Background(), "hold", nil)
	if err != nil {
		b.Fatal(err)
	}
	l := app.nextLink(b)
	go func() {
		for {
			d, err := l.Receive(l.Context())
			if err != nil {
				return
			}
			d.Accept()
		}
	}()
	msg := goamqp.NewMessage(bytes.Repeat([]byte("x"), 1024))
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if err := snd.Send(context.Background(), msg, &goamqp.SendOptions{Settled: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
