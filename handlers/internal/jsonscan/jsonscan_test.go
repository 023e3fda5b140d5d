package jsonscan

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestMembers(t *testing.T) {
	var got [][2]string
	err := Members([]byte(` { "a" : 1, "b\u0022" :{"x":[1,"]"]}, "c":"\"}" , "d":null } `), func(name, value []byte) bool {
		got = append(got, [2]string{string(name), string(value)})
		return true
	})
	require.NoError(t, err)
	require.Equal(t, [][2]string{{"a", "1"}, {`b"`, `{"x":[1,"]"]}`}, {"c", `"\"}"`}, {"d", "null"}}, got)

	// Stopping early skips the rest unread.
	n := 0
	require.NoError(t, Members([]byte(`{"a":1,"b":2}`), func(_, _ []byte) bool { n++; return false }))
	require.Equal(t, 1, n)
}

func TestElements(t *testing.T) {
	var got []string
	require.NoError(t, Elements([]byte(`[ "a,b" , {"c":[]} ,-1.5e3,true ]`), func(i int, v []byte) bool {
		got = append(got, string(v))
		return true
	}))
	require.Equal(t, []string{`"a,b"`, `{"c":[]}`, `-1.5e3`, `true`}, got)
	require.NoError(t, Elements([]byte(`[]`), func(int, []byte) bool { t.Fatal("no elements"); return false }))
}

func TestSyntaxErrors(t *testing.T) {
	for _, in := range []string{
		``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{a:1}`, `{"a":[}`, `{"a":{]}`,
		`{"a":tru}`, `{"a":01}`, `{"a":1.}`, `{"a":"x` + "\n" + `"}`, `{"a":1}x`, `[1,]`, `[1 2]`, `{"a":"\q"}`, `{"\u12":1}`,
	} {
		err := Members([]byte(in), func(_, _ []byte) bool { return true })
		errArr := Elements([]byte(in), func(int, []byte) bool { return true })
		require.Error(t, err, "Members(%q)", in)
		require.Error(t, errArr, "Elements(%q)", in)
	}
}

func TestUnquote(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"plain"`, "plain"},
		{`"tab\tquote\"slash\/back\\"`, "tab\tquote\"slash/back\\"},
		{`"\u00e9\ud83d\ude00"`, "é😀"},
		{`"\ud83d"`, "\ufffd"},
		{`"\ud83dx"`, "\ufffdx"},
		{`"\ud83d\u0041"`, "\ufffdA"},
		{"\"\xff\"", "\ufffd"},
		{`"é"`, "é"},
	}
	for _, tt := range tests {
		got, err := Unquote([]byte(tt.in))
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, string(got), tt.in)
	}
	for _, in := range []string{`x`, `"`, `"a`, `"a"b`, `'a'`, `"\u00"`} {
		_, err := Unquote([]byte(in))
		require.Error(t, err, in)
	}
}

// UnquoteInPlace reads what Unquote reads, writing over its input, also
// when invalid UTF-8 (whose U+FFFD is longer than the byte) forces it off
// the input part-way.
func TestUnquoteInPlace(t *testing.T) {
	for _, in := range []string{
		`"plain"`, `"a\"b"`, `"\u00e9\ud83d\ude00 \\ \/"`,
		"\"\xff\"", "\"\xff\xff\xffabc\"", `"\\\\\\\\` + "\xff\xff\xff\xff\"",
		"\"\\\"\xfe\\n\xff\"", `"\ud83d"`,
	} {
		want, err := Unquote([]byte(in))
		require.NoError(t, err, in)
		buf := []byte(in)
		got, err := UnquoteInPlace(buf)
		require.NoError(t, err, in)
		require.Equal(t, string(want), string(got), "%q", in)
	}
	buf := []byte(`"a\"b" `)
	got, err := UnquoteInPlace(buf)
	require.NoError(t, err)
	require.Equal(t, `a"b`, string(got))
	require.Equal(t, &buf[0], &got[0], "written over the input")
	for _, in := range []string{`x`, `"`, `"a`, `"a"b`, `"\u00"`} {
		_, err := UnquoteInPlace([]byte(in))
		require.Error(t, err, in)
	}
}

func TestInt(t *testing.T) {
	n, ok := Int([]byte(" 42 "))
	require.True(t, ok)
	require.Equal(t, int64(42), n)
	for _, in := range []string{"1.5", "1e3", `"1"`, "", "99999999999999999999"} {
		_, ok := Int([]byte(in))
		require.False(t, ok, in)
	}
}

// FuzzMembers compares jsonscan with encoding/json on every input: it
// never panics, and on valid JSON it sees exactly what encoding/json sees
// (objects as name→raw value maps, strings unescaped alike).
func FuzzMembers(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"x\u00e9\"","c":[{"d":null}],"a":2}`))
	f.Add([]byte(`["\ud83d\ude00", {"k":"v"}, 1e-3, false]`))
	f.Add([]byte(`"\ud800\udc00\\"`))
	f.Add([]byte(`{"\u0000":"\u001f"}`))
	f.Add([]byte(" [ ] "))
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := json.Valid(b) && utf8.Valid(b)

		got := map[string]string{}
		errM := Members(b, func(name, value []byte) bool {
			got[string(name)] = string(value)
			return true
		})
		var want map[string]json.RawMessage
		if valid && json.Unmarshal(b, &want) == nil {
			if errM != nil {
				t.Fatalf("Members rejected a valid object: %v", errM)
			}
			if len(got) != len(want) {
				t.Fatalf("Members saw %d names, encoding/json %d", len(got), len(want))
			}
			for k, v := range want {
				if got[k] != string(v) {
					t.Fatalf("member %q = %q, encoding/json %q", k, got[k], v)
				}
			}
		}

		var elems []string
		errE := Elements(b, func(_ int, v []byte) bool { elems = append(elems, string(v)); return true })
		var wantElems []json.RawMessage
		if valid && json.Unmarshal(b, &wantElems) == nil {
			if errE != nil || len(elems) != len(wantElems) {
				t.Fatalf("Elements = %q, %v; encoding/json %q", elems, errE, wantElems)
			}
			for i := range elems {
				if elems[i] != string(wantElems[i]) {
					t.Fatalf("element %d = %q, encoding/json %q", i, elems[i], wantElems[i])
				}
			}
		}

		s, errU := Unquote(b)
		inPlace, errIP := UnquoteInPlace(append([]byte(nil), b...))
		if (errU == nil) != (errIP == nil) || string(inPlace) != string(s) {
			t.Fatalf("UnquoteInPlace = %q, %v; Unquote %q, %v", inPlace, errIP, s, errU)
		}
		var wantS string
		if jsonErr := json.Unmarshal(b, &wantS); jsonErr == nil && utf8.Valid(b) {
			if errU != nil || string(s) != wantS {
				t.Fatalf("Unquote = %q, %v; encoding/json %q", s, errU, wantS)
			}
		}
	})
}
