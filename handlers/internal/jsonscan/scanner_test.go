package jsonscan

import (
	"encoding/json"
	"maps"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestScanner(t *testing.T) {
	doc := []byte(` {"Data":{"events":"[\"{\\\"a\\\":1}\"]"},"skip":[1,{"x":"}"}],"Metadata":{"n":null,"s":"plain"}} `)
	sc := NewScanner(doc)
	var events, plain []byte
	var sawNull bool
	err := sc.Object(func(k []byte) error {
		switch string(k) {
		case "Data":
			return sc.Object(func(k []byte) error {
				require.True(t, sc.IsString())
				var err error
				events, err = sc.Unquote()
				return err
			})
		case "Metadata":
			return sc.Object(func(k []byte) error {
				var err error
				switch string(k) {
				case "n":
					sawNull = sc.IsNull()
				case "s":
					plain, err = sc.Unquote()
				}
				return err
			})
		}
		return nil // "skip" is skipped for us
	})
	require.NoError(t, err)
	require.NoError(t, sc.End())
	require.Equal(t, `["{\"a\":1}"]`, string(events))
	require.Equal(t, "plain", string(plain))
	require.True(t, sawNull)

	require.Error(t, NewScanner([]byte(`{"a":1`)).Object(func([]byte) error { return nil }))
	require.Error(t, NewScanner([]byte(`[1]`)).Object(func([]byte) error { return nil }))
	_, err = NewScanner([]byte(`1`)).Unquote()
	require.Error(t, err)
}

// FuzzScanner: on valid JSON objects, Scanner sees the members encoding/json
// sees, reading string values with Unquote and the others with Raw.
func FuzzScanner(f *testing.F) {
	f.Add([]byte(`{"a":"x\"y","b":{"c":[1,2]},"d":"\u00e9","a":null}`))
	f.Add([]byte(`{"events":"[\"{\\\"k\\\":\\\"v\\\"}\"]"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		scan := func(doc []byte, inPlace bool) (map[string]string, error) {
			got := map[string]string{}
			sc := NewScanner(doc)
			err := sc.Object(func(k []byte) error {
				name := string(k)
				if sc.IsString() {
					unquote := sc.Unquote
					if inPlace {
						unquote = sc.UnquoteInPlace
					}
					v, err := unquote()
					got[name] = "s:" + string(v)
					return err
				}
				v, err := sc.Raw()
				got[name] = "r:" + string(v)
				return err
			})
			if err == nil {
				err = sc.End()
			}
			return got, err
		}
		got, err := scan(b, false)
		// Unquoting in place leaves the rest of the document readable.
		gotIP, errIP := scan(append([]byte(nil), b...), true)
		if (err == nil) != (errIP == nil) || !maps.Equal(got, gotIP) {
			t.Fatalf("in place: %q, %v; copying: %q, %v", gotIP, errIP, got, err)
		}
		var want map[string]json.RawMessage
		if !json.Valid(b) || !utf8.Valid(b) || json.Unmarshal(b, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("Scanner rejected a valid object: %v", err)
		}
		for k, raw := range want {
			var s string
			if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
				if got[k] != "s:"+s {
					t.Fatalf("member %q: %q, encoding/json string %q", k, got[k], s)
				}
			} else if got[k] != "r:"+string(raw) {
				t.Fatalf("member %q: %q, encoding/json %q", k, got[k], raw)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("Scanner saw %d names, encoding/json %d", len(got), len(want))
		}
	})
}
