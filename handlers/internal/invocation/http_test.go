package invocation

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// hostHTTPRequest is the example of functions-custom-handler.md §2.1.
const hostHTTPRequest = `{
  "Data": {
    "req": {
      "Url": "http://localhost:7071/api/devices/dev-42/reboot?force=true",
      "Method": "POST",
      "Query": { "force": "true" },
      "Headers": {
        "Content-Type": [ "application/json" ],
        "Content-Length": [ "11" ],
        "Host": [ "localhost:7071" ]
      },
      "Params": { "deviceId": "dev-42" },
      "Identities": [
        { "AuthenticationType": null, "IsAuthenticated": false, "Actor": null, "BootstrapContext": null,
          "Claims": [], "Label": null, "Name": null,
          "NameClaimType": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
          "RoleClaimType": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role" }
      ],
      "Body": "{\"delay\":5}"
    }
  },
  "Metadata": {
    "deviceId": "\"dev-42\"",
    "force": "\"true\"",
    "Query": { "force": "true" },
    "Headers": { "Content-Type": "application/json", "Content-Length": "11", "Host": "localhost:7071" },
    "sys": { "MethodName": "RebootDevice", "UtcNow": "2025-01-01T12:00:00.1234567Z", "RandGuid": "x" }
  }
}`

func TestDecodeHTTPRequest(t *testing.T) {
	got, err := DecodeHTTPRequest([]byte(hostHTTPRequest), "req")
	require.NoError(t, err)
	require.Equal(t, HTTPRequest{
		URL:    "http://localhost:7071/api/devices/dev-42/reboot?force=true",
		Method: "POST",
		Query:  map[string]string{"force": "true"},
		Headers: map[string][]string{
			"Content-Type":   {"application/json"},
			"Content-Length": {"11"},
			"Host":           {"localhost:7071"},
		},
		Params: map[string]string{"deviceId": "dev-42"},
		Body:   []byte(`{"delay":5}`),
	}, got)
}

func TestDecodeHTTPRequestBodies(t *testing.T) {
	tests := []struct {
		name     string
		req      string
		wantBody []byte
		wantErr  bool
	}{
		{"no body (Content-Length 0)", `{"Url":"http://h/","Method":"GET"}`, nil, false},
		{"null body", `{"Url":"http://h/","Body":null}`, nil, false},
		{"octet-stream is base64", `{"Url":"http://h/","Headers":{"content-type":["application/octet-stream"]},"Body":"AAEC"}`, []byte{0, 1, 2}, false},
		{"bad base64", `{"Url":"http://h/","Headers":{"Content-Type":["multipart/form-data; boundary=x"]},"Body":"!!"}`, nil, true},
		{"object body kept as JSON", `{"Url":"http://h/","Body":{"a":1}}`, []byte(`{"a":1}`), false},
		{"single-string header", `{"Url":"http://h/","Headers":{"Content-Type":"text/plain"},"Body":"hi"}`, []byte("hi"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeHTTPRequest([]byte(`{"Data":{"req":`+tt.req+`}}`), "req")
			if tt.wantErr {
				require.ErrorIs(t, err, ErrMalformed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantBody, got.Body)
		})
	}
}

func TestResponseShape(t *testing.T) {
	r := NewResponse()
	r.Outputs["res"] = HTTPResponse{StatusCode: 202, Headers: map[string]string{"Location": "x"}, Body: "{}"}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.JSONEq(t, `{"Outputs":{"res":{"statusCode":202,"headers":{"Location":"x"},"body":"{}"}},"Logs":[],"ReturnValue":null}`, string(b))
}
