package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }

func sndMode(m SenderSettleMode) *SenderSettleMode     { return &m }
func rcvMode(m ReceiverSettleMode) *ReceiverSettleMode { return &m }

// bodies has one of each frame body, with most fields set.
func bodies() []Body {
	selector := codec.Described{Descriptor: uint64(0x0000468C00000004), Value: "amqp.annotation.x-opt-offset > '-1'"}
	return []Body{
		&Open{ContainerID: "c", Hostname: "localhost", MaxFrameSize: 65536, ChannelMax: 65535, IdleTimeout: 30000,
			OfferedCapabilities: []codec.Symbol{"ANONYMOUS-RELAY"}, Properties: codec.Map{{Key: codec.Symbol("product"), Value: "x"}}},
		&Begin{RemoteChannel: u16(3), NextOutgoingID: 1, IncomingWindow: 5000, OutgoingWindow: 5000, HandleMax: 255},
		&Attach{Name: "link", Handle: 1, Role: RoleReceiver, SndSettleMode: sndMode(SenderSettleSettled),
			RcvSettleMode: rcvMode(ReceiverSettleFirst),
			Source: &Source{Address: "hub/ConsumerGroups/$Default/Partitions/0",
				Filter: codec.Map{{Key: codec.Symbol("apache.org:selector-filter:string"), Value: selector}}},
			Target:              &Target{Address: "uuid"},
			DesiredCapabilities: []codec.Symbol{"com.microsoft:georeplication"},
			Properties:          codec.Map{{Key: codec.Symbol("com.microsoft:epoch"), Value: int64(0)}}},
		&Attach{Name: "snd", Handle: 2, Role: RoleSender, InitialDeliveryCount: 7, MaxMessageSize: 1 << 20,
			Source: &Source{}, Target: &Target{Address: "$cbs"}},
		&Flow{NextIncomingID: u32(1), IncomingWindow: 5000, NextOutgoingID: 2, OutgoingWindow: 5000,
			Handle: u32(0), DeliveryCount: u32(0), LinkCredit: u32(300), Drain: true},
		&Flow{IncomingWindow: 1, NextOutgoingID: 0, OutgoingWindow: 2},
		&Transfer{Handle: 0, DeliveryID: u32(9), DeliveryTag: []byte{1}, MessageFormat: u32(0x80013700), Settled: true,
			More: true, Payload: []byte("payload")},
		&Transfer{Handle: 1, State: &Rejected{Error: &Error{Condition: CondMessageSizeExceeded}}, Payload: []byte{}},
		&Disposition{Role: RoleReceiver, First: 4, Last: u32(6), Settled: true, State: &Accepted{}},
		&Disposition{Role: RoleSender, First: 1, State: &Modified{DeliveryFailed: true,
			MessageAnnotations: codec.Map{{Key: codec.Symbol("k"), Value: "v"}}}},
		&Disposition{Role: RoleReceiver, First: 1, State: &Received{SectionNumber: 1, SectionOffset: 2}},
		&Disposition{Role: RoleReceiver, First: 1, State: &Released{}},
		&Detach{Handle: 5, Closed: true, Error: &Error{Condition: CondStolen, Description: "new receiver with higher epoch",
			Info: codec.Map{{Key: codec.Symbol("k"), Value: int32(1)}}}},
		&End{},
		&End{Error: &Error{Condition: CondWindowViolation}},
		&Close{Error: &Error{Condition: CondFramingError, Description: "too big"}},
		&SASLMechanisms{Mechanisms: []codec.Symbol{"MSSBCBS", "ANONYMOUS", "PLAIN"}},
		&SASLInit{Mechanism: "PLAIN", InitialResponse: []byte("\x00user\x00pass"), Hostname: "localhost"},
		&SASLChallenge{Challenge: []byte{}},
		&SASLResponse{Response: []byte("r")},
		&SASLOutcome{Code: SASLAuth},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, b := range bodies() {
		frame, err := AppendFrame(nil, 7, b)
		require.NoError(t, err)
		h, body, err := ReadFrame(bytes.NewReader(frame), math.MaxUint32)
		require.NoError(t, err)
		require.Equal(t, Header{Size: uint32(len(frame)), DataOffset: 2, Type: b.FrameType(), Channel: 7}, h)
		got, err := ParseBody(h.Type, body)
		require.NoError(t, err, "%T", b)
		require.Equal(t, b, got)
	}
}

func TestExactBytes(t *testing.T) {
	tests := []struct {
		name string
		body Body
		want string
	}{
		// The outcome every client expects after sasl-init.
		{"sasl-outcome ok", &SASLOutcome{Code: SASLOK}, "00000010 02 01 0000 00 53 44 c0 03 01 50 00"},
		{"accepted disposition", &Disposition{Role: RoleReceiver, First: 3, Settled: true, State: &Accepted{}},
			"00000017 02 00 0000 00 53 15 c0 0a 05 41 52 03 40 41 00 53 24 45"},
		{"detach closed", &Detach{Handle: 0, Closed: true}, "00000010 02 00 0000 00 53 16 c0 03 02 43 41"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendFrame(nil, 0, tt.body)
			require.NoError(t, err)
			want, _ := hex.DecodeString(strings.ReplaceAll(tt.want, " ", ""))
			require.Equal(t, want, got, "% x", got)
		})
	}
}

