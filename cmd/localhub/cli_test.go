package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// runMain runs the command line as main would and returns its exit code,
// stdout and stderr.
func runMain(t *testing.T, getenv func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	code = realMain(ctx, args, getenv, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHelpListsEveryCommandAndExitsZero: "localhub -h" used to print only
// serve's flags and exit 1 with "flag: help requested".
func TestHelpListsEveryCommandAndExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}, {"device", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, stdout, stderr := runMain(t, noEnv, args...)
			require.Equal(t, 0, code)
			require.Empty(t, stderr)
			for _, want := range []string{
				"serve", "connection-string", "eventhub-connection-string", "device create DEVICE-ID", "device show DEVICE-ID", "device list",
				"--data-dir DIR", "--hostname", "--mqtt-addr", "--https-addr", "--bearer-token", "--partitions",
				"--retention", "--throttle", "--log-level", "--policy POLICY", "[LOCALHUB_DATA_DIR]",
				"--amqp-addr ADDRESS", "--amqp-plain-addr ADDRESS", "--amqp-plain-remote BOOL", "--consumer-group GROUP",
				"(default functions,localdev) [LOCALHUB_CONSUMER_GROUPS]", "--routes SOURCES", "(default DeviceMessages,TwinChangeEvents)",
				"--emulator",
			} {
				require.Contains(t, stdout, want)
			}
		})
	}
}

func TestCommandHelpExitsZero(t *testing.T) {
	for _, c := range commands {
		args := append(strings.Fields(c.name), "-h")
		code, stdout, stderr := runMain(t, noEnv, args...)
		require.Equal(t, 0, code, "%v", args)
		require.Empty(t, stderr)
		require.Contains(t, stdout, "Usage: localhub "+c.usageLine())
		require.Contains(t, stdout, "--data-dir DIR")
	}
}

// TestHelpNeverPrintsEnvironmentValues: "LOCALHUB_BEARER_TOKEN=x localhub
// serve -h" used to print the token as the flag's default.
func TestHelpNeverPrintsEnvironmentValues(t *testing.T) {
	env := map[string]string{}
	for flagName, name := range envFallback {
		env[name] = "env-value-of-" + flagName
	}
	getenv := func(k string) string { return env[k] }
	for _, args := range [][]string{{"-h"}, {"serve", "-h"}, {"serve", "--help"}, {"connection-string", "-h"}, {"device", "list", "-h"}} {
		code, stdout, stderr := runMain(t, getenv, args...)
		require.Equal(t, 0, code)
		require.NotContains(t, stdout+stderr, "env-value-of-", "%v printed an environment value", args)
	}
	// A bad value names the variable that gave it.
	env["LOCALHUB_PARTITIONS"] = "many"
	code, _, stderr := runMain(t, getenv, "serve")
	require.Equal(t, 2, code)
	require.Equal(t, "localhub: serve: LOCALHUB_PARTITIONS must be a number from 1 to 32, got \"many\"\n", stderr)
}

func TestBadCommandLines(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"launch"}, `localhub: unknown command "launch"`},
		{[]string{"device"}, "localhub: device needs a subcommand"},
		{[]string{"device", "remove", "x"}, `localhub: unknown command "device remove"`},
		{[]string{"device", "show"}, "localhub: device show needs DEVICE-ID"},
		{[]string{"device", "create", "a", "b"}, "localhub: device create: unexpected arguments: b"},
		{[]string{"serve", "--nope"}, "localhub: serve: flag provided but not defined: -nope"},
		{[]string{"--partitions", "0"}, "localhub: serve: --partitions must be a number from 1 to 32"},
	} {
		code, stdout, stderr := runMain(t, noEnv, tt.args...)
		require.Equal(t, 2, code, "%v", tt.args)
		require.Empty(t, stdout)
		require.True(t, strings.HasPrefix(stderr, tt.want), "%v: stderr %q", tt.args, stderr)
		requireCleanError(t, stderr)
	}
}

// repeatedLabel finds "x: x:", a prefix said twice by wrapping layers.
var repeatedLabel = regexp.MustCompile(`(?:^|\s)([^\s:]+): ([^\s:]+):`)

// requireCleanError checks an error as main prints it: one "localhub: "
// prefix, no label said twice in a row, and the message first on its line.
func requireCleanError(t *testing.T, stderr string) {
	t.Helper()
	require.True(t, strings.HasPrefix(stderr, "localhub: "), "stderr %q", stderr)
	require.Equal(t, 1, strings.Count(stderr, "localhub: "), "stderr %q", stderr)
	first, _, _ := strings.Cut(stderr, "\n")
	for _, m := range repeatedLabel.FindAllStringSubmatch(first, -1) {
		require.NotEqual(t, m[1], m[2], "repeated prefix in %q", first)
	}
}

func TestErrorText(t *testing.T) {
	for in, want := range map[string]string{
		"localhub: registry: registry: open d/registry.db: timeout": "registry: open d/registry.db: timeout",
		"localhub: localhub: x":             "x",
		`device "d": device already exists`: `device "d": device already exists`,
		"a: b: a: b":                        "a: b: a: b",
	} {
		require.Equal(t, want, errorText(errors.New(in)), in)
	}
	require.Equal(t, "registry: open x: timeout", errorText(fmt.Errorf("localhub: registry: %w", errors.New("registry: open x: timeout"))))
}

