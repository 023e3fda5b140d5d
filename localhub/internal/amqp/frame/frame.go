// Package frame is the AMQP 1.0 transport encoding (part 2 of the spec):
// frame headers, the nine performatives, the five SASL frames, termini,
// delivery states and errors, encoded and decoded on top of package
// codec.
//
// Decoding checks every field's type and every mandatory field, and
// reports failures as errors wrapping codec.ErrMalformed so that a server
// can answer with amqp:decode-error. Decoders never panic on any input
// (fuzzed: FuzzParseBody, FuzzReadFrame).
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

// Frame types.
const (
	TypeAMQP uint8 = 0x00
	TypeSASL uint8 = 0x01
)

// HeaderSize is the size of a frame header; an empty frame (a heartbeat)
// is just a header.
const HeaderSize = 8

// MinMaxFrameSize is the smallest max-frame-size a peer may announce, and
// the largest frame either side may send before open is exchanged.
const MinMaxFrameSize = 512

// Protocol headers: "AMQP" and a protocol id (AMQP 1.0 part 2, 2.2).
var (
	ProtoAMQP = [8]byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	ProtoTLS  = [8]byte{'A', 'M', 'Q', 'P', 2, 1, 0, 0}
	ProtoSASL = [8]byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// Heartbeat is an empty AMQP frame on channel 0.
var Heartbeat = []byte{0, 0, 0, 8, 2, 0, 0, 0}

// ErrFraming is wrapped by errors about the frame header itself (size,
// data offset): the stream can no longer be trusted to be in step.
var ErrFraming = errors.New("amqp frame: framing error")

// Header is a frame header.
type Header struct {
	Size       uint32 // whole frame, header included
	DataOffset uint8  // in 4-byte words; 2 without an extended header
	Type       uint8
	Channel    uint16
}

// ParseHeader decodes and checks a frame header.
func ParseHeader(b [HeaderSize]byte) (Header, error) {
	h := Header{
		Size:       binary.BigEndian.Uint32(b[0:4]),
		DataOffset: b[4],
		Type:       b[5],
		Channel:    binary.BigEndian.Uint16(b[6:8]),
	}
	if h.Size < HeaderSize {
		return h, fmt.Errorf("%w: frame size %d is smaller than its header", ErrFraming, h.Size)
	}
	if h.DataOffset < 2 || uint32(h.DataOffset)*4 > h.Size {
		return h, fmt.Errorf("%w: data offset %d in a frame of %d bytes", ErrFraming, h.DataOffset, h.Size)
	}
	return h, nil
}

// ReadFrame reads one frame from r: its header and its body (after any
// extended header). Frames larger than maxSize are refused before their
// body is read, so a peer cannot make us allocate more than maxSize.
func ReadFrame(r io.Reader, maxSize uint32) (Header, []byte, error) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return h, nil, err
	}
	if h.Size > maxSize {
		return h, nil, &SizeError{Size: h.Size, Max: maxSize}
	}
	rest := make([]byte, h.Size-HeaderSize)
	if _, err := io.ReadFull(r, rest); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return h, nil, err
	}
	return h, rest[int(h.DataOffset)*4-HeaderSize:], nil
}

// SizeError reports a frame larger than the agreed max-frame-size.
type SizeError struct {
	Size, Max uint32
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("amqp frame: frame of %d bytes exceeds max-frame-size %d", e.Size, e.Max)
}

func (e *SizeError) Unwrap() error { return ErrFraming }

// Body is a frame body: a performative or a SASL frame.
type Body interface {
	// AppendBody appends the encoded body (for a transfer, with its
	// payload).
	AppendBody(dst []byte) ([]byte, error)
	// FrameType is TypeAMQP or TypeSASL.
	FrameType() uint8
}

// AppendFrame appends a whole frame holding body to dst.
func AppendFrame(dst []byte, channel uint16, body Body) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 2, body.FrameType(), byte(channel>>8), byte(channel))
	dst, err := body.AppendBody(dst)
	if err != nil {
		return dst[:start], err
	}
	if uint64(len(dst)-start) > 0xffffffff {
		return dst[:start], errors.New("amqp frame: frame larger than 4 GiB")
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst, nil
}

