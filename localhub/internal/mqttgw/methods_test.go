package mqttgw

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
)

func TestInvokeMethodRoundTrip(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	reqs := d.answerMethods(t, 201)

	tests := []struct {
		name    string
		payload []byte
	}{
		{"json payload", []byte(`{"delay":5}`)},
		{"nil payload is an empty body", nil},
		{"empty payload is an empty body", []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, err := h.gw.InvokeMethod(t.Context(), "d1", "reboot", tt.payload, waitLimit, 0)
			require.NoError(t, err)
			require.Equal(t, 201, status)
			require.Equal(t, string(tt.payload), string(body))

			req := receive(t, reqs)
			method, rid, err := parseMethodRequest(req.Topic())
			require.NoError(t, err)
			require.Equal(t, "reboot", method)
			require.Regexp(t, `^[0-9]+$`, rid, "request ids must parse with strconv.Atoi")
			require.Equal(t, byte(0), req.Qos())
			require.Equal(t, len(tt.payload), len(req.Payload()))
		})
	}
}

func TestInvokeMethodNotOnline(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey

	_, _, err := h.gw.InvokeMethod(t.Context(), "d1", "reboot", nil, time.Second, 0)
	require.ErrorIs(t, err, directmethod.ErrDeviceNotOnline, "not connected")

	h.connect(t, "d1", key)
	_, _, err = h.gw.InvokeMethod(t.Context(), "d1", "reboot", nil, time.Second, 0)
	require.ErrorIs(t, err, directmethod.ErrDeviceNotOnline, "connected but not subscribed to methods")

	_, _, err = h.gw.InvokeMethod(t.Context(), "d1", "reboot", nil, time.Second, 50*time.Millisecond)
	require.ErrorIs(t, err, directmethod.ErrDeviceNotOnline, "connect timeout passes without a subscription")
}

func TestInvokeMethodWaitsForConnection(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey

	results := h.invokeAsync("d1", "reboot", []byte(`{}`), waitLimit, waitLimit)
	d := h.connect(t, "d1", key)
	d.answerMethods(t, 200)

	r := awaitResult(t, results)
	require.NoError(t, r.err)
	require.Equal(t, 200, r.status)
	require.Equal(t, `{}`, string(r.body))
}

func TestInvokeMethodResponseTimeout(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	reqs := d.subscribe(t, methodsFilter, 0) // receives, never answers

	_, _, err := h.gw.InvokeMethod(t.Context(), "d1", "reboot", nil, 100*time.Millisecond, 0)
	require.ErrorIs(t, err, directmethod.ErrTimeout)
	receive(t, reqs)
}

func TestInvokeMethodContextCanceled(t *testing.T) {
	h := newTestHub(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err := h.gw.InvokeMethod(ctx, "nobody", "reboot", nil, time.Second, time.Minute)
	require.ErrorIs(t, err, context.Canceled)
}

func TestInvokeMethodRejectsBadRequests(t *testing.T) {
	h := newTestHub(t)
	_, _, err := h.gw.InvokeMethod(t.Context(), "d1", "reboot", make([]byte, directmethod.MaxPayload+1), time.Second, 0)
	require.ErrorIs(t, err, directmethod.ErrPayloadTooLarge)
	for _, name := range []string{"", "a/b", "a#", "a+", "a?b", "a b"} {
		_, _, err := h.gw.InvokeMethod(t.Context(), "d1", name, nil, time.Second, 0)
		require.ErrorIs(t, err, directmethod.ErrInvalidMethodName, "method %q", name)
	}
}

func TestInvokeMethodIgnoresOtherDevicesReplies(t *testing.T) {
	h := newTestHub(t)
	key1 := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	key2 := h.createDevice(t, "d2").Authentication.SymmetricKey.PrimaryKey
	d1 := h.connect(t, "d1", key1)
	d2 := h.connect(t, "d2", key2)
	reqs := d1.subscribe(t, methodsFilter, 0)

	results := h.invokeAsync("d1", "reboot", nil, waitLimit, 0)
	req := receive(t, reqs)
	_, rid, err := parseMethodRequest(req.Topic())
	require.NoError(t, err)

	// d2 answers d1's call, and d1 answers an unknown call: both ignored.
	wait(t, d2.Publish(Topic{Kind: TopicMethodResponse, Status: 500, RID: rid}.String(), 1, false, `"spoofed"`))
	wait(t, d1.Publish(Topic{Kind: TopicMethodResponse, Status: 500, RID: "999999"}.String(), 1, false, `"stray"`))
	wait(t, d1.Publish(Topic{Kind: TopicMethodResponse, Status: 200, RID: rid}.String(), 1, false, `"real"`))

	r := awaitResult(t, results)
	require.NoError(t, r.err)
	require.Equal(t, 200, r.status)
	require.Equal(t, `"real"`, string(r.body))
}

func TestInvokeMethodKeepsWaitingAcrossReconnect(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	reqs := d.subscribe(t, methodsFilter, 0)

	results := h.invokeAsync("d1", "reboot", nil, waitLimit, 0)
	_, rid, err := parseMethodRequest(receive(t, reqs).Topic())
	require.NoError(t, err)
	d.Disconnect(0)

	// The reply arrives on a new connection, as after a reboot.
	d = h.connect(t, "d1", key)
	wait(t, d.Publish(Topic{Kind: TopicMethodResponse, Status: 200, RID: rid}.String(), 1, false, `{}`))
	r := awaitResult(t, results)
	require.NoError(t, r.err)
	require.Equal(t, 200, r.status)
}

func TestInvokeMethodConcurrentCalls(t *testing.T) {
	h := newTestHub(t)
	const devices, calls = 3, 50
	for i := range devices {
		id := fmt.Sprintf("d%d", i)
		d := h.connect(t, id, h.createDevice(t, id).Authentication.SymmetricKey.PrimaryKey)
		d.answerMethods(t, 200)
	}

	var wg sync.WaitGroup
	errs := make(chan error, devices*calls)
	for i := range devices {
		for j := range calls {
			wg.Go(func() {
				id := fmt.Sprintf("d%d", i)
				want := fmt.Sprintf(`{"device":%q,"call":%d}`, id, j)
				status, body, err := h.gw.InvokeMethod(context.Background(), id, "echo", []byte(want), waitLimit, 0)
				switch {
				case err != nil:
					errs <- err
				case status != 200 || string(body) != want:
					errs <- fmt.Errorf("call %s/%d = %d %s, want 200 %s", id, j, status, body, want)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestInvokeMethodReturnsOnClose(t *testing.T) {
	h := newTestHub(t)
	results := h.invokeAsync("d1", "reboot", nil, waitLimit, time.Minute)
	// The call is waiting for d1 to connect, or has not started yet: either
	// way it must end with directmethod.ErrClosed rather than wait out its timeouts.
	require.NoError(t, h.gw.Close())
	r := awaitResult(t, results)
	require.ErrorIs(t, r.err, directmethod.ErrClosed)
}
