package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost"
	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// TestFleetRebootAbortsWithSimulatorFaults runs a fleet reboot on make
// run's parts — the local hub, the local Functions host with the real
// handler and FleetRebootTimer, and bin/simulator's devices — where the
// second wave's devices are half of them failing every reboot
// (--fail-share 1: reply 500, report status failed). The abort rule
// (more than 20 % failed) ends it after the second wave, and the third
// wave's devices are never called.
//
// Waves are filled in the order the hub lists the selected twins, which
// for the local hub is the device ids' order: fa-* (4, healthy) make
// wave 1, fb-* (2, failing) and fc-0001..0002 wave 2, fc-0003..0006
// wave 3.
func TestFleetRebootAbortsWithSimulatorFaults(t *testing.T) {
	repo := funchosttest.RepoRoot(t)
	app := funchosttest.AppRoot(t)
	sim := filepath.Join(t.TempDir(), "simulator")
	funchosttest.Build(t, filepath.Join(repo, "simulator"), "./cmd/simulator", sim)
	// Each simulator reads SIMULATOR_* from the environment it starts with.
	t.Setenv("SIMULATOR_REBOOT_DURATION", "200ms")
	t.Setenv("SIMULATOR_REBOOT_JITTER", "0s")
	t.Setenv("SIMULATOR_PROGRESS", "0s")

	hub := localhubtest.New(t, nil)
	logger := slog.New(slog.DiscardHandler)
	settings, err := appSettings(hub)
	require.NoError(t, err)
	settings["FLEET_REBOOT_SCHEDULE"] = "*/1 * * * * *"
	settings["AzureWebJobs.TwinChangeProcessor.Disabled"] = "true"
	host, err := funchost.Start(t.Context(), funchost.Options{ScriptRoot: app, Settings: settings, HTTPAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, host.Close()) })

	for _, group := range []struct {
		prefix    string
		devices   int
		failShare string
	}{{"fa-", 4, "0"}, {"fb-", 2, "1"}, {"fc-", 6, "0"}} {
		t.Setenv("SIMULATOR_FAIL_SHARE", group.failShare)
		s, err := startSimulator(config{devices: group.devices, prefix: group.prefix, simulator: sim}, hub, io.Discard, logger)
		require.NoError(t, err)
		require.NotNil(t, s)
		t.Cleanup(func() { s.stop() })
	}
	cs, err := hub.ServiceConnectionString("iothubowner")
	require.NoError(t, err)
	svc, err := iothub.NewClientFromConnectionString(cs, &iothub.ClientOptions{Endpoint: hub.HTTPSURL(),
		ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return countTwins(t, svc, "connectionState = 'Connected' AND properties.reported.iothubDM.reboot.status = 'running'") == 12
	}, time.Minute, 50*time.Millisecond, "12 simulated devices connected and running")

	resp, err := http.Post(host.URL()+"/api/reboots", "application/json", strings.NewReader(
		`{"query":"STARTSWITH(deviceId, 'f')","waves":{"size":4},"abort":{"maxFailedPercent":20,"minDevices":1}}`))
	require.NoError(t, err)
	var created fleetStatusView
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&created))
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	var st fleetStatusView
	require.Eventually(t, func() bool {
		resp, err := http.Get(host.URL() + "/api/reboots/" + created.ID)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		st = fleetStatusView{}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && st.State != "scheduled" && st.State != "running"
	}, time.Minute, 100*time.Millisecond, "the fleet reboot ends")

	require.Equal(t, "aborted", st.State, "reason: %s", st.Reason)
	require.Len(t, st.Waves, 3)
	require.Equal(t, waveView{Wave: 1, State: "finished", Devices: 4, Succeeded: 4}, st.Waves[0])
	require.Equal(t, waveView{Wave: 2, State: "finished", Devices: 4, Succeeded: 2, Failed: 2}, st.Waves[1])
	require.Equal(t, waveView{Wave: 3, State: "skipped", Devices: 4, Skipped: 4}, st.Waves[2])
	failed := map[string]bool{}
	for _, f := range st.FailedDevices {
		failed[f.DeviceID] = true
	}
	require.Equal(t, map[string]bool{"fb-0001": true, "fb-0002": true}, failed)
	// The third wave's devices were never asked: no twin of theirs echoes
	// the fleet reboot's id.
	require.Zero(t, countTwins(t, svc, "deviceId IN ['fc-0003', 'fc-0004', 'fc-0005', 'fc-0006'] AND properties.reported.iothubDM.reboot.requestId = '"+created.ID+"'"))
	require.Equal(t, 6, countTwins(t, svc, "properties.reported.iothubDM.reboot.requestId = '"+created.ID+"' AND properties.reported.iothubDM.reboot.status != 'failed'"),
		"waves 1 and 2's healthy devices rebooted")
}

// fleetStatusView is the part of GET /api/reboots/{id} the test reads.
type fleetStatusView struct {
	ID            string
	State         string
	Reason        string
	Waves         []waveView
	FailedDevices []struct {
		DeviceID string `json:"deviceId"`
	}
}

type waveView struct {
	Wave      int
	State     string
	Devices   int
	Succeeded int
	Failed    int
	Skipped   int
}

// countTwins counts the twins where condition holds.
func countTwins(t testing.TB, svc *iothub.Client, condition string) int {
	t.Helper()
	page, err := svc.NewQueryPager("SELECT COUNT() AS n FROM devices WHERE "+condition, nil).NextPage(t.Context())
	require.NoError(t, err)
	var row struct{ N int }
	if len(page.Items) > 0 {
		require.NoError(t, json.Unmarshal(page.Items[0], &row))
	}
	return row.N
}