func TestDefaults(t *testing.T) {
	// open with only container-id: the spec defaults apply.
	enc, _ := AppendFrame(nil, 0, &rawList{desc: descOpen, fields: []any{"c"}})
	_, body, _ := ReadFrame(bytes.NewReader(enc), math.MaxUint32)
	b, err := ParseBody(TypeAMQP, body)
	require.NoError(t, err)
	require.Equal(t, &Open{ContainerID: "c", MaxFrameSize: math.MaxUint32, ChannelMax: math.MaxUint16}, b)

	// A peer may send a single symbol where an array is allowed.
	enc, _ = AppendFrame(nil, 0, &rawList{desc: descSASLMechanisms, fields: []any{codec.Symbol("ANONYMOUS")}, sasl: true})
	_, body, _ = ReadFrame(bytes.NewReader(enc), math.MaxUint32)
	b, err = ParseBody(TypeSASL, body)
	require.NoError(t, err)
	require.Equal(t, &SASLMechanisms{Mechanisms: []codec.Symbol{"ANONYMOUS"}}, b)

	// Symbolic descriptors are the same performatives.
	enc, _ = codec.Marshal(codec.Described{Descriptor: codec.Symbol("amqp:end:list"), Value: []any{}})
	b, err = ParseBody(TypeAMQP, enc)
	require.NoError(t, err)
	require.Equal(t, &End{}, b)
}

// rawList is a frame body given as raw fields, for frames our own types
// would not write.
type rawList struct {
	desc   uint64
	fields []any
	sasl   bool
}

func (r *rawList) FrameType() uint8 {
	if r.sasl {
		return TypeSASL
	}
	return TypeAMQP
}

