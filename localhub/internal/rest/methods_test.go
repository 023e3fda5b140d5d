package rest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
)

func TestInvokeMethod(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")

	tests := []struct {
		name   string
		body   string
		reply  func(ctx context.Context, call methodCall) (int, []byte, error)
		golden string
		want   methodCall // Payload/timeouts the device side must get
	}{
		{
			name:   "json reply",
			body:   `{"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":10,"connectTimeoutInSeconds":2}`,
			reply:  replyWith(201, `{"result":"ok"}`),
			golden: "method_ok",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Payload: []byte(`{"delay":5}`), Response: 10 * time.Second, Connect: 2 * time.Second},
		},
		{
			// The Node reboot sample: payload null, legacy timeoutInSeconds
			// (ignored), a JSON string reply. The device gets null, which
			// the Node device SDK's JSON.parse accepts.
			name:   "node reboot sample",
			body:   `{"methodName":"reboot","payload":null,"timeoutInSeconds":99,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`,
			reply:  replyWith(200, `"Reboot started"`),
			golden: "method_node_reboot",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Payload: []byte("null"), Response: 30 * time.Second},
		},
		{
			name:   "empty object payload",
			body:   `{"methodName":"reboot","payload": {} }`,
			reply:  replyWith(200, `{}`),
			golden: "method_empty_object",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Payload: []byte("{}"), Response: 30 * time.Second},
		},
		{
			// No payload member: the device gets an empty body.
			name:   "defaults and empty reply",
			body:   `{"methodName":"ping"}`,
			reply:  replyWith(200, ``),
			golden: "method_empty_reply",
			want:   methodCall{DeviceID: "dev1", Method: "ping", Response: 30 * time.Second},
		},
		{
			// IoT Hub splices the device's bytes in verbatim.
			name:   "non-JSON reply",
			body:   `{"methodName":"ping"}`,
			reply:  replyWith(200, `{'filename': 'logs.zip'}`),
			golden: "method_non_json_reply",
			want:   methodCall{DeviceID: "dev1", Method: "ping", Response: 30 * time.Second},
		},
		{
			name:   "not online",
			body:   `{"methodName":"reboot","connectTimeoutInSeconds":0}`,
			reply:  replyErr(directmethod.ErrDeviceNotOnline),
			golden: "method_not_online",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Response: 30 * time.Second},
		},
		{
			name:   "device too slow",
			body:   `{"methodName":"reboot","responseTimeoutInSeconds":5}`,
			reply:  replyErr(directmethod.ErrTimeout),
			golden: "method_gateway_timeout",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Response: 5 * time.Second},
		},
		{
			name:   "gateway refuses the payload",
			body:   `{"methodName":"reboot"}`,
			reply:  replyErr(directmethod.ErrPayloadTooLarge),
			golden: "method_gateway_payload_too_large",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Response: 30 * time.Second},
		},
		{
			name:   "name MQTT cannot carry",
			body:   `{"methodName":"a+b"}`,
			reply:  replyErr(directmethod.ErrInvalidMethodName),
			golden: "method_gateway_invalid_name",
			want:   methodCall{DeviceID: "dev1", Method: "a+b", Response: 30 * time.Second},
		},
		{
			name:   "too many calls pending for the device",
			body:   `{"methodName":"reboot"}`,
			reply:  replyErr(directmethod.ErrTooManyCalls),
			golden: "method_too_many_calls",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Response: 30 * time.Second},
		},
		{
			name:   "hub shutting down",
			body:   `{"methodName":"reboot"}`,
			reply:  replyErr(directmethod.ErrClosed),
			golden: "method_gateway_closed",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Response: 30 * time.Second},
		},
		{
			name:   "device side failure",
			body:   `{"methodName":"reboot"}`,
			reply:  replyErr(errors.New("broker closed")),
			golden: "method_server_error",
			want:   methodCall{DeviceID: "dev1", Method: "reboot", Response: 30 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.devices.setInvoke(tt.reply)
			resp := h.do(request{method: http.MethodPost, path: "/twins/dev1/methods", body: tt.body})
			golden(t, tt.golden, resp)
			require.Equal(t, tt.want, h.devices.lastCall(t))
		})
	}
}

