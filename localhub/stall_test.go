package localhub_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// promptly is how long a service operation may take while a device that
// stopped reading is connected: half the smallest response timeout, so an
// operation that waited on any call to that device fails. Unloaded it takes
// milliseconds; the margin is for -race on a busy 2-core machine, where the
// 60 concurrent 120 KB calls of this test alone took a PATCH past 1 s.
const promptly = 2500 * time.Millisecond

// TestStalledDeviceDoesNotBlockTheService is the scenario of issue 8: a
// device subscribes to desired properties and methods, then stops reading
// its socket. 60 direct methods with 120 KB payloads (responseTimeout 5 s,
// at 100 calls/s) fill its socket; meanwhile and afterwards PATCHes of its
// twin, a PATCH of another device and its DELETE answer at once, and every
// call ends within its own timeout.
func TestStalledDeviceDoesNotBlockTheService(t *testing.T) {
	hub := localhubtest.New(t, nil)
	svc := newService(t, hub)
	stuckKey := createDevice(t, hub, "stuck")
	createDevice(t, hub, "other")
	dialStalled(t, hub, "stuck", stuckKey)

	const responseTimeout = 5 * time.Second // the smallest the API takes
	call := fmt.Sprintf(`{"methodName":"m","responseTimeoutInSeconds":5,"payload":"%s"}`, strings.Repeat("x", 120*1024))
	type outcome struct {
		status int
		body   string
		took   time.Duration
	}
	calls := make(chan outcome, 60)
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for i := range 60 {
		<-pace.C
		go func() {
			status, body, took := svc.do(http.MethodPost, "/twins/stuck/methods", call)
			calls <- outcome{status, body, took}
		}()
		if i%10 == 9 {
			status, body, took := svc.do(http.MethodPatch, "/twins/stuck", fmt.Sprintf(`{"properties":{"desired":{"n":%d}}}`, i))
			require.Equal(t, http.StatusOK, status, "%s", body)
			require.Less(t, took, promptly, "PATCH of the stalled device's twin after %d calls", i+1)
		}
	}
	status, body, took := svc.do(http.MethodPatch, "/twins/other", `{"properties":{"desired":{"y":1}}}`)
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Less(t, took, promptly, "PATCH of another device's twin")
	status, body, took = svc.do(http.MethodDelete, "/devices/stuck", ``)
	require.Equal(t, http.StatusNoContent, status, "%s", body)
	require.Less(t, took, promptly, "DELETE of the stalled device")

	for range 60 {
		c := <-calls
		// 504101 if the request was written, 404103 if the device was
		// dropped for not reading (or deleted) before it could be.
		require.Contains(t, []int{http.StatusGatewayTimeout, http.StatusNotFound}, c.status, "%s", c.body)
		require.Less(t, c.took, responseTimeout+promptly, "a call outlived its response timeout")
	}
}

// service calls the hub's REST API as iothubowner.
type service struct {
	hub    *localhub.Hub
	token  string
	client *http.Client
}

func newService(t *testing.T, hub *localhub.Hub) *service {
	t.Helper()
	cs, err := hub.ServiceConnectionString("iothubowner")
	require.NoError(t, err)
	tok, err := sas.New(hub.Hostname(), "iothubowner", connectionStringKey(t, cs), time.Now().Add(time.Hour))
	require.NoError(t, err)
	client := hub.HTTPClient()
	// Bounds what a blocked hub could make a test wait.
	client.Timeout = 10 * time.Second
	return &service{hub: hub, token: tok, client: client}
}

func (s *service) do(method, path, body string) (status int, respBody string, took time.Duration) {
	req, err := http.NewRequestWithContext(context.Background(), method, s.hub.HTTPSURL()+path+"?api-version=2021-04-12", strings.NewReader(body))
	if err != nil {
		return 0, err.Error(), 0
	}
	req.Header.Set("Authorization", s.token)
	req.Header.Set("Content-Type", "application/json")
	if method == http.MethodDelete {
		req.Header.Set("If-Match", "*")
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err.Error(), time.Since(start)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}

func connectionStringKey(t *testing.T, cs string) string {
	t.Helper()
	_, key, ok := strings.Cut(cs, "SharedAccessKey=")
	require.True(t, ok, "no key in %q", cs)
	return key
}

func createDevice(t *testing.T, hub *localhub.Hub, id string) (key string) {
	t.Helper()
	cs, err := hub.CreateDevice(id)
	require.NoError(t, err)
	return connectionStringKey(t, cs)
}

// dialStalled connects a device over raw MQTT/TLS with a tiny receive
// buffer and keep-alive 0, subscribes it to direct methods and desired
// properties, and never reads again.
func dialStalled(t *testing.T, hub *localhub.Hub, deviceID, key string) {
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
	cfg := hub.TLSConfig()
	cfg.ServerName = hub.Hostname()
	conn, err := tls.DialWithDialer(&d, "tcp", hub.MQTTAddr(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))

	tok, err := sas.New(hub.Hostname()+"/devices/"+deviceID, "", key, time.Now().Add(time.Hour))
	require.NoError(t, err)
	body := field(nil, "MQTT")
	body = append(body, 4, 0x80|0x40|0x02, 0, 0) // username, password, clean session; keep-alive 0
	for _, s := range []string{deviceID, hub.Hostname() + "/" + deviceID + "/?api-version=2021-04-12", tok} {
		body = field(body, s)
	}
	_, err = conn.Write(packet(0x10, body))
	require.NoError(t, err)
	connack := make([]byte, 4)
	_, err = io.ReadFull(conn, connack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, connack)

	sub := []byte{0, 1}
	for _, f := range []string{"$iothub/methods/POST/#", "$iothub/twin/PATCH/properties/desired/#"} {
		sub = append(field(sub, f), 0)
	}
	_, err = conn.Write(packet(0x82, sub))
	require.NoError(t, err)
	suback := make([]byte, 6)
	_, err = io.ReadFull(conn, suback)
	require.NoError(t, err)
	require.Equal(t, []byte{0x90, 4, 0, 1, 0, 0}, suback)
}

func field(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func packet(header byte, body []byte) []byte {
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
