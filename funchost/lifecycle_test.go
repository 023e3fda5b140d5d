package funchost

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// TestCloseStopsInOrder: Close lets an HTTP request in flight finish
// (it needs the handler), stops the Event Hubs listeners, then the
// handler, and only then says the host stopped.
func TestCloseStopsInOrder(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, map[string]string{"Events": ehFunction("many", ""), "Echo": echoFunction})
	hub := newEHHub(t, &localhub.Options{Partitions: 2})
	logs := newLogRecorder(t)
	h, err := Start(t.Context(), app.options(t, Options{Settings: ehSettings(t, hub.Hub), Logger: logs.logger()}))
	require.NoError(t, err)
	hub.send(t, "1", "x")
	logs.await(t, "a delivered batch", containsAll("delivered sequenceNumbers=[0]"))

	slow := make(chan int, 1)
	go func() {
		resp, err := http.Get(h.URL() + "/api/echo/1/x?sleep=300ms")
		if err != nil {
			slow <- 0
			return
		}
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	logs.await(t, "the request at the handler", containsAll("fakeworker: sleeping 300ms"))
	require.NoError(t, h.Close())
	require.Equal(t, http.StatusOK, <-slow, "the request in flight finished")
	select {
	case <-h.Done():
	default:
		t.Fatal("Done is not closed after Close")
	}
	stopped := logs.await(t, "the handler's stop", containsAll("custom handler stopped", "pid="))
	last := logs.await(t, "the host's stop", containsAll("Functions host stopped", "took="))
	logs.mu.Lock()
	lines := slices.Clone(logs.lines)
	logs.mu.Unlock()
	require.Less(t, slices.Index(lines, stopped), slices.Index(lines, last))
	require.Equal(t, last, lines[len(lines)-1], "nothing is logged after the host stopped")
	require.NoError(t, h.Close(), "a second Close")
}

// TestCloseReportsHandlerStopFailure: a handler that fails its shutdown
// (exits non-zero when asked to stop) makes Close return an error, which
// Err repeats.
func TestCloseReportsHandlerStopFailure(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	h, err := Start(t.Context(), app.options(t, Options{Settings: map[string]string{"FAKEWORKER_EXIT_ON_TERM": "3"}}))
	require.NoError(t, err)
	err = h.Close()
	require.ErrorContains(t, err, "exited with code 3 when asked to stop")
	require.Equal(t, err, h.Err())
	require.Equal(t, err, h.Close(), "a second Close returns the same")
}

// TestHandlerOutputAndLogsOnce: the handler's stdout and an invocation's
// Logs reach the log once each, under the categories the Functions host
// uses (Host.Function.Console, Function.<name>.User): the host adds no
// copy of either.
func TestHandlerOutputAndLogsOnce(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	logs := newLogRecorder(t)
	h, err := Start(t.Context(), app.options(t, Options{Logger: logs.logger()}))
	require.NoError(t, err)
	status, _ := do(t, http.MethodPost, h.URL()+"/api/items/7", strings.NewReader("{}"), nil)
	require.Equal(t, http.StatusCreated, status)
	require.NoError(t, h.Close()) // every line of output is logged by then

	stdout := containsAll("fakeworker: http envelope for Envelope")
	require.Equal(t, 1, logs.count(stdout))
	logs.await(t, "the stdout line's category", containsAll("fakeworker: http envelope for Envelope", "stream=stdout", "category=Host.Function.Console"))
	entry := containsAll("INFO http envelope for Envelope")
	require.Equal(t, 1, logs.count(entry))
	logs.await(t, "the Logs entry's category", containsAll("INFO http envelope for Envelope", "function=Envelope", "invocationId=", "category=Function.Envelope.User"))
}

// TestHTTPServerFailureStopsHost: when serving fails (here: the caller's
// listener is closed under it), the host stops by itself and says why,
// instead of running on without its HTTP triggers.
func TestHTTPServerFailureStopsHost(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := app.start(t, Options{Listener: ln})
	require.Equal(t, "http://"+ln.Addr().String(), h.URL())
	status, _ := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
	require.Equal(t, http.StatusOK, status)

	ln.Close()
	awaitDone(t, h)
	require.ErrorContains(t, h.Err(), "funchost: HTTP server")
	require.ErrorIs(t, h.Err(), net.ErrClosed)
}
