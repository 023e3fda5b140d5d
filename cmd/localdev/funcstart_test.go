package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost"
	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// TestFuncStartRecipe follows the README's "Local development with `func
// start`" with the local host standing in for Core Tools, which is not
// installed here: `make func-app` lays out dist/func with a handler for
// this machine named in its host.json, local.settings.sample.json with its
// placeholders replaced by what the README's commands print, copied in as
// local.settings.json; then every function loads from those settings
// alone, the handler starts, and TwinChangeProcessor (enabled) reads a
// device's reported lastReboot from the hub's built-in endpoint.
func TestFuncStartRecipe(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed: the Makefile's func-app target is not checked")
	}
	repo := funchosttest.RepoRoot(t)
	out := t.TempDir()
	dist := filepath.Join(out, "dist")
	cmd := exec.Command(mk, "-s", "-C", repo, "func-app", "BIN="+filepath.Join(out, "bin"), "DIST="+dist)
	cmd.Env = environWithoutMake()
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	root := filepath.Join(dist, "func")

	// host.json names the handler make built for this machine.
	exe := hostJSONExecutable(t, root)
	if runtime.GOOS == "windows" {
		require.Equal(t, "handler.exe", exe)
	} else {
		require.Equal(t, "handler", exe)
	}
	info, err := os.Stat(filepath.Join(root, exe))
	require.NoError(t, err, "the executable host.json names")
	require.NotZero(t, info.Mode()&0o111, "executable")

	// On Windows make names it handler.exe, in host.json too.
	cmd = exec.Command(mk, "-n", "-s", "-C", repo, "func-app", "EXE=.exe", "BIN="+filepath.Join(out, "bin"), "DIST="+dist)
	cmd.Env = environWithoutMake()
	b, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	require.Contains(t, string(b), `"defaultExecutablePath": "handler.exe"`)
	require.Contains(t, string(b), filepath.Join(out, "bin", "handler.exe"))

	// local.settings.json as the README makes it, for a hub that has
	// started once (on random ports here: the sample's fixed defaults for
	// the endpoint and the CA's path are replaced by this hub's).
	hub := localhubtest.New(t, nil)
	values := sampleSettings(t, repo, hub)
	values["IOTHUB_ENDPOINT"] = hub.HTTPSURL()
	values["IOTHUB_CA_FILE"] = hub.CAFile()
	settingsJSON, err := json.Marshal(map[string]any{"IsEncrypted": false, "Values": values})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(root, "local.settings.json"), settingsJSON, 0o600))

	watched := newWatchedBuffer()
	logger := slog.New(slog.NewTextHandler(watched, nil))
	// No Settings: the host reads them from local.settings.json.
	h, err := funchost.Start(t.Context(), funchost.Options{ScriptRoot: root, HTTPAddr: "127.0.0.1:0", CheckpointDir: t.TempDir(), Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close()) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("host log:\n%s", watched)
		}
	})
	done := make(chan error) // nothing to end early: the host runs until Close
	watched.await(t, done, "the Event Hubs listener", `msg="event hub listener started" function=TwinChangeProcessor`)
	require.NotContains(t, watched.String(), "function not loaded")
	require.NotContains(t, watched.String(), "disabled")

	dev := localhubtest.NewDevice(t, hub, "func-start-dev", localhubtest.Reply(200, `{}`))
	dev.ReportJSON(t, map[string]any{"iothubDM": map[string]any{"reboot": map[string]any{"lastReboot": "2026-02-03T04:05:06Z", "status": "running"}}})
	watched.await(t, done, "the processor's line", "reboot reported")
	require.Regexp(t, `reboot reported.*deviceId=func-start-dev.*lastReboot=2026-02-03T04:05:06Z`, watched.String())
}

// sampleSettings reads local.settings.sample.json's Values and replaces
// each placeholder "<output of: bin/localhub ...>" with what that command
// prints for hub; a placeholder the test does not know fails it.
func sampleSettings(t *testing.T, repo string, hub *localhub.Hub) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "local.settings.sample.json"))
	require.NoError(t, err)
	var sample struct {
		Values map[string]string
	}
	require.NoError(t, json.Unmarshal(b, &sample))
	commands := map[string]func() (string, error){
		"bin/localhub connection-string --policy serviceAndRegistryReadWrite": func() (string, error) {
			return hub.ServiceConnectionString("serviceAndRegistryReadWrite")
		},
		"bin/localhub eventhub-connection-string --emulator": func() (string, error) {
			return hub.EventHubConnectionString("service", true)
		},
	}
	placeholder := regexp.MustCompile(`^<output of: (.+)>$`)
	for k, v := range sample.Values {
		m := placeholder.FindStringSubmatch(v)
		if m == nil {
			require.NotContains(t, v, "<", "%s looks like a placeholder the test does not know", k)
			continue
		}
		command, ok := commands[m[1]]
		require.True(t, ok, "%s: no such command in the test: %s", k, m[1])
		if sample.Values[k], err = command(); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	return sample.Values
}

// hostJSONExecutable is customHandler.description.defaultExecutablePath.
func hostJSONExecutable(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "host.json"))
	require.NoError(t, err)
	var hj struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string
			}
		}
	}
	require.NoError(t, json.Unmarshal(b, &hj))
	return hj.CustomHandler.Description.DefaultExecutablePath
}

// TestReadmeLocalSettings: the README's local.settings.json for func start
// is local.settings.sample.json, so that following either gives the same.
func TestReadmeLocalSettings(t *testing.T) {
	repo := funchosttest.RepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(repo, "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Local development with `func start`\n")
	require.True(t, ok, "README has no section \"Local development with `func start`\"")
	section, _, _ = strings.Cut(section, "\n## ")
	m := regexp.MustCompile("(?s)```json\n(.*?)\n *```").FindStringSubmatch(section)
	require.NotNil(t, m, "no json block in the section")
	sample, err := os.ReadFile(filepath.Join(repo, "local.settings.sample.json"))
	require.NoError(t, err)
	require.JSONEq(t, string(sample), m[1])
}
