package frame

import (
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

// Source is a link's source terminus.
type Source struct {
	Address string
	// Durable is the terminus-durability: 0 none, 1 configuration, 2
	// unsettled-state.
	Durable uint32
	// ExpiryPolicy is empty for the default (session-end).
	ExpiryPolicy          codec.Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties codec.Map
	DistributionMode      codec.Symbol
	// Filter is the filter-set: symbol keys, described values (for
	// example apache.org:selector-filter:string → Described{ulong
	// 0x0000468C00000004, "amqp.annotation.x-opt-offset > '-1'"}).
	Filter codec.Map
	// DefaultOutcome is kept as decoded (a Described value).
	DefaultOutcome any
	Outcomes       []codec.Symbol
	Capabilities   []codec.Symbol
}

// Append appends the encoded source.
func (s *Source) Append(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descSource)
	w.String(s.Address)
	uintOrNull(&w, s.Durable)
	w.Symbol(s.ExpiryPolicy)
	uintOrNull(&w, s.Timeout)
	w.BoolOrNull(s.Dynamic)
	w.Map(s.DynamicNodeProperties)
	w.Symbol(s.DistributionMode)
	w.Map(s.Filter)
	w.Value(s.DefaultOutcome)
	w.Symbols(s.Outcomes)
	w.Symbols(s.Capabilities)
	return w.End()
}

func parseSource(r *codec.ListReader) *Source {
	desc, sub, ok := r.Composite()
	if !ok {
		return nil
	}
	if code, _ := descriptorCode(desc); code != descSource {
		r.Fail("source descriptor %v", desc)
		return nil
	}
	sub.Name("source")
	s := &Source{}
	address(sub, &s.Address)
	sub.Uint(&s.Durable)
	sub.Symbol(&s.ExpiryPolicy)
	sub.Uint(&s.Timeout)
	sub.Bool(&s.Dynamic)
	sub.Map(&s.DynamicNodeProperties)
	sub.Symbol(&s.DistributionMode)
	sub.Map(&s.Filter)
	sub.Value(&s.DefaultOutcome)
	sub.Symbols(&s.Outcomes)
	sub.Symbols(&s.Capabilities)
	if err := sub.Err(); err != nil {
		r.Fail("%v", err)
		return nil
	}
	return s
}

// Target is a link's target terminus.
type Target struct {
	Address               string
	Durable               uint32
	ExpiryPolicy          codec.Symbol
	Timeout               uint32
	Dynamic               bool
	DynamicNodeProperties codec.Map
	Capabilities          []codec.Symbol
}

// Append appends the encoded target.
func (t *Target) Append(dst []byte) ([]byte, error) {
	w := codec.BeginDescribedList(dst, descTarget)
	w.String(t.Address)
	uintOrNull(&w, t.Durable)
	w.Symbol(t.ExpiryPolicy)
	uintOrNull(&w, t.Timeout)
	w.BoolOrNull(t.Dynamic)
	w.Map(t.DynamicNodeProperties)
	w.Symbols(t.Capabilities)
	return w.End()
}

func parseTarget(r *codec.ListReader) *Target {
	desc, sub, ok := r.Composite()
	if !ok {
		return nil
	}
	if code, _ := descriptorCode(desc); code != descTarget {
		r.Fail("target descriptor %v (transactions are not supported)", desc)
		return nil
	}
	sub.Name("target")
	t := &Target{}
	address(sub, &t.Address)
	sub.Uint(&t.Durable)
	sub.Symbol(&t.ExpiryPolicy)
	sub.Uint(&t.Timeout)
	sub.Bool(&t.Dynamic)
	sub.Map(&t.DynamicNodeProperties)
	sub.Symbols(&t.Capabilities)
	if err := sub.Err(); err != nil {
		r.Fail("%v", err)
		return nil
	}
	return t
}

// address reads a terminus address: the spec allows any type, every
// client sends a str (some a sym).
func address(r *codec.ListReader, dst *string) {
	r.String(dst)
}
