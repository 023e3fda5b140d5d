package frame

import (
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

// SASLCode is a sasl-outcome code.
type SASLCode uint8

// SASL outcome codes.
const (
	SASLOK      SASLCode = 0 // authentication succeeded
	SASLAuth    SASLCode = 1 // bad credentials
	SASLSys     SASLCode = 2 // system error, permanent
	SASLSysPerm SASLCode = 3
	SASLSysTemp SASLCode = 4
)

// SASLMechanisms is the server's list of mechanisms.
type SASLMechanisms struct {
	Mechanisms []codec.Symbol
}

func (*SASLMechanisms) FrameType() uint8 { return TypeSASL }

func (m *SASLMechanisms) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descSASLMechanisms)
	w.Value(m.Mechanisms) // mandatory: an empty array, never null
	return w.End()
}

func parseSASLMechanisms(r *codec.ListReader) (*SASLMechanisms, error) {
	r.Name("sasl-mechanisms")
	m := &SASLMechanisms{}
	mandatory(r, r.Symbols(&m.Mechanisms), "sasl-server-mechanisms")
	return m, r.Err()
}

// SASLInit is the client's choice of mechanism.
type SASLInit struct {
	Mechanism       codec.Symbol
	InitialResponse []byte
	Hostname        string
}

func (*SASLInit) FrameType() uint8 { return TypeSASL }

func (i *SASLInit) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descSASLInit)
	w.Symbol(i.Mechanism)
	w.Binary(i.InitialResponse)
	w.String(i.Hostname)
	return w.End()
}

func parseSASLInit(r *codec.ListReader) (*SASLInit, error) {
	r.Name("sasl-init")
	i := &SASLInit{}
	mandatory(r, r.Symbol(&i.Mechanism), "mechanism")
	r.Binary(&i.InitialResponse)
	r.String(&i.Hostname)
	return i, r.Err()
}

// SASLChallenge is a server challenge.
type SASLChallenge struct {
	Challenge []byte
}

func (*SASLChallenge) FrameType() uint8 { return TypeSASL }

func (c *SASLChallenge) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descSASLChallenge)
	w.Binary(nonNil(c.Challenge))
	return w.End()
}

func parseSASLChallenge(r *codec.ListReader) (*SASLChallenge, error) {
	r.Name("sasl-challenge")
	c := &SASLChallenge{}
	mandatory(r, r.Binary(&c.Challenge), "challenge")
	return c, r.Err()
}

// SASLResponse is a client response to a challenge.
type SASLResponse struct {
	Response []byte
}

func (*SASLResponse) FrameType() uint8 { return TypeSASL }

func (c *SASLResponse) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descSASLResponse)
	w.Binary(nonNil(c.Response))
	return w.End()
}

func parseSASLResponse(r *codec.ListReader) (*SASLResponse, error) {
	r.Name("sasl-response")
	c := &SASLResponse{}
	mandatory(r, r.Binary(&c.Response), "response")
	return c, r.Err()
}

// SASLOutcome ends the SASL exchange.
type SASLOutcome struct {
	Code           SASLCode
	AdditionalData []byte
}

func (*SASLOutcome) FrameType() uint8 { return TypeSASL }

func (o *SASLOutcome) AppendBody(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descSASLOutcome)
	w.Ubyte(uint8(o.Code))
	w.Binary(o.AdditionalData)
	return w.End()
}

func parseSASLOutcome(r *codec.ListReader) (*SASLOutcome, error) {
	r.Name("sasl-outcome")
	o := &SASLOutcome{}
	var code uint8
	mandatory(r, r.Ubyte(&code), "code")
	o.Code = SASLCode(code)
	r.Binary(&o.AdditionalData)
	return o, r.Err()
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
