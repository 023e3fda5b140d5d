package mqttgw

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
)

// promptly is how long an operation that must not wait for a stalled
// device may take.
const promptly = time.Second

// mqttPacket frames an MQTT packet: fixed header byte, remaining length,
// body.
func mqttPacket(header byte, body []byte) []byte {
	pk := []byte{header}
	for n := len(body); ; {
		b := byte(n % 128)
		if n /= 128; n > 0 {
			b |= 0x80
		}
		pk = append(pk, b)
		if n == 0 {
			break
		}
	}
	return append(pk, body...)
}

func mqttField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// dialStalled connects deviceID over raw TLS with a tiny receive buffer
// and keep-alive 0 (so mochi sets no read deadline), subscribes to
// filters, and then never reads again: a device whose application hung.
func (h *testHub) dialStalled(t *testing.T, deviceID, key string, filters ...string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := tls.DialWithDialer(&d, "tcp", h.addr, h.tls)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitLimit)))

	body := mqttField(nil, "MQTT")
	body = append(body, 4, 0x80|0x40|0x02, 0, 0) // username, password, clean; keep-alive 0
	for _, s := range []string{deviceID, testHost + "/" + deviceID + "/" + goAPIVersion, goToken(t, key)} {
		body = mqttField(body, s)
	}
	_, err = conn.Write(mqttPacket(0x10, body))
	require.NoError(t, err)
	connack := make([]byte, 4)
	_, err = io.ReadFull(conn, connack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, connack)
	if len(filters) == 0 {
		return conn
	}

	sub := []byte{0, 1}
	for _, f := range filters {
		sub = append(mqttField(sub, f), 0)
	}
	_, err = conn.Write(mqttPacket(0x82, sub))
	require.NoError(t, err)
	suback := make([]byte, 4+len(filters))
	_, err = io.ReadFull(conn, suback)
	require.NoError(t, err)
	require.Equal(t, byte(0x90), suback[0])
	return conn
}

// session returns the device's live session; the test fails without one.
func (h *testHub) session(t *testing.T, deviceID string) *session {
	t.Helper()
	s := h.gw.liveSession(deviceID)
	require.NotNil(t, s, "%s has no live session", deviceID)
	return s
}

// TestStalledDeviceStallsNothingElse hammers a device that stopped reading
// with maximum-size method calls and desired notifications. Its own calls
// end on their own clock, the hub's queue for it and its calls in progress
// stay within their bounds, it gets disconnected, and neither another
// device nor a DisconnectDevice waits for it.
func TestStalledDeviceStallsNothingElse(t *testing.T) {
	h := newTestHub(t)
	stuckKey := h.createDevice(t, "stuck").Authentication.SymmetricKey.PrimaryKey
	h.dialStalled(t, "stuck", stuckKey, methodsFilter, desiredFilter)
	stuck := h.session(t, "stuck")
	otherKey := h.createDevice(t, "other").Authentication.SymmetricKey.PrimaryKey
	other := h.connect(t, "other", otherKey)
	otherDesired := other.subscribe(t, desiredFilter, 0)
	other.answerMethods(t, 200)

	// The queue and the calls in progress are sampled all along.
	var maxPackets, maxBytes, maxCalls int
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			p, b := stuck.out.size()
			maxPackets, maxBytes = max(maxPackets, p), max(maxBytes, b)
			maxCalls = max(maxCalls, h.gw.callsInProgress("stuck"))
			select {
			case <-stopSampling:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()

	const responseTimeout = time.Second
	payload := make([]byte, directmethod.MaxPayload)
	for i := range payload {
		payload[i] = 'x'
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			start := time.Now()
			_, _, err := h.gw.InvokeMethod(context.Background(), "stuck", "m", payload, responseTimeout, 0)
			if took := time.Since(start); took > responseTimeout+promptly {
				err = errors.Join(err, errors.New("call outlived its response timeout: "+took.String()))
			}
			errs <- err
		})
		// Desired notifications queue behind the calls; each returns at once.
		start := time.Now()
		h.gw.SendDesired("stuck", 2, []byte(`{"x":1,"$version":2}`))
		require.Less(t, time.Since(start), promptly, "SendDesired waited for the stalled device")
	}

	// Another device is served meanwhile.
	start := time.Now()
	h.gw.SendDesired("other", 2, []byte(`{"y":1,"$version":2}`))
	receive(t, otherDesired)
	status, _, err := h.gw.InvokeMethod(t.Context(), "other", "m", []byte(`{}`), waitLimit, 0)
	require.NoError(t, err)
	require.Equal(t, 200, status)
	require.Less(t, time.Since(start), promptly, "another device waited for the stalled one")

	wg.Wait()
	close(errs)
	for err := range errs {
		// Calls whose request was written time out; the rest end as the
		// device is dropped for not reading.
		if !errors.Is(err, directmethod.ErrTimeout) && !errors.Is(err, directmethod.ErrDeviceNotOnline) && !errors.Is(err, directmethod.ErrTooManyCalls) {
			t.Errorf("call ended with %v", err)
		}
	}
	close(stopSampling)
	<-sampled
	require.LessOrEqual(t, maxPackets, maxQueuedPackets, "packets queued")
	require.LessOrEqual(t, maxBytes, maxQueuedBytes+directmethod.MaxPayload, "bytes queued")
	require.LessOrEqual(t, maxCalls, maxCallsPerDevice, "calls in progress")
	require.False(t, h.gw.Connected("stuck"), "the device that does not read was disconnected")
	require.Zero(t, h.gw.calls.len(), "no call left pending")
}

