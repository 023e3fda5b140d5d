// Package codec is the AMQP 1.0 type system (part 1 of the spec) and
// message format (part 3): it encodes Go values as AMQP values and back,
// and messages as their sections.
//
// It owns the AMQP data encoding for the local hub; frames and
// performatives (package frame) are built on it.
//
// Types are exact in both directions, because AMQP clients are strict
// about them (a str key never equals a sym key in .NET, Go's Event Hubs
// client rejects an x-opt-offset that is not a str, a $management
// partition list must be an array of str, not a list):
//
//	AMQP         Go
//	null         nil
//	boolean      bool
//	ubyte..ulong uint8, uint16, uint32, uint64 (uint encodes as ulong)
//	byte..long   int8, int16, int32, int64 (int encodes as long)
//	float/double float32, float64
//	decimal*     Decimal32, Decimal64, Decimal128 (opaque)
//	char         Char
//	timestamp    time.Time (milliseconds)
//	uuid         UUID
//	binary       []byte
//	str          string
//	sym          Symbol
//	list         []any
//	map          Map (ordered pairs; keys of any type)
//	array        []string, []Symbol, []int64, ... or Array
//	described    Described
//
// Encoding picks the most compact form of each type (uint0, smalluint,
// list0, str8, list8, ...); decoding accepts every form. Decoding is safe
// on hostile input: nesting is limited to MaxDepth, every count and size is
// checked against the bytes present, and memory stays proportional to the
// input.
package codec
