package hubtest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var localhubBin string

func TestMain(m *testing.M) { os.Exit(Main(m, &localhubBin)) }

// TestRestartKeepsPortsAndState: the hub's sockets outlive its process, so
// a restarted hub serves the same addresses, and a connection made while
// no hub runs waits in the socket's backlog for the next one instead of
// being refused or reaching another process.
func TestRestartKeepsPortsAndState(t *testing.T) {
	h := Start(t, localhubBin)
	ctx := t.Context()
	_, err := h.Service().EnsureDevice(ctx, "kept")
	require.NoError(t, err)
	before := h.Banner

	h.Stop(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(before.HTTPSURL, "https://"))
	require.NoError(t, err, "the port is still held while no hub runs")
	defer conn.Close()
	h.start(t)

	require.Equal(t, before.HTTPSURL, h.HTTPSURL)
	require.Equal(t, before.MQTTAddr, h.MQTTAddr)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(h.CAPEM(t)))
	tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	require.NoError(t, tc.SetDeadline(time.Now().Add(time.Minute)))
	require.NoError(t, tc.HandshakeContext(ctx), "the new hub accepts the connection made before it started")

	b, err := h.Service().Do(ctx, http.MethodGet, "/twins/kept", nil)
	require.NoError(t, err)
	require.Contains(t, string(b), `"deviceId":"kept"`, "the data directory is kept too")
}