// TestDisconnectStalledDeviceIsPrompt: deleting or disabling a device whose
// connection is stuck mid-write closes it at once.
func TestDisconnectStalledDeviceIsPrompt(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "stuck").Authentication.SymmetricKey.PrimaryKey
	h.dialStalled(t, "stuck", key, desiredFilter)
	s := h.session(t, "stuck")
	h.fillUntilWriteBlocks(t, s)

	start := time.Now()
	h.gw.DisconnectDevice("stuck")
	require.Less(t, time.Since(start), promptly)
	require.Eventually(t, func() bool { return !h.gw.Connected("stuck") }, promptly, 5*time.Millisecond)
}

// bigPatch is a desired notification of 256 KB, so that few fill the
// socket buffers.
func bigPatch() []byte {
	patch := make([]byte, 256*1024)
	for i := range patch {
		patch[i] = ' '
	}
	copy(patch, `{"x":1,"$version":2}`)
	return patch
}

// fillUntilWriteBlocks queues desired notifications for s until its writer
// is stuck in a write: two packets or more queued (one being written) and
// no progress for 200 ms.
func (h *testHub) fillUntilWriteBlocks(t *testing.T, s *session) {
	t.Helper()
	patch := bigPatch()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		require.NoError(t, h.gw.send(s, outPacket{topic: desiredTopic(2), payload: patch}))
		// A write that does not return is not an event; watch the queue.
		if p, b := s.out.size(); p >= 2 {
			time.Sleep(200 * time.Millisecond)
			if p2, b2 := s.out.size(); p2 == p && b2 == b {
				return
			}
		}
	}
	t.Fatal("the writer never blocked")
}

// TestReconnectTakesOverStalledConnectionPromptly: a device whose old
// connection went dead mid-write reconnects without waiting for that
// write to time out.
func TestReconnectTakesOverStalledConnectionPromptly(t *testing.T) {
	h := newTestHub(t) // default write timeout: 30 s
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	h.dialStalled(t, "d1", key, desiredFilter)
	h.fillUntilWriteBlocks(t, h.session(t, "d1"))

	start := time.Now()
	d := h.connect(t, "d1", key)
	require.Less(t, time.Since(start), promptly, "CONNACK waited for the old connection")
	desired := d.subscribe(t, desiredFilter, 0)
	h.gw.SendDesired("d1", 3, []byte(`{"$version":3}`))
	require.JSONEq(t, `{"$version":3}`, string(receive(t, desired).Payload()))
}

// TestWriteTimeoutDisconnects: a write the device does not take within the
// write timeout ends its connection, while the queue is far from full.
func TestWriteTimeoutDisconnects(t *testing.T) {
	h := newTestHubWith(t, Config{WriteTimeout: 200 * time.Millisecond})
	key := h.createDevice(t, "stuck").Authentication.SymmetricKey.PrimaryKey
	h.dialStalled(t, "stuck", key, desiredFilter)
	s := h.session(t, "stuck")
	patch := bigPatch()
	// Keep the writer busy with at most two packets until the socket
	// buffers fill and a write times out.
	require.Eventually(t, func() bool {
		if s.client.Closed() {
			return true
		}
		if p, _ := s.out.size(); p < 2 {
			_ = h.gw.send(s, outPacket{topic: desiredTopic(2), payload: patch})
		}
		return false
	}, waitLimit, time.Millisecond)
	require.ErrorIs(t, s.client.StopCause(), os.ErrDeadlineExceeded)
	require.Eventually(t, func() bool { return !h.gw.Connected("stuck") }, waitLimit, 5*time.Millisecond)
}

// TestMethodTimesOutWhileWriteIsStuck: a call whose request cannot even be
// written ends with ErrTimeout at its response timeout, not when the
// write gives up.
func TestMethodTimesOutWhileWriteIsStuck(t *testing.T) {
	h := newTestHub(t) // default write timeout: 30 s
	key := h.createDevice(t, "stuck").Authentication.SymmetricKey.PrimaryKey
	h.dialStalled(t, "stuck", key, methodsFilter, desiredFilter)
	h.fillUntilWriteBlocks(t, h.session(t, "stuck"))

	const responseTimeout = time.Second
	start := time.Now()
	_, _, err := h.gw.InvokeMethod(t.Context(), "stuck", "m", []byte(`{}`), responseTimeout, 0)
	took := time.Since(start)
	require.ErrorIs(t, err, directmethod.ErrTimeout)
	require.GreaterOrEqual(t, took, responseTimeout)
	require.Less(t, took, responseTimeout+promptly)
	require.Zero(t, h.gw.calls.len(), "no call left pending")
}

// TestUnacknowledgedQoS1IsBounded: a device that reads but never
// acknowledges QoS 1 notifications is disconnected once maxInflight of them
// wait, instead of mochi keeping every one for a resend.
func TestUnacknowledgedQoS1IsBounded(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	conn := h.dialStalled(t, "d1", key)
	// Subscribe at QoS 1, then read everything and acknowledge nothing.
	_, err := conn.Write(mqttPacket(0x82, append(mqttField([]byte{0, 2}, desiredFilter), 1)))
	require.NoError(t, err)
	suback := make([]byte, 5)
	_, err = io.ReadFull(conn, suback)
	require.NoError(t, err)
	require.Equal(t, []byte{0x90, 3, 0, 2, 1}, suback)
	go func() { _, _ = io.Copy(io.Discard, conn) }()

	s := h.session(t, "d1")
	for i := range maxInflight + 1 {
		h.gw.SendDesired("d1", int64(i+2), []byte(`{}`))
	}
	require.Eventually(t, func() bool { return !h.gw.Connected("d1") }, waitLimit, 5*time.Millisecond)
	require.ErrorIs(t, s.client.StopCause(), errInflightFull)
	require.LessOrEqual(t, s.client.State.Inflight.Len(), maxInflight)
}
