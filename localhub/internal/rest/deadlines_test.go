package rest_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/rest"
)

// rawHub serves the API through rest.NewHTTPServer with short timeouts, on
// a TLS listener bound before the server starts, for tests that speak raw
// HTTP/1.1 on one connection.
type rawHub struct {
	*testHub
	addr string
	tls  *tls.Config
}

func newRawHub(t *testing.T, timeouts rest.Timeouts) *rawHub {
	t.Helper()
	h := newTestHub(t)
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = rest.NewHTTPServer(rest.Deps{
		Hostname: hubHost,
		Registry: h.reg,
		Devices:  h.devices,
		Logger:   slog.New(slog.DiscardHandler),
		Now:      h.now,
	}, timeouts)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return &rawHub{testHub: h, addr: srv.Listener.Addr().String(), tls: cfg}
}

// dial opens a TLS connection that fails the test rather than hang.
func (h *rawHub) dial(t *testing.T) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := tls.Dial("tcp", h.addr, h.tls)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	return conn, bufio.NewReader(conn)
}

// requireClosedByServer reads until the server closes the connection. A
// read deadline passing instead means the server kept it open.
func requireClosedByServer(t *testing.T, br *bufio.Reader) {
	t.Helper()
	_, err := io.Copy(io.Discard, br)
	require.NoError(t, err, "want the server to close the connection") // io.Copy reports EOF as nil
}

// readResponse reads one response; its body is returned apart.
func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	return resp, string(body)
}

// An idle keep-alive connection is closed, whether its last request was
// served or refused.
func TestIdleConnectionsAreClosed(t *testing.T) {
	h := newRawHub(t, rest.Timeouts{Idle: 100 * time.Millisecond})
	for _, tt := range []struct{ name, auth string }{
		{"after a served request", "Authorization: " + h.policyToken("iothubowner") + "\r\n"},
		{"after a 401", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, br := h.dial(t)
			fmt.Fprintf(conn, "GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: %s\r\n%s\r\n", hubHost, tt.auth)
			resp, _ := readResponse(t, br)
			require.NotEqual(t, "close", resp.Header.Get("Connection"), "the connection is kept alive")
			requireClosedByServer(t, br)
		})
	}
}

// A body that never finishes is cut: the request fails with IoT Hub's
// envelope and the connection is closed, whether or not the caller was
// authenticated (an unread body is drained before the connection is reused).
func TestBodiesThatNeverFinishAreCut(t *testing.T) {
	h := newRawHub(t, rest.Timeouts{Header: 100 * time.Millisecond, Body: 100 * time.Millisecond, Idle: time.Minute})
	for _, tt := range []struct {
		name, auth string
		status     int
		code       string
	}{
		{"authenticated", "Authorization: " + h.policyToken("iothubowner") + "\r\n", http.StatusBadRequest, "IotHubFormatError"},
		{"unauthenticated", "", http.StatusUnauthorized, "IotHubUnauthorizedAccess"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, br := h.dial(t)
			fmt.Fprintf(conn, "PUT /devices/d1?api-version=2021-04-12 HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"deviceId\":", hubHost, tt.auth)
			resp, _ := readResponse(t, br)
			require.Equal(t, tt.status, resp.StatusCode)
			require.Equal(t, tt.code, resp.Header.Get("iothub-errorcode"))
			requireClosedByServer(t, br)
		})
	}
	_, err := h.reg.GetDevice("d1")
	require.Error(t, err, "nothing was created from a partial body")
}

// Once its body is in, a direct method outlives the body deadline and the
// response deadline of other routes: it waits for its device far longer.
// (net/http cancels a request whose connection read deadline passes while
// its handler runs.)
func TestDirectMethodOutlivesBodyAndResponseDeadlines(t *testing.T) {
	h := newRawHub(t, rest.Timeouts{Header: 50 * time.Millisecond, Body: 50 * time.Millisecond, Write: 50 * time.Millisecond})
	h.createDevice("d1")
	const deviceTakes = 300 * time.Millisecond // the device's own time to answer
	h.devices.setInvoke(func(ctx context.Context, _ methodCall) (int, []byte, error) {
		select {
		case <-time.After(deviceTakes):
			return 200, []byte(`{"ok":true}`), nil
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		}
	})
	conn, br := h.dial(t)
	body := `{"methodName":"reboot","responseTimeoutInSeconds":30}`
	fmt.Fprintf(conn, "POST /twins/d1/methods?api-version=2021-04-12 HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", hubHost, h.policyToken("iothubowner"), len(body), body)
	resp, got := readResponse(t, br)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"status":200,"payload":{"ok":true}}`, got, "the device's answer, not a cancelled call")
}
