package handlers_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// listen binds a loopback listener for the handler, as the host binds
// nothing but picks a port: the test keeps the socket, so no other process
// can take the port between picking and serving.
func listen(t testing.TB) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	cs, err := hub.ServiceConnectionString("serviceAndRegistryRead")
	require.NoError(t, err)
	ln, port := listen(t)
	env := map[string]string{
		"FUNCTIONS_CUSTOMHANDLER_PORT": port,
		"IOTHUB_CONNECTION_STRING":     cs,
		"IOTHUB_ENDPOINT":              hub.HTTPSURL(),
		"IOTHUB_CA_FILE":               hub.CAFile(),
	}
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- handlers.RunOn(ctx, ln, func(k string) string { return env[k] }, stdout, stderr) }()

	// The listener is bound, so the host's readiness probe (GET /) waits
	// in the accept queue until the handler serves: no polling needed.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "ok\n", string(body))

	// The CA file and endpoint are used: a twin read reaches the local hub.
	_, err = hub.CreateDevice("run-1")
	require.NoError(t, err)
	resp, err = client.Get("http://127.0.0.1:" + port + "/api/reboots/run-1/r1?requestedAt=" + time.Now().UTC().Format(time.RFC3339))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	require.Contains(t, stdout.String(), "handler listening")
	require.Contains(t, stdout.String(), `iothubAuth="shared access policy (IOTHUB_CONNECTION_STRING)"`)
	require.NotContains(t, stdout.String()+stderr.String(), cs, "the connection string must never be logged")
	require.Empty(t, stderr.String(), "stderr is logged as errors by the host")
}

func TestRunRefusesToStartWithoutHubAccess(t *testing.T) {
	err := handlers.Run(t.Context(), func(k string) string {
		if k == "FUNCTIONS_CUSTOMHANDLER_PORT" {
			return "0"
		}
		return ""
	}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "no IoT Hub access configured: set IOTHUB_CONNECTION_STRING")
	require.ErrorContains(t, err, "or IOTHUB_HOSTNAME")
}