func replyWith(status int, body string) func(context.Context, methodCall) (int, []byte, error) {
	return func(context.Context, methodCall) (int, []byte, error) { return status, []byte(body), nil }
}

func replyErr(err error) func(context.Context, methodCall) (int, []byte, error) {
	return func(context.Context, methodCall) (int, []byte, error) { return 0, nil, err }
}

func TestInvokeMethodRejectsBadRequests(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	h.devices.setInvoke(replyWith(200, `{}`))

	bigPayload := `{"methodName":"m","payload":"` + strings.Repeat("a", 128<<10) + `"}`
	tests := []struct {
		name, path, body string
		golden           string
	}{
		{"missing methodName", "/twins/dev1/methods", `{"payload":{}}`, "method_name_missing"},
		{"invalid methodName", "/twins/dev1/methods", `{"methodName":"re boot"}`, "method_name_invalid"},
		{"response timeout too short", "/twins/dev1/methods", `{"methodName":"m","responseTimeoutInSeconds":4}`, "method_response_timeout_range"},
		{"response timeout too long", "/twins/dev1/methods", `{"methodName":"m","responseTimeoutInSeconds":301}`, "method_response_timeout_range"},
		{"connect timeout too long", "/twins/dev1/methods", `{"methodName":"m","connectTimeoutInSeconds":301}`, "method_connect_timeout_range"},
		{"payload too large", "/twins/dev1/methods", bigPayload, "method_payload_too_large"},
		{"not json", "/twins/dev1/methods", `{"methodName":`, "method_bad_json"},
		{"unknown device", "/twins/ghost/methods", `{"methodName":"m"}`, "method_device_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.golden, h.do(request{method: http.MethodPost, path: tt.path, body: tt.body}))
		})
	}
	h.devices.mu.Lock()
	defer h.devices.mu.Unlock()
	require.Empty(t, h.devices.calls, "invalid requests never reach the device")
}

func TestInvokeMethodBodyCap(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")
	resp := h.do(request{method: http.MethodPost, path: "/twins/dev1/methods",
		body: `{"methodName":"m","payload":"` + strings.Repeat("a", 300<<10) + `"}`})
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.status)
	require.Equal(t, "MessageTooLarge", resp.header.Get("iothub-errorcode"))
}

// The device call lives as long as the request: it ends when the client
// goes away, not before.
func TestInvokeMethodEndsWhenClientGoesAway(t *testing.T) {
	h := newTestHub(t)
	h.createDevice("dev1")

	started := make(chan struct{})
	ended := make(chan error, 1)
	h.devices.setInvoke(func(ctx context.Context, _ methodCall) (int, []byte, error) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return 0, nil, ctx.Err()
	})

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	path := h.srv.URL + "/twins/dev1/methods?api-version=2021-04-12"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, path, strings.NewReader(`{"methodName":"slow"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", h.policyToken("service"))
	resp, err := h.srv.Client().Do(req)
	if err == nil {
		// The transport can lose the race with its own cancellation and hand
		// back what the server wrote after the call ended; that is no
		// answer from the device either way.
		resp.Body.Close()
	}
	require.ErrorIs(t, <-ended, context.Canceled, "the device call ends with the request")
}

// The device check reads the registry's in-memory view: a delete is seen
// by the next call, and a device created again is found again.
func TestInvokeMethodSeesDeletesAtOnce(t *testing.T) {
	h := newTestHub(t)
	call := func() response {
		return h.do(request{method: http.MethodPost, path: "/twins/dev1/methods", body: `{"methodName":"m"}`})
	}
	h.createDevice("dev1")
	require.Equal(t, http.StatusOK, call().status)
	require.Equal(t, http.StatusNoContent, h.do(request{method: http.MethodDelete, path: "/devices/dev1"}).status)
	golden(t, "method_device_not_found_dev1", call())
	h.createDevice("dev1")
	require.Equal(t, http.StatusOK, call().status)
}