// TestSecondServeOnServedDataDir: a second hub on a served data dir used
// to wait 5 s on the registry's lock, then print "localhub: localhub:
// registry: registry: open …: timeout".
func TestSecondServeOnServedDataDir(t *testing.T) {
	dataDir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir})
	require.NoError(t, err)
	defer hub.Close()

	start := time.Now()
	code, _, stderr := runMain(t, noEnv, append([]string{"serve", "--data-dir", dataDir}, randomPorts...)...)
	require.Equal(t, 1, code)
	require.Less(t, time.Since(start), 3*time.Second, "refused at once, not after the registry's lock timeout")
	requireCleanError(t, stderr)
	require.Equal(t, fmt.Sprintf("localhub: a hub (pid %d, %s) already serves data dir %s (localhub serve or make run): stop it or use another data dir\n",
		os.Getpid(), hub.HTTPSURL(), dataDir), stderr)
}

// TestAdminCommandOnLockedDataDir: a hub holds the data dir but admin
// commands cannot reach it (its run file is gone), so they open the
// registry and find it locked. The error is printed once, cleanly.
func TestAdminCommandOnLockedDataDir(t *testing.T) {
	dataDir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir})
	require.NoError(t, err)
	defer hub.Close()
	require.NoError(t, os.Remove(filepath.Join(dataDir, "run.json")))

	code, stdout, stderr := runMain(t, noEnv, "device", "list", "--data-dir", dataDir)
	require.Equal(t, 1, code)
	require.Empty(t, stdout)
	requireCleanError(t, stderr)
	require.Contains(t, stderr, dataDir)
	require.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
}

// TestDeviceShowAndList covers both paths of the new subcommands: the
// registry file while no hub runs, the REST API while one does.
func TestDeviceShowAndList(t *testing.T) {
	dataDir := t.TempDir()
	hub, err := localhub.Start(t.Context(), localhub.Options{DataDir: dataDir, Hostname: "hub.example.test"})
	require.NoError(t, err)
	createdB, err := hub.CreateDevice("dev-b")
	require.NoError(t, err)
	require.NoError(t, hub.Close())

	// No hub: the registry file.
	code, stdout, stderr := runMain(t, noEnv, "device", "create", "dev-a", "--data-dir", dataDir)
	require.Equal(t, 0, code, stderr)
	createdA := strings.TrimSpace(stdout)
	code, stdout, _ = runMain(t, noEnv, "device", "show", "dev-b", "--data-dir", dataDir)
	require.Equal(t, 0, code)
	require.Equal(t, createdB+"\n", stdout)
	code, stdout, _ = runMain(t, noEnv, "device", "list", "--data-dir", dataDir)
	require.Equal(t, 0, code)
	require.Equal(t, []string{"DEVICE ID STATUS CONNECTION", "dev-a enabled Disconnected", "dev-b enabled Disconnected"}, tableRows(stdout))
	code, _, stderr = runMain(t, noEnv, "device", "show", "dev-c", "--data-dir", dataDir)
	require.Equal(t, 1, code)
	require.Equal(t, "localhub: device \"dev-c\": device not found\n", stderr)
	code, _, stderr = runMain(t, noEnv, "device", "create", "dev-a", "--data-dir", dataDir)
	require.Equal(t, 1, code)
	require.Equal(t, "localhub: device \"dev-a\": device already exists (\"localhub device show dev-a\" prints its connection string)\n", stderr)

	// A hub runs: its REST API, so the list shows live connection state.
	hub, err = localhub.Start(t.Context(), localhub.Options{DataDir: dataDir, Hostname: "hub.example.test"})
	require.NoError(t, err)
	defer hub.Close()
	localhubtest.ConnectDevice(t, hub, createdA, localhubtest.Silent)
	code, stdout, _ = runMain(t, noEnv, "device", "show", "dev-a", "--data-dir", dataDir)
	require.Equal(t, 0, code)
	require.Equal(t, createdA+"\n", stdout)
	cs, err := sas.ParseConnectionString(createdA)
	require.NoError(t, err)
	require.Equal(t, "hub.example.test", cs.HostName)
	code, stdout, _ = runMain(t, noEnv, "device", "list", "--data-dir", dataDir)
	require.Equal(t, 0, code)
	require.Equal(t, []string{"DEVICE ID STATUS CONNECTION", "dev-a enabled Connected", "dev-b enabled Disconnected"}, tableRows(stdout))
	code, _, stderr = runMain(t, noEnv, "device", "show", "dev-c", "--data-dir", dataDir)
	require.Equal(t, 1, code)
	require.Equal(t, "localhub: device \"dev-c\": device not found\n", stderr)
	code, _, stderr = runMain(t, noEnv, "device", "create", "dev-b", "--data-dir", dataDir)
	require.Equal(t, 1, code)
	require.Equal(t, "localhub: device \"dev-b\": device already exists (\"localhub device show dev-b\" prints its connection string)\n", stderr)
}

// tableRows is the list output with its column padding collapsed.
func tableRows(out string) []string {
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	return rows
}
