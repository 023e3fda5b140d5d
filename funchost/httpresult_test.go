package funchost

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHTTPResponseOf maps invocation results to responses (§2.2).
func TestHTTPResponseOf(t *testing.T) {
	res := &binding{Type: "http", Direction: "out", Name: "res"}
	ret := &binding{Type: "http", Direction: "out", Name: "$return"}
	tests := []struct {
		name       string
		out        *binding
		result     string
		wantStatus int
		wantHeader map[string]string
		wantBody   string
		wantErr    bool
	}{
		{name: "number status", out: res, result: `{"Outputs":{"res":{"statusCode":202,"headers":{"Location":"/x","Retry-After":"10"},"body":"{\"a\":1}"}}}`,
			wantStatus: 202, wantHeader: map[string]string{"Location": "/x", "Retry-After": "10"}, wantBody: `{"a":1}`},
		{name: "string status, keys in any case", out: res, result: `{"outputs":{"RES":{"StatusCode":"404","Body":"nope"}}}`, wantStatus: 404, wantBody: "nope"},
		{name: "unparseable status keeps 200", out: res, result: `{"Outputs":{"res":{"statusCode":"abc"}}}`, wantStatus: 200},
		{name: "status is no alias for a named output", out: res, result: `{"Outputs":{"res":{"status":500}}}`, wantStatus: 200},
		{name: "header values rendered by ToString", out: res, result: `{"Outputs":{"res":{"headers":{"X-B":true,"X-N":5,"X-A":["a","b"]}}}}`,
			wantStatus: 200, wantHeader: map[string]string{"X-B": "True", "X-N": "5", "X-A": "[\n  \"a\",\n  \"b\"\n]"}},
		{name: "object body indented", out: res, result: `{"Outputs":{"res":{"body":{"a":1,"b":[1,2]}}}}`,
			wantStatus: 200, wantBody: "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ]\n}"},
		{name: "missing output", out: res, result: `{"Outputs":{},"Logs":[]}`, wantStatus: 200, wantBody: "{}"},
		{name: "output as a JSON string", out: res, result: `{"Outputs":{"res":"{\"statusCode\":201}"}}`, wantStatus: 201},
		{name: "output as a plain string fails", out: res, result: `{"Outputs":{"res":"hello"}}`, wantErr: true},
		{name: "null header fails", out: res, result: `{"Outputs":{"res":{"headers":{"X":null}}}}`, wantErr: true},
		{name: "ReturnValue merged into Outputs", out: res, result: `{"Outputs":{},"ReturnValue":{"res":{"statusCode":409}}}`, wantStatus: 409},
		{name: "$return with status alias", out: ret, result: `{"ReturnValue":{"status":418,"body":"teapot"}}`, wantStatus: 418, wantBody: "teapot"},
		{name: "$return plain string", out: ret, result: `{"ReturnValue":"just text"}`, wantStatus: 200, wantBody: "just text"},
		{name: "$return JSON string", out: ret, result: `{"ReturnValue":"{\"statusCode\":204}"}`, wantStatus: 204},
		{name: "no http output", out: nil, result: `{"Outputs":{}}`, wantStatus: 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r invocationResult
			require.NoError(t, json.Unmarshal([]byte(tt.result), &r))
			resp, err := httpResponseOf(&function{name: "F", httpOut: tt.out}, r)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			rec := httptest.NewRecorder()
			resp.write(rec)
			require.Equal(t, tt.wantStatus, rec.Code)
			for k, v := range tt.wantHeader {
				require.Equal(t, v, rec.Header().Get(k), k)
			}
			require.Equal(t, tt.wantBody, rec.Body.String())
			require.Empty(t, rec.Header().Get("Content-Type"), "no Content-Type is invented")
		})
	}
}