// Descriptors of the performatives and SASL frames.
const (
	descOpen        = 0x10
	descBegin       = 0x11
	descAttach      = 0x12
	descFlow        = 0x13
	descTransfer    = 0x14
	descDisposition = 0x15
	descDetach      = 0x16
	descEnd         = 0x17
	descClose       = 0x18

	descSASLMechanisms = 0x40
	descSASLInit       = 0x41
	descSASLChallenge  = 0x42
	descSASLResponse   = 0x43
	descSASLOutcome    = 0x44

	descError    = 0x1d
	descReceived = 0x23
	descAccepted = 0x24
	descRejected = 0x25
	descReleased = 0x26
	descModified = 0x27
	descSource   = 0x28
	descTarget   = 0x29
)

var symbolicDescriptors = map[codec.Symbol]uint64{
	"amqp:open:list": descOpen, "amqp:begin:list": descBegin, "amqp:attach:list": descAttach,
	"amqp:flow:list": descFlow, "amqp:transfer:list": descTransfer,
	"amqp:disposition:list": descDisposition, "amqp:detach:list": descDetach,
	"amqp:end:list": descEnd, "amqp:close:list": descClose,
	"amqp:sasl-mechanisms:list": descSASLMechanisms, "amqp:sasl-init:list": descSASLInit,
	"amqp:sasl-challenge:list": descSASLChallenge, "amqp:sasl-response:list": descSASLResponse,
	"amqp:sasl-outcome:list": descSASLOutcome,
	"amqp:error:list":        descError, "amqp:received:list": descReceived,
	"amqp:accepted:list": descAccepted, "amqp:rejected:list": descRejected,
	"amqp:released:list": descReleased, "amqp:modified:list": descModified,
	"amqp:source:list": descSource, "amqp:target:list": descTarget,
}

// descriptorCode returns the numeric form of a descriptor (ulong or the
// symbolic name the spec gives each composite type).
func descriptorCode(d any) (uint64, bool) {
	switch d := d.(type) {
	case uint64:
		return d, true
	case codec.Symbol:
		c, ok := symbolicDescriptors[d]
		return c, ok
	}
	return 0, false
}

// ErrUnknownPerformative is wrapped by ParseBody for a well-formed
// described list whose descriptor is no performative of the frame's type.
var ErrUnknownPerformative = errors.New("amqp frame: unknown performative")

// ParseBody decodes the body of a frame of type frameType. An empty body
// (a heartbeat) returns nil, nil. A transfer's Payload aliases b; every
// other field is a copy.
func ParseBody(frameType uint8, b []byte) (Body, error) {
	if len(b) == 0 {
		return nil, nil
	}
	desc, r, rest, err := codec.ReadDescribedList(b)
	if err != nil {
		return nil, err
	}
	code, ok := descriptorCode(desc)
	if !ok {
		return nil, fmt.Errorf("%w: descriptor %v", ErrUnknownPerformative, desc)
	}
	var body Body
	switch {
	case frameType == TypeAMQP && code == descOpen:
		body, err = parseOpen(r)
	case frameType == TypeAMQP && code == descBegin:
		body, err = parseBegin(r)
	case frameType == TypeAMQP && code == descAttach:
		body, err = parseAttach(r)
	case frameType == TypeAMQP && code == descFlow:
		body, err = parseFlow(r)
	case frameType == TypeAMQP && code == descTransfer:
		t, err := parseTransfer(r)
		if err != nil {
			return nil, err
		}
		t.Payload = rest
		return t, nil
	case frameType == TypeAMQP && code == descDisposition:
		body, err = parseDisposition(r)
	case frameType == TypeAMQP && code == descDetach:
		body, err = parseDetach(r)
	case frameType == TypeAMQP && code == descEnd:
		body, err = parseEnd(r)
	case frameType == TypeAMQP && code == descClose:
		body, err = parseClose(r)
	case frameType == TypeSASL && code == descSASLMechanisms:
		body, err = parseSASLMechanisms(r)
	case frameType == TypeSASL && code == descSASLInit:
		body, err = parseSASLInit(r)
	case frameType == TypeSASL && code == descSASLChallenge:
		body, err = parseSASLChallenge(r)
	case frameType == TypeSASL && code == descSASLResponse:
		body, err = parseSASLResponse(r)
	case frameType == TypeSASL && code == descSASLOutcome:
		body, err = parseSASLOutcome(r)
	default:
		return nil, fmt.Errorf("%w: descriptor 0x%x in a frame of type %d", ErrUnknownPerformative, code, frameType)
	}
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the performative", codec.ErrMalformed, len(rest))
	}
	return body, nil
}

// mandatory records an error when a mandatory field was absent.
func mandatory(r *codec.ListReader, present bool, field string) {
	if !present {
		r.Fail("mandatory field %s is absent", field)
	}
}