func (r *rawList) AppendBody(dst []byte) ([]byte, error) {
	return codec.Append(dst, codec.Described{Descriptor: r.desc, Value: r.fields})
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		frameType uint8
		body      Body
		unknown   bool
	}{
		{"open without container-id", TypeAMQP, &rawList{desc: descOpen, fields: []any{nil, "host"}}, false},
		{"attach without role", TypeAMQP, &rawList{desc: descAttach, fields: []any{"n", uint32(0)}}, false},
		{"attach handle of wrong type", TypeAMQP, &rawList{desc: descAttach, fields: []any{"n", "0", true}}, false},
		{"attach bad settle mode", TypeAMQP, &rawList{desc: descAttach, fields: []any{"n", uint32(0), true, uint8(3)}}, false},
		{"attach source not a source", TypeAMQP, &rawList{desc: descAttach, fields: []any{"n", uint32(0), true, nil, nil,
			codec.Described{Descriptor: uint64(0x29), Value: []any{}}}}, false},
		{"attach source address not a string", TypeAMQP, &rawList{desc: descAttach, fields: []any{"n", uint32(0), true, nil, nil,
			codec.Described{Descriptor: uint64(0x28), Value: []any{int32(1)}}}}, false},
		{"flow without windows", TypeAMQP, &rawList{desc: descFlow, fields: []any{}}, false},
		{"flow credit without handle", TypeAMQP, &rawList{desc: descFlow, fields: []any{nil, uint32(1), uint32(1), uint32(1), nil, nil, uint32(5)}}, false},
		{"transfer without handle", TypeAMQP, &rawList{desc: descTransfer, fields: []any{}}, false},
		{"disposition without first", TypeAMQP, &rawList{desc: descDisposition, fields: []any{true}}, false},
		{"error without condition", TypeAMQP, &rawList{desc: descClose, fields: []any{codec.Described{Descriptor: uint64(0x1d), Value: []any{}}}}, false},
		{"detach error not an error", TypeAMQP, &rawList{desc: descDetach, fields: []any{uint32(0), true, "boom"}}, false},
		{"unknown performative", TypeAMQP, &rawList{desc: 0x19, fields: []any{}}, true},
		{"sasl frame as amqp", TypeAMQP, &rawList{desc: descSASLInit, fields: []any{codec.Symbol("PLAIN")}}, true},
		{"amqp frame as sasl", TypeSASL, &rawList{desc: descOpen, fields: []any{"c"}}, true},
		{"not described", TypeAMQP, nil, false},
		{"trailing bytes", TypeAMQP, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body []byte
			switch tt.name {
			case "not described":
				body = []byte{0x45}
			case "trailing bytes":
				body = []byte{0x00, 0x53, 0x17, 0x45, 0x40}
			default:
				var err error
				body, err = tt.body.AppendBody(nil)
				require.NoError(t, err)
			}
			b, err := ParseBody(tt.frameType, body)
			require.Error(t, err, "parsed as %#v", b)
			if tt.unknown {
				require.ErrorIs(t, err, ErrUnknownPerformative)
			} else {
				require.ErrorIs(t, err, codec.ErrMalformed)
			}
		})
	}
}

func TestReadFrameErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		max  uint32
		want error
	}{
		{"size below header", []byte{0, 0, 0, 7, 2, 0, 0, 0}, 512, ErrFraming},
		{"doff below 2", []byte{0, 0, 0, 8, 1, 0, 0, 0}, 512, ErrFraming},
		{"doff past the frame", []byte{0, 0, 0, 8, 3, 0, 0, 0}, 512, ErrFraming},
		{"too large", []byte{0, 0, 2, 1, 2, 0, 0, 0}, 512, ErrFraming},
		{"truncated header", []byte{0, 0, 0}, 512, io.ErrUnexpectedEOF},
		{"truncated body", []byte{0, 0, 0, 12, 2, 0, 0, 0, 1}, 512, io.ErrUnexpectedEOF},
		{"nothing", nil, 512, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ReadFrame(bytes.NewReader(tt.in), tt.max)
			require.ErrorIs(t, err, tt.want)
		})
	}
	var se *SizeError
	_, _, err := ReadFrame(bytes.NewReader([]byte{0, 1, 0, 1, 2, 0, 0, 0}), 65536)
	require.True(t, errors.As(err, &se))
	require.Equal(t, uint32(65537), se.Size)
}

func TestExtendedHeaderSkipped(t *testing.T) {
	frame := []byte{0, 0, 0, 16, 3, 0, 0, 1, 9, 9, 9, 9, 0x00, 0x53, 0x17, 0x45}
	h, body, err := ReadFrame(bytes.NewReader(frame), 512)
	require.NoError(t, err)
	require.Equal(t, uint16(1), h.Channel)
	b, err := ParseBody(h.Type, body)
	require.NoError(t, err)
	require.Equal(t, &End{}, b)
}

func TestHeartbeat(t *testing.T) {
	h, body, err := ReadFrame(bytes.NewReader(Heartbeat), 512)
	require.NoError(t, err)
	require.Empty(t, body)
	b, err := ParseBody(h.Type, body)
	require.NoError(t, err)
	require.Nil(t, b)
}
