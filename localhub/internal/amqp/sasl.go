package amqp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// SASL mechanisms we offer, in order of preference. Clients pick from
// them differently: go-amqp takes the first one it has a handler for, the
// .NET client (Microsoft.Azure.Amqp) only has MSSBCBS (its anonymous
// handler renamed) and fails unless it is offered, rhea walks the list.
const (
	MechMSSBCBS   codec.Symbol = "MSSBCBS"
	MechAnonymous codec.Symbol = "ANONYMOUS"
	MechPlain     codec.Symbol = "PLAIN"
)

// SASLInfo is what a connection's SASL exchange established. Authorisation
// of links is left to the application (for Event Hubs clients, CBS
// put-token requests on the same connection).
type SASLInfo struct {
	// Mechanism is empty when the client skipped SASL.
	Mechanism codec.Symbol
	// Username is the PLAIN authentication identity.
	Username string
	// Identity is what Options.PlainAuth returned.
	Identity any
	// Trace is the ANONYMOUS initial response (RFC 4505 trace data, often
	// the client's key name), for logs only.
	Trace string
	// Hostname is the hostname the client named in sasl-init.
	Hostname string
}

// handshakeError carries the AMQP error to send (after our open) when the
// peer's open is unacceptable; other handshake errors just close the
// socket, as there is no AMQP connection to report on yet.
type handshakeError struct {
	amqp *Error
}

func (e *handshakeError) Error() string { return e.amqp.Error() }

var errSASLFailed = errors.New("amqp: SASL authentication failed")

// handshake runs the server side of the protocol headers and SASL, and
// reads the peer's open. It writes to w and flushes when it must wait for
// the peer; it never writes our open.
func (s *Server) handshake(ctx context.Context, r *bufio.Reader, w *bufio.Writer) (SASLInfo, *frame.Open, error) {
	var info SASLInfo
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return info, nil, fmt.Errorf("amqp: reading protocol header: %w", err)
	}
	switch hdr {
	case frame.ProtoSASL:
		if _, err := w.Write(frame.ProtoSASL[:]); err != nil {
			return info, nil, err
		}
		var err error
		if info, err = s.negotiateSASL(ctx, r, w); err != nil {
			return info, nil, err
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return info, nil, fmt.Errorf("amqp: reading AMQP header after SASL: %w", err)
		}
		if hdr != frame.ProtoAMQP {
			_, _ = w.Write(frame.ProtoAMQP[:])
			_ = w.Flush()
			return info, nil, fmt.Errorf("amqp: protocol header %q after SASL, want AMQP 1.0", hdr[:])
		}
	case frame.ProtoAMQP:
		if s.opts.RequireSASL {
			_, _ = w.Write(frame.ProtoSASL[:])
			_ = w.Flush()
			return info, nil, errors.New("amqp: client skipped the required SASL layer")
		}
	default:
		// Unsupported protocol or version (TLS-in-AMQP, 0-10, ...): answer
		// with what we speak and close, as the spec asks. Not AMQP at all
		// (an HTTP request, a TLS ClientHello on the plain port): just close.
		if bytes.HasPrefix(hdr[:], []byte("AMQP")) {
			_, _ = w.Write(frame.ProtoSASL[:])
			_ = w.Flush()
		}
		return info, nil, fmt.Errorf("amqp: unsupported protocol header %q", hdr[:])
	}
	if _, err := w.Write(frame.ProtoAMQP[:]); err != nil {
		return info, nil, err
	}
	if err := w.Flush(); err != nil {
		return info, nil, err
	}

	for {
		h, body, err := frame.ReadFrame(r, s.opts.MaxFrameSize)
		if err != nil {
			return info, nil, fmt.Errorf("amqp: reading open: %w", err)
		}
		if len(body) == 0 {
			continue // a heartbeat before open
		}
		if h.Type != frame.TypeAMQP {
			return info, nil, &handshakeError{Errorf(frame.CondFramingError, "frame of type %d before open", h.Type)}
		}
		b, err := frame.ParseBody(h.Type, body)
		if err != nil {
			return info, nil, &handshakeError{Errorf(frame.CondDecodeError, "%v", err)}
		}
		open, ok := b.(*frame.Open)
		if !ok || h.Channel != 0 {
			return info, nil, &handshakeError{Errorf(frame.CondNotAllowed, "first frame is %T on channel %d, want open on channel 0", b, h.Channel)}
		}
		if open.MaxFrameSize < frame.MinMaxFrameSize {
			return info, nil, &handshakeError{Errorf(frame.CondInvalidField, "max-frame-size %d is below the minimum of %d", open.MaxFrameSize, frame.MinMaxFrameSize)}
		}
		return info, open, nil
	}
}

