package amqp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"testing"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/internal/corpus"
)

var writeCorpus = flag.Bool("write-corpus", false, "rewrite testdata/fuzz seed corpora")

func frames(bodies ...frame.Body) []byte {
	var out []byte
	for _, b := range bodies {
		var err error
		if out, err = frame.AppendFrame(out, 0, b); err != nil {
			panic(err)
		}
	}
	return out
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

var clientOpen = &frame.Open{ContainerID: "fuzz", MaxFrameSize: 65536, ChannelMax: 100, IdleTimeout: 30000}

// handshakeSeeds are client byte streams up to and including open.
func handshakeSeeds() [][]byte {
	return [][]byte{
		cat(frame.ProtoSASL[:], frames(&frame.SASLInit{Mechanism: MechAnonymous, InitialResponse: []byte("anonymous")}), frame.ProtoAMQP[:], frames(clientOpen)),
		cat(frame.ProtoSASL[:], frames(&frame.SASLInit{Mechanism: MechMSSBCBS}), frame.ProtoAMQP[:], frames(clientOpen)),
		cat(frame.ProtoSASL[:], frames(&frame.SASLInit{Mechanism: MechPlain, InitialResponse: []byte("\x00user\x00pass")}), frame.ProtoAMQP[:], frames(clientOpen)),
		cat(frame.ProtoSASL[:], frames(&frame.SASLInit{Mechanism: MechPlain, InitialResponse: []byte("\x00user\x00bad")})),
		cat(frame.ProtoAMQP[:], frame.Heartbeat, frames(clientOpen)),
		frame.ProtoTLS[:],
		[]byte("GET / HTTP/1.1\r\n"),
	}
}

func fuzzServer() *Server {
	return NewServer(Options{
		PlainAuth: func(ctx context.Context, user, pass string) (any, error) {
			if user == "user" && pass == "pass" {
				return user, nil
			}
			return nil, errors.New("no")
		},
		MaxFrameSize: 4096,
	})
}

// FuzzHandshake feeds arbitrary client bytes to the protocol header, SASL
// and open exchange: it must end (the input is finite) without panicking.
func FuzzHandshake(f *testing.F) {
	for _, s := range handshakeSeeds() {
		f.Add(s)
	}
	srv := fuzzServer()
	f.Fuzz(func(t *testing.T, in []byte) {
		info, open, err := srv.handshake(context.Background(), bufio.NewReader(bytes.NewReader(in)), bufio.NewWriter(io.Discard))
		if err == nil && (open == nil || open.MaxFrameSize < frame.MinMaxFrameSize) {
			t.Fatalf("handshake accepted open %#v", open)
		}
		if err == nil && info.Mechanism == MechPlain && info.Identity != "user" {
			t.Fatalf("PLAIN accepted without valid credentials: %#v", info)
		}
	})
}

// connSeeds are whole client sessions after a valid handshake.
func connSeeds() [][]byte {
	one := uint32(1)
	zero := uint32(0)
	msg, _ := (&codec.Message{Data: [][]byte{[]byte("hello")}}).MarshalBinary()
	return [][]byte{
		frames(&frame.Begin{IncomingWindow: 100, OutgoingWindow: 100},
			&frame.Attach{Name: "s", Handle: 0, Role: frame.RoleSender, Target: &frame.Target{Address: "in"}},
			&frame.Transfer{Handle: 0, DeliveryID: &zero, DeliveryTag: []byte{0}, Payload: msg},
			&frame.Transfer{Handle: 0, DeliveryID: &one, DeliveryTag: []byte{1}, More: true, Payload: msg[:3]},
			&frame.Transfer{Handle: 0, Payload: msg[3:]},
			&frame.Detach{Handle: 0, Closed: true},
			&frame.End{}, &frame.Close{}),
		frames(&frame.Begin{IncomingWindow: 100, OutgoingWindow: 100},
			&frame.Attach{Name: "r", Handle: 0, Role: frame.RoleReceiver, Source: &frame.Source{Address: "out"}},
			&frame.Flow{NextIncomingID: &zero, IncomingWindow: 100, OutgoingWindow: 100, Handle: &zero, DeliveryCount: &zero, LinkCredit: &one, Drain: true},
			&frame.Disposition{Role: frame.RoleReceiver, First: 0, Settled: true, State: &frame.Accepted{}},
			&frame.Flow{IncomingWindow: 100, OutgoingWindow: 100, Echo: true}),
		frames(&frame.Begin{IncomingWindow: 100, OutgoingWindow: 100},
			&frame.Attach{Name: "x", Handle: 0, Role: frame.RoleReceiver, Source: &frame.Source{Address: "refuse"}},
			&frame.Detach{Handle: 0, Closed: true}),
	}
}

// FuzzConn drives a whole connection (sessions, links, transfers, flow
// control) with arbitrary frames after a valid handshake. The server must
// neither panic nor hang: the connection ends once the input does.
func FuzzConn(f *testing.F) {
	for _, s := range connSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := NewServer(Options{
			IdleTimeout:   200 * time.Millisecond,
			WriteTimeout:  200 * time.Millisecond,
			MaxFrameSize:  4096,
			MaxSessions:   8,
			MaxLinks:      8,
			ReceiveBuffer: 64 << 10,
			Attach: func(ctx context.Context, l *Link) (LinkOptions, error) {
				switch l.Address() {
				case "refuse":
					return LinkOptions{}, Errorf(frame.CondNotFound, "no")
				case "out":
					go func() { _ = l.Send(l.Context(), []byte{0x00, 0x53, 0x77, 0x40}) }()
				default:
					go func() {
						for {
							d, err := l.Receive(l.Context())
							if err != nil {
								return
							}
							d.Accept()
						}
					}()
				}
				return LinkOptions{Credit: 4}, nil
			},
		})
		server, client := net.Pipe()
		srv.ServeConn(server)
		go func() { _, _ = io.Copy(io.Discard, client) }()
		hs := handshakeSeeds()[0]
		_, _ = client.Write(cat(hs, in))
		_ = client.Close()
		closed := make(chan struct{})
		go func() { _ = srv.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("connection did not end for input % x", in)
		}
	})
}

func TestWriteCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("corpus files are rewritten only with -write-corpus")
	}
	corpus.Write(t, "FuzzHandshake", corpus.Bytes(handshakeSeeds())...)
	corpus.Write(t, "FuzzConn", corpus.Bytes(connSeeds())...)
}