// FuzzHTTPResult: any handler answer maps to a response or an error,
// never a panic, and a mapped status is a valid HTTP status.
func FuzzHTTPResult(f *testing.F) {
	f.Add(`{"Outputs":{"res":{"statusCode":202,"headers":{"a":"b"},"body":{"x":1}}}}`, false)
	f.Add(`{"ReturnValue":"{\"status\":\"500\"}"}`, true)
	f.Add(`{"Outputs":{"res":"[1]"}}`, false)
	f.Add(`{"Outputs":{"res":{"statusCode":1e400}}}`, false)
	f.Fuzz(func(t *testing.T, result string, isReturn bool) {
		var r invocationResult
		if json.Unmarshal([]byte(result), &r) != nil {
			return
		}
		out := &binding{Type: "http", Name: "res"}
		if isReturn {
			out.Name = returnBinding
		}
		resp, err := httpResponseOf(&function{httpOut: out}, r)
		if err != nil {
			return
		}
		if resp.status < 100 || resp.status > 999 {
			t.Fatalf("status %d", resp.status)
		}
		resp.write(httptest.NewRecorder())
	})
}

// FuzzHostConfig: host.json and function.json parsing never panics, with
// or without overrides.
func FuzzHostConfig(f *testing.F) {
	f.Add(`{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h","arguments":["%X%"]}}}`, `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"a/{b}"}]}`, "customHandler__port", "1")
	f.Add(`{"version":"2.0","httpWorker":{"description":{"defaultExecutablePath":"h"}},"extensions":{"eventHubs":{"maxEventBatchSize":"3"}}}`,
		`{"bindings":[{"type":"eventHubTrigger","direction":"in","name":"e","eventHubName":"%X%","connection":"X"}],"retry":{"strategy":"fixedDelay","maxRetryCount":1,"delayInterval":"00:00:01"}}`, "extensions__http__routePrefix", "")
	f.Add(`null`, `[]`, "a__0__b", "c")
	f.Fuzz(func(t *testing.T, hostJSON, functionJSON, overridePath, value string) {
		s := settings{overridePrefix + overridePath: value, "X": "Endpoint=sb://x/;EntityPath=y"}
		cfg, err := parseHostConfig([]byte(hostJSON), s)
		if err != nil {
			cfg = hostConfig{routePrefix: "api"}
		}
		fn, err := parseFunction("F", []byte(functionJSON), cfg, s)
		if err == nil && fn != nil && fn.trigger.is(typeHTTPTrigger) {
			newRouteTable(cfg.routePrefix, []*function{fn}).match(http.MethodGet, "/api/a/b")
		}
		expandArguments(cfg.handler.arguments, s)
	})
}

// FuzzSettingExpressions: %NAME% resolution and argument expansion never
// panic, and text without % passes through unchanged.
func FuzzSettingExpressions(f *testing.F) {
	f.Add("%A%-%B%")
	f.Add("%%")
	f.Add("plain")
	f.Add("%A")
	f.Add("Endpoint=sb://localhost:5672;SharedAccessKeyName=service;SharedAccessKey=a2V5;EntityPath=localhost;UseDevelopmentEmulator=true")
	f.Add("Endpoint=sb://[::1]:5671/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y")
	f.Fuzz(func(t *testing.T, s string) {
		st := settings{"A": "1", "B": "%A%"}
		out, err := resolveBindingExpression(s, st)
		if !containsPercent(s) && (err != nil || out != s) {
			t.Fatalf("resolveBindingExpression(%q) = %q, %v", s, out, err)
		}
		if got := expandArguments([]string{s}, st)[0]; !containsPercent(s) && got != s {
			t.Fatalf("expandArguments(%q) = %q", s, got)
		}
		// Connection settings: whatever resolves names a namespace without
		// a port, and no error repeats the key.
		const key = "S3cr3tK3yV4lu3"
		for _, st := range []settings{{"C": s}, {"C__fullyQualifiedNamespace": s}, {"C": s + ";SharedAccessKey=" + key}, {"C": "SharedAccessKey=" + key + ";" + s}} {
			c, err := resolveConnection("C", st)
			if err == nil && c.namespace != hostWithoutPort(c.namespace) {
				t.Fatalf("resolveConnection(%q): namespace %q has a port", s, c.namespace)
			}
			if err != nil && strings.Contains(err.Error(), key) {
				t.Fatalf("resolveConnection(%q): the error repeats the key: %v", st["C"], err)
			}
		}
		if e := escapeSegment(s); strings.ContainsAny(e, "/\\:*?\"<>|") || (s != "" && e == "") || strings.HasPrefix(e, ".") {
			t.Fatalf("escapeSegment(%q) = %q is not one safe file name", s, e)
		}
	})
}

func containsPercent(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			return true
		}
	}
	return false
}
