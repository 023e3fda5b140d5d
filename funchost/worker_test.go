package funchost

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestWorkerStart checks how the handler process is started
// (functions-custom-handler.md §1.3): environment, working directory,
// %VAR% arguments, settings precedence and stdout/stderr levels.
func TestWorkerStart(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	write(t, filepath.Join(app.root, "local.settings.json"),
		`{"IsEncrypted":false,"Values":{"FAKE_FROM_FILE":"file","FAKE_BOTH":"file","FAKE_NUMBER":7}}`)
	logs := newLogRecorder(t)
	opts := app.options(t, Options{
		Settings: map[string]string{"FAKE_SETTING": "s1", "FAKE_BOTH": "option"},
		Logger:   logs.logger(),
	})
	h := startHost(t, opts)

	wi := info(t, h)
	port := wi.Env["FUNCTIONS_CUSTOMHANDLER_PORT"]
	require.Equal(t, strconv.Itoa(opts.handlerListener.Addr().(*net.TCPAddr).Port), port, "the port of the socket the worker serves on")
	require.Equal(t, port, wi.Env["FUNCTIONS_HTTPWORKER_PORT"], "the legacy port variable")
	require.Regexp(t, guidRE, wi.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"])
	require.Equal(t, wi.Env["FUNCTIONS_CUSTOMHANDLER_WORKER_ID"], wi.Env["FUNCTIONS_HTTPWORKER_ID"])
	require.Equal(t, app.root, wi.Env["FUNCTIONS_APP_ROOT_PATH"])
	require.Equal(t, filepath.Join(app.root, "work"), wi.Cwd, "workingDirectory is relative to the script root")
	require.Equal(t, []string{"--port=" + port, "--s=s1", "--gone="}, wi.Args, "%VAR% expanded, unresolved ones removed")

	require.Equal(t, "file", wi.Env["FAKE_FROM_FILE"], "local.settings.json Values reach the handler")
	require.Equal(t, "option", wi.Env["FAKE_BOTH"], "Options.Settings win over local.settings.json")
	require.Equal(t, "7", wi.Env["FAKE_NUMBER"])

	logs.await(t, "stdout at INFO", containsAll("INFO fakeworker: listening on port "+port, "stream=stdout"))
	logs.await(t, "stderr with warn at WARN", containsAll("WARN fakeworker: warning: this is a test double", "stream=stderr"))
	logs.await(t, "the authLevel notice", containsAll("authLevel is not enforced locally"))
}

// TestWorkerRestart plays the host's restart rules (§1.5): a crash is
// restarted, exit code 200 is a restart that is not a failure, and the
// third failure within 30 minutes stops the host.
func TestWorkerRestart(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	logs := newLogRecorder(t)
	h := app.start(t, Options{Logger: logs.logger()})
	ready := containsAll("custom handler is ready")

	pids := map[int]bool{info(t, h).PID: true}
	for i, code := range []int{1, 200, 1} {
		do(t, http.MethodPost, h.URL()+"/api/exit?code="+strconv.Itoa(code), nil, nil)
		logs.awaitN(t, "a restarted handler", i+2, ready)
		pid := info(t, h).PID
		require.False(t, pids[pid], "exit code %d: a new process answers", code)
		pids[pid] = true
	}
	require.Equal(t, 2, logs.count(containsAll("custom handler failed; restarting it")), "exit code 200 is not a failure")
	logs.await(t, "the intentional restart", containsAll("code 200 (intentional restart)"))

	do(t, http.MethodPost, h.URL()+"/api/exit?code=3", nil, nil)
	awaitDone(t, h)
	require.ErrorContains(t, h.Err(), "failed 3 times")
	status, _ := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
	require.Equal(t, http.StatusInternalServerError, status, "no handler: the invocation fails")
}

// TestWorkerExitZero: code 0 means "not restarted" (§1.5).
func TestWorkerExitZero(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	logs := newLogRecorder(t)
	h := app.start(t, Options{Logger: logs.logger()})

	do(t, http.MethodPost, h.URL()+"/api/exit?code=0", nil, nil)
	awaitDone(t, h)
	require.ErrorContains(t, h.Err(), "code 0")
	require.Equal(t, 1, logs.count(containsAll("custom handler started")), "no second process")
	status, _ := do(t, http.MethodGet, h.URL()+"/api/info", nil, nil)
	require.Equal(t, http.StatusInternalServerError, status)
}

// TestWorkerCrashAtStart: a handler that never comes up fails Start after
// three attempts, with its stderr logged as errors.
func TestWorkerCrashAtStart(t *testing.T) {
	app := newFakeApp(t, fakeHostJSON, fakeFunctions())
	logs := newLogRecorder(t)
	_, err := Start(t.Context(), app.options(t, Options{
		Settings: map[string]string{"FAKEWORKER_EXIT_AT_START": "3"},
		Logger:   logs.logger(),
	}))
	require.ErrorContains(t, err, "failed 3 times")
	require.ErrorContains(t, err, "exited with code 3")
	require.Equal(t, 3, logs.count(containsAll("ERROR fakeworker: crashing at start", "stream=stderr")))
}

// TestWorkerStartTimeout: Start gives up with ctx while the handler is not
// answering, and leaves no process behind.
func TestWorkerStartTimeout(t *testing.T) {
	app := newFakeApp(t, `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"sleep","arguments":["30"]}}}`, nil)
	logs := newLogRecorder(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := Start(ctx, Options{ScriptRoot: app.root, Logger: logs.logger()})
		done <- err
	}()
	logs.await(t, "the process start", containsAll("custom handler started"))
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

func awaitDone(t testing.TB, h *Host) {
	t.Helper()
	select {
	case <-h.Done():
	case <-time.After(awaitTimeout):
		t.Fatal("the host did not stop")
	}
}
