package registry

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// nested builds {"k1":{"k2":...{"kN":leaf}}}.
func nested(levels int, leaf string) string {
	var b strings.Builder
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, `{"k%d":`, i)
	}
	b.WriteString(leaf)
	b.WriteString(strings.Repeat("}", levels))
	return b.String()
}

func TestReportedLimits(t *testing.T) {
	tests := []struct {
		name  string
		patch string
		code  Reason // 0: accepted
	}{
		{"not JSON", `{"a":`, ReasonFormat},
		{"empty body", ``, ReasonFormat},
		{"trailing data", `{"a":1} {}`, ReasonFormat},
		{"array", `[1,2]`, ReasonArgument},
		{"string", `"x"`, ReasonArgument},
		{"null", `null`, ReasonArgument},
		{"number", `12`, ReasonArgument},
		{"depth 10 object with leaf at level 11", nested(11, `1`), 0},
		{"object at level 11", nested(11, `{}`), ReasonArgument},
		{"leaf at level 12", nested(12, `1`), ReasonArgument},
		{"key of 1024 bytes", `{"` + strings.Repeat("k", 1024) + `":1}`, 0},
		{"key of 1025 bytes", `{"` + strings.Repeat("k", 1025) + `":1}`, ReasonArgument},
		{"key with dot", `{"a.b":1}`, ReasonArgument},
		{"empty key", `{"":1}`, ReasonArgument},
		{"nested empty key", `{"a":{"":1}}`, ReasonArgument},
		{"empty key in array object", `{"a":[{"":1}]}`, ReasonArgument},
		{"key with dollar", `{"$a":1}`, ReasonArgument},
		{"nested key with dollar", `{"a":{"b$":1}}`, ReasonArgument},
		{"key with space", `{"a b":1}`, ReasonArgument},
		{"key with C0 control", `{"a\u0001":1}`, ReasonArgument},
		{"key with DEL", `{"a\u007f":1}`, ReasonArgument},
		{"key with C1 control", `{"a\u0085":1}`, ReasonArgument},
		{"key in array object with dot", `{"a":[{"b.c":1}]}`, ReasonArgument},
		{"unicode key", `{"température":1}`, 0},
		{"string of 4096 bytes", `{"s":"` + strings.Repeat("x", 4096) + `"}`, 0},
		{"string of 4097 bytes", `{"s":"` + strings.Repeat("x", 4097) + `"}`, ReasonArgument},
		{"string in array too long", `{"s":["` + strings.Repeat("x", 4097) + `"]}`, ReasonArgument},
		{"max integer", `{"n":4503599627370495}`, 0},
		{"min integer", `{"n":-4503599627370496}`, 0},
		{"integer too big", `{"n":4503599627370496}`, ReasonArgument},
		{"integer too small", `{"n":-4503599627370497}`, ReasonArgument},
		{"integer beyond int64", `{"n":123456789012345678901234567890}`, ReasonArgument},
		{"integer in array too big", `{"n":[9007199254740993]}`, ReasonArgument},
		{"big float is fine", `{"n":1e300}`, 0},
		{"null in array", `{"a":[1,null]}`, ReasonArgument},
		{"section too large", sizedPatch(32*1024 + 1), ReasonArgument},
		{"section at the limit", sizedPatch(32 * 1024), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createDevice(t, "d")
			before, err := f.s.GetTwin("d")
			require.NoError(t, err)
			notes := len(f.rec.all())

			_, err = f.s.PatchReported("d", json.RawMessage(tt.patch))
			if tt.code == 0 {
				require.NoError(t, err)
				return
			}
			requireInvalid(t, err, tt.code)
			after, err := f.s.GetTwin("d")
			require.NoError(t, err)
			require.Equal(t, before, after, "a rejected patch changes nothing")
			require.Len(t, f.rec.all(), notes, "a rejected patch emits nothing")
		})
	}
}

// sizedPatch is an object of string properties, each under the 4 KB value
// limit, that serialises to exactly n bytes.
func sizedPatch(n int) string {
	var parts []string
	rest := n - len("{}")
	for i := 0; rest > 0; i++ {
		key := fmt.Sprintf("p%d", i)
		frame := len(key) + len(`"":""`)
		if i > 0 {
			frame++ // comma
		}
		size := max(min(rest-frame, maxStringBytes), 0)
		parts = append(parts, fmt.Sprintf(`"%s":"%s"`, key, strings.Repeat("x", size)))
		rest -= frame + size
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestSizedPatchHelper(t *testing.T) {
	for _, n := range []int{100, 8192, 32768, 32769} {
		require.Len(t, sizedPatch(n), n)
	}
}

func TestSectionSizeLimitsAccumulate(t *testing.T) {
	f := newFixture(t)
	f.createDevice(t, "d")
	half := strings.Repeat("x", 4000)
	for i := range 8 {
		_, err := f.s.PatchReported("d", json.RawMessage(fmt.Sprintf(`{"k%d":"%s"}`, i, half)))
		require.NoError(t, err)
	}
	// 8 x ~4 KB fits; the ninth pushes the merged section past 32 KB.
	_, err := f.s.PatchReported("d", json.RawMessage(fmt.Sprintf(`{"k9":"%s"}`, half)))
	invalid := requireInvalid(t, err, ReasonArgument)
	require.Contains(t, invalid.Msg, "'Properties.Reported' size")
	// Replacing a value with a smaller one is still fine.
	_, err = f.s.PatchReported("d", json.RawMessage(`{"k0":"small"}`))
	require.NoError(t, err)
}

func TestServiceLimits(t *testing.T) {
	tests := []struct {
		name  string
		patch TwinPatch
	}{
		{"tags too large", TwinPatch{Tags: mustJSON(t, sizedPatch(8*1024+1))}},
		{"desired too large", TwinPatch{Desired: mustJSON(t, sizedPatch(32*1024+1))}},
		{"tags key with dollar", TwinPatch{Tags: map[string]any{"$metadata": map[string]any{}}}},
		{"tags too deep", TwinPatch{Tags: mustJSON(t, nested(11, `{}`))}},
		{"desired bad key", TwinPatch{Desired: map[string]any{"a.b": 1}}},
		{"desired big integer", TwinPatch{Desired: mustJSON(t, `{"n":9007199254740993}`)}},
		{"desired long string", TwinPatch{Desired: map[string]any{"s": strings.Repeat("y", 4097)}}},
		{"desired bad number text", TwinPatch{Desired: map[string]any{"n": json.Number("0x10")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.createDevice(t, "d")
			before, err := f.s.GetTwin("d")
			require.NoError(t, err)
			_, err = f.s.PatchTwin("d", tt.patch, "")
			requireInvalid(t, err, ReasonArgument)
			_, err = f.s.ReplaceTwin("d", tt.patch, "")
			requireInvalid(t, err, ReasonArgument)
			after, err := f.s.GetTwin("d")
			require.NoError(t, err)
			require.Equal(t, before, after)
		})
	}
	f := newFixture(t)
	f.createDevice(t, "d")
	_, err := f.s.PatchTwin("d", TwinPatch{Tags: mustJSON(t, sizedPatch(8*1024))}, "")
	require.NoError(t, err, "exactly 8 KB of tags is allowed")
}
