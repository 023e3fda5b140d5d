package invocation

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeEventHubBatch: any input decodes or fails with ErrMalformed,
// never panics; and a decoded batch, re-encoded the way the host encodes
// it, decodes to the same events.
func FuzzDecodeEventHubBatch(f *testing.F) {
	f.Add([]byte(hostBatch))
	f.Add([]byte(`{"Data":{"events":["{\"a\":1}",{"b":2},null]},"Metadata":{"SequenceNumberArray":[5,6,7]}}`))
	f.Add([]byte(`{"Data":{"events":"[]"},"Metadata":{"SystemPropertiesArray":"[{}]"}}`))
	f.Add([]byte(`{"Data":{"events":"\"[\\\"x\\\"]\""}}`))
	f.Add([]byte(`{"data":{"e":"[\"\\u0000\"]"},"metadata":{"OffsetArray":"[1e400]"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := DecodeEventHubBatch(bytes.Clone(body), "events") // it decodes in place
		if want, ok := referenceBodies(body); ok {
			if err != nil {
				t.Fatalf("encoding/json reads %d events, DecodeEventHubBatch fails: %v", len(want), err)
			}
			if len(want) != len(b.Events) {
				t.Fatalf("encoding/json reads %d events, DecodeEventHubBatch %d", len(want), len(b.Events))
			}
			for i := range want {
				if want[i] != string(b.Events[i].Body) {
					t.Fatalf("event %d: encoding/json %q, DecodeEventHubBatch %q", i, want[i], b.Events[i].Body)
				}
			}
		}
		if err != nil {
			return
		}
		again, err := DecodeEventHubBatch(reencode(t, b), "events")
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if len(again.Events) != len(b.Events) {
			t.Fatalf("re-encoded batch has %d events, want %d", len(again.Events), len(b.Events))
		}
		for i := range b.Events {
			if string(again.Events[i].Body) != string(b.Events[i].Body) {
				t.Fatalf("event %d body %q, want %q", i, again.Events[i].Body, b.Events[i].Body)
			}
			if again.Events[i].SequenceNumber != b.Events[i].SequenceNumber || again.Events[i].Offset != b.Events[i].Offset {
				t.Fatalf("event %d metadata changed", i)
			}
		}
	})
}

// referenceBodies decodes Data.events with encoding/json, for valid UTF-8
// input only (encoding/json rewrites invalid UTF-8 where jsonscan keeps
// unescaped bytes as they are).
func referenceBodies(body []byte) ([]string, bool) {
	if !utf8.Valid(body) {
		return nil, false
	}
	var env struct{ Data map[string]json.RawMessage }
	if json.Unmarshal(body, &env) != nil {
		return nil, false
	}
	raw, ok := env.Data["events"]
	if !ok {
		return nil, false
	}
	var elems []json.RawMessage
	if Unwrap(raw, &elems) != nil {
		return nil, false
	}
	out := make([]string, len(elems))
	for i, e := range elems {
		switch {
		case isNull(e):
		case e[0] == '"':
			var s string
			if json.Unmarshal(e, &s) != nil {
				return nil, false
			}
			out[i] = s
		default:
			out[i] = string(e)
		}
	}
	return out, true
}

// reencode renders b as the host would: bodies as strings in a JSON array
// inside a string, *Array metadata as strings.
func reencode(t *testing.T, b EventHubBatch) []byte {
	bodies := make([]*string, len(b.Events))
	seqs := make([]int64, len(b.Events))
	offsets := make([]string, len(b.Events))
	for i, e := range b.Events {
		if e.Body != nil {
			s := string(e.Body)
			bodies[i] = &s
		}
		seqs[i] = e.SequenceNumber
		offsets[i] = e.Offset
	}
	str := func(v any) string {
		out, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	out, err := json.Marshal(map[string]any{
		"Data":     map[string]any{"events": str(bodies)},
		"Metadata": map[string]any{"SequenceNumberArray": str(seqs), "OffsetArray": str(offsets)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// FuzzDecodeHTTPRequest: never panics; a decoded request's body survives a
// round trip through the host's string encoding.
func FuzzDecodeHTTPRequest(f *testing.F) {
	f.Add([]byte(hostHTTPRequest))
	f.Add([]byte(`{"Data":{"req":{"Url":"http://h/","Headers":{"Content-Type":["application/octet-stream"]},"Body":"AAEC"}}}`))
	f.Add([]byte(`{"Data":{"req":{"Headers":{"a":1},"Query":{"q":[1]},"Params":null}}}`))
	f.Add([]byte(`{"Data":{"x":{},"y":{}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeHTTPRequest(body, "req")
		if err != nil {
			return
		}
		if req.Body == nil || binaryMediaType(req.header("Content-Type")) {
			return
		}
		enc, _ := json.Marshal(map[string]any{"Data": map[string]any{"req": map[string]any{"Url": req.URL, "Body": string(req.Body)}}})
		again, err := DecodeHTTPRequest(enc, "req")
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if !json.Valid(req.Body) && string(again.Body) != string([]rune(string(req.Body))) {
			t.Fatalf("body %q became %q", req.Body, again.Body)
		}
	})
}
