package eventlog

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sampleEvents cover every field and value type, and nil against empty.
func sampleEvents() []Event {
	return []Event{
		{},
		{DeviceID: "dev", Body: []byte{}, UserID: []byte{}, Properties: map[string]string{}, TypedProperties: map[string]any{}, Annotations: map[string]any{}},
		{
			DeviceID: "thermostat-042", ModuleID: "m", Body: []byte(`{"temperature":21.5}`),
			MessageID: "m-1", CorrelationID: "c-1", ContentType: "application/json", ContentEncoding: "utf-8",
			UserID:     []byte("alice"),
			Properties: map[string]string{"alert": "false", "ünï": "cödé"},
			Annotations: map[string]any{
				"iothub-connection-device-id":          "thermostat-042",
				"iothub-connection-auth-generation-id": "637",
				"iothub-message-source":                SourceTelemetry,
				"iothub-enqueuedtime":                  time.Date(2026, 3, 4, 5, 6, 7, 8_000_000, time.UTC),
			},
		},
		{
			PartitionKey: "pk",
			TypedProperties: map[string]any{
				"nil": nil, "f": false, "t": true,
				"i8": int8(math.MinInt8), "i16": int16(math.MaxInt16), "i32": int32(-7), "i64": int64(math.MinInt64),
				"u8": uint8(math.MaxUint8), "u16": uint16(1), "u32": uint32(math.MaxUint32), "u64": uint64(math.MaxUint64),
				"f32": float32(1.5), "f64": math.Inf(-1), "s": "str", "sym": Symbol("sym"), "bin": []byte{0, 1, 2},
				"bin0": []byte{}, "time": time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), "zero time": time.Time{},
				"uuid": UUID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, "char": Char('€'),
			},
		},
	}
}

func encodeRecord(t testing.TB, e Event, flags byte, seq, ms int64) []byte {
	t.Helper()
	b, err := appendEventFields(appendRecordHeader(nil), &e)
	require.NoError(t, err)
	sealRecord(b, flags, seq, ms)
	return b
}

func TestRecordRoundTrip(t *testing.T) {
	for i, in := range sampleEvents() {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			rec := encodeRecord(t, in, flagMore, 42, -5)
			fr, err := parseFrame(append(rec, 0xFF)) // trailing bytes belong to the next record
			require.NoError(t, err)
			require.Equal(t, frame{flags: flagMore, seq: 42, timeMs: -5, fields: fr.fields, size: len(rec)}, fr)
			var got Event
			require.NoError(t, decodeEventFields(fr.fields, &got))
			require.Equal(t, in, got)
		})
	}
}

func TestParseFrameDamage(t *testing.T) {
	rec := encodeRecord(t, sampleEvents()[2], 0, 1, 2)
	flip := func(i int) []byte {
		b := append([]byte(nil), rec...)
		b[i] ^= 0x10
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errShortRecord},
		{"header only", rec[:frameHeaderSize], errShortRecord},
		{"cut", rec[:len(rec)-1], errShortRecord},
		{"length too small", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0}, ErrCorrupt},
		{"length too large", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}, ErrCorrupt},
		{"length shortened", func() []byte { b := append([]byte(nil), rec...); b[0]--; return b }(), ErrCorrupt},
		{"length grown", flip(0), errShortRecord}, // only the end of the file tells
		{"checksum flipped", flip(5), ErrCorrupt},
		{"payload flipped", flip(len(rec) - 3), ErrCorrupt},
		{"zeros", make([]byte, 64), ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFrame(tt.b)
			require.ErrorIs(t, err, tt.want)
		})
	}

	// A record with a valid checksum over fields that do not decode.
	b := append(appendRecordHeader(nil), 0xFF)
	sealRecord(b, 0, 0, 0)
	fr, err := parseFrame(b)
	require.NoError(t, err)
	require.ErrorIs(t, decodeEventFields(fr.fields, new(Event)), ErrCorrupt)
}

// FuzzDecodeRecord feeds arbitrary bytes to the record parser and the event
// decoder: they must fail cleanly, and whatever decodes must encode and
// decode again to the same event.
func FuzzDecodeRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := parseFrame(b)
		if err != nil {
			return
		}
		var e Event
		err = decodeEventFields(fr.fields, &e)
		// A decoder that shares strings and maps between events decodes
		// the same, the first time and from what it remembers.
		ed := new(eventDecoder)
		for range 2 {
			var shared Event
			serr := ed.decode(fr.fields, &shared)
			require.Equal(t, err, serr)
			if err == nil {
				require.Equal(t, fmt.Sprintf("%#v", e), fmt.Sprintf("%#v", shared))
			}
		}
		if err != nil {
			require.ErrorIs(t, err, ErrCorrupt)
			return
		}
		again := encodeRecord(t, e, fr.flags, fr.seq, fr.timeMs)
		fr2, err := parseFrame(again)
		require.NoError(t, err)
		require.Equal(t, [3]int64{int64(fr.flags), fr.seq, fr.timeMs}, [3]int64{int64(fr2.flags), fr2.seq, fr2.timeMs})
		var e2 Event
		require.NoError(t, decodeEventFields(fr2.fields, &e2))
		// %#v prints maps sorted and NaN as NaN, which DeepEqual would not
		// call equal to itself.
		require.Equal(t, fmt.Sprintf("%#v", e), fmt.Sprintf("%#v", e2))
	})
}