func (s *Server) mechanisms() []codec.Symbol {
	m := []codec.Symbol{MechMSSBCBS, MechAnonymous}
	if s.opts.PlainAuth != nil {
		m = append(m, MechPlain)
	}
	return m
}

// negotiateSASL sends our mechanisms, reads sasl-init and answers with an
// outcome. A failed authentication returns errSASLFailed after the
// outcome is written.
func (s *Server) negotiateSASL(ctx context.Context, r *bufio.Reader, w *bufio.Writer) (SASLInfo, error) {
	var info SASLInfo
	buf, err := frame.AppendFrame(nil, 0, &frame.SASLMechanisms{Mechanisms: s.mechanisms()})
	if err != nil {
		return info, err
	}
	if _, err := w.Write(buf); err != nil {
		return info, err
	}
	if err := w.Flush(); err != nil {
		return info, err
	}
	var init *frame.SASLInit
	for init == nil {
		h, body, err := frame.ReadFrame(r, s.opts.MaxFrameSize)
		if err != nil {
			return info, fmt.Errorf("amqp: reading sasl-init: %w", err)
		}
		if len(body) == 0 {
			continue
		}
		if h.Type != frame.TypeSASL {
			return info, fmt.Errorf("amqp: frame of type %d during SASL", h.Type)
		}
		b, err := frame.ParseBody(h.Type, body)
		if err != nil {
			return info, fmt.Errorf("amqp: SASL frame: %w", err)
		}
		var ok bool
		if init, ok = b.(*frame.SASLInit); !ok {
			return info, fmt.Errorf("amqp: %T during SASL, want sasl-init", b)
		}
	}
	info.Mechanism, info.Hostname = init.Mechanism, init.Hostname
	code := frame.SASLOK
	switch init.Mechanism {
	case MechAnonymous, MechMSSBCBS:
		info.Trace = string(init.InitialResponse)
	case MechPlain:
		if s.opts.PlainAuth == nil {
			code = frame.SASLAuth
			break
		}
		user, pass, ok := parsePlain(init.InitialResponse)
		if !ok {
			code = frame.SASLAuth
			break
		}
		info.Username = user
		id, err := s.opts.PlainAuth(ctx, user, pass)
		if err != nil {
			s.log.Info("amqp: SASL PLAIN refused", "user", user, "err", err)
			code = frame.SASLAuth
			break
		}
		info.Identity = id
	default:
		code = frame.SASLAuth
	}
	if buf, err = frame.AppendFrame(buf[:0], 0, &frame.SASLOutcome{Code: code}); err != nil {
		return info, err
	}
	if _, err := w.Write(buf); err != nil {
		return info, err
	}
	if err := w.Flush(); err != nil {
		return info, err
	}
	if code != frame.SASLOK {
		return info, fmt.Errorf("%w (mechanism %q)", errSASLFailed, init.Mechanism)
	}
	return info, nil
}

// parsePlain splits a PLAIN initial response, [authzid] NUL authcid NUL
// passwd (RFC 4616).
func parsePlain(b []byte) (user, pass string, ok bool) {
	parts := bytes.Split(b, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return "", "", false
	}
	return string(parts[1]), string(parts[2]), true
}
