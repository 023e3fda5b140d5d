package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/iothub-reboot/devmgmt/funchost"
	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// BenchmarkFleetReboot1000 is a fleet reboot of 1,000 simulated devices in
// 10 waves on make run's stack: the local hub and the local Functions host
// in process with the real handler, and bin/simulator's devices over MQTT.
// Each iteration reboots every device twice: as a fleet reboot (POST
// /api/reboots, waves of 10 %, polled until it completes), then as 1,000
// direct RebootDevice calls from 32 callers, the floor, in the same run so
// that the machine's load weighs on both. FleetRebootTimer runs every
// second here (make run: every 10 s), since the schedule, not the work,
// sets the pace between waves.
//
// Metrics: fleet-s and direct-s (wall time to the last device's answer),
// fleet/direct, back-% (devices reporting the new lastReboot when the
// fleet reboot completes) and back-s (until all are back), the CPU
// seconds of the hub and host (this process), the handler and the
// simulator during each, and status-reads (the polls, one a second) with
// what one costs the hub and host (status-read-cpu-ms).
//
//	go test -run '^$' -bench FleetReboot1000 -benchtime 3x ./cmd/localdev/
func BenchmarkFleetReboot1000(b *testing.B) {
	const devices = 1000
	repo := funchosttest.RepoRoot(b)
	simPath := filepath.Join(b.TempDir(), "simulator")
	funchosttest.Build(b, filepath.Join(repo, "simulator"), "./cmd/simulator", simPath)
	appRoot := funchosttest.AppRoot(b)
	dataDir := b.TempDir()
	b.Setenv("SIMULATOR_REBOOT_DURATION", "1s")
	b.Setenv("SIMULATOR_REBOOT_JITTER", "500ms")
	b.Setenv("SIMULATOR_PROGRESS", "0")

	ctx := b.Context()
	logger := slog.New(slog.DiscardHandler)
	hub, err := localhub.Start(ctx, localhub.Options{DataDir: dataDir, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Close()
	settings, err := appSettings(hub)
	if err != nil {
		b.Fatal(err)
	}
	settings["FLEET_REBOOT_SCHEDULE"] = "*/1 * * * * *"
	host, err := funchost.Start(ctx, funchost.Options{ScriptRoot: appRoot, Settings: settings,
		DataDir: filepath.Join(dataDir, "funchost"), Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	sim, err := startSimulator(config{devices: devices, prefix: "sim-", simulator: simPath}, hub, io.Discard, logger)
	if err != nil || sim == nil {
		b.Fatalf("simulator: %v", err)
	}
	defer sim.stop()
	cs, err := hub.ServiceConnectionString("iothubowner")
	if err != nil {
		b.Fatal(err)
	}
	svc, err := iothub.NewClientFromConnectionString(cs, &iothub.ClientOptions{Endpoint: hub.HTTPSURL(),
		ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()}})
	if err != nil {
		b.Fatal(err)
	}
	awaitConnected(b, svc, devices)

	const statusReads = 20
	var fleetS, directS, backPct, backS, selfFleet, selfDirect, handlerFleet, handlerDirect, simFleet, simDirect, readCPUms, polls float64
	n := 0
	for b.Loop() {
		n++
		cpu0 := readCPU(b, sim.cmd.Process.Pid)
		start := time.Now()
		id := startFleet(b, host.URL(), `{"query":"STARTSWITH(deviceId, 'sim-')","waves":{"percent":10},"abort":{"maxFailedPercent":5,"minDevices":100}}`)
		n0 := 0
		st := awaitFleet(b, host.URL(), id, func(s benchStatus) bool { n0++; return s.State != "scheduled" && s.State != "running" })
		fleetS += time.Since(start).Seconds()
		cpu1 := readCPU(b, sim.cmd.Process.Pid)
		if st.State != "completed" || st.Totals.Succeeded != devices || len(st.Waves) != 10 {
			b.Fatalf("fleet reboot ended %s: %+v (%s)", st.State, st.Totals, st.Reason)
		}
		backPct += st.Rebooted.Percent
		awaitFleet(b, host.URL(), id, func(s benchStatus) bool { return s.Rebooted.Devices == devices })
		backS += time.Since(start).Seconds()
		// What one status read costs the hub and host (each is three to
		// five twin queries over the 1,000 twins), to tell the polling
		// apart from the rollout in the figures above.
		r0 := readCPU(b, sim.cmd.Process.Pid)
		for range statusReads {
			awaitFleet(b, host.URL(), id, func(benchStatus) bool { return true })
		}
		r1 := readCPU(b, sim.cmd.Process.Pid)
		readCPUms += (r1.self - r0.self) / statusReads * 1000
		polls += float64(n0)
		awaitConnected(b, svc, devices)

		cpu2 := readCPU(b, sim.cmd.Process.Pid)
		start = time.Now()
		directReboots(b, host.URL(), devices, 32)
		directS += time.Since(start).Seconds()
		cpu3 := readCPU(b, sim.cmd.Process.Pid)
		awaitConnected(b, svc, devices)

		selfFleet += cpu1.self - cpu0.self
		handlerFleet += cpu1.handler - cpu0.handler
		simFleet += cpu1.simulator - cpu0.simulator
		selfDirect += cpu3.self - cpu2.self
		handlerDirect += cpu3.handler - cpu2.handler
		simDirect += cpu3.simulator - cpu2.simulator
	}
	f := float64(n)
	b.ReportMetric(fleetS/f, "fleet-s")
	b.ReportMetric(directS/f, "direct-s")
	b.ReportMetric(fleetS/directS, "fleet/direct")
	b.ReportMetric(backPct/f, "back-%")
	b.ReportMetric(backS/f, "back-s")
	b.ReportMetric(selfFleet/f, "hub+host-cpu-s")
	b.ReportMetric(selfDirect/f, "direct-hub+host-cpu-s")
	b.ReportMetric(handlerFleet/f, "handler-cpu-s")
	b.ReportMetric(handlerDirect/f, "direct-handler-cpu-s")
	b.ReportMetric(simFleet/f, "simulator-cpu-s")
	b.ReportMetric(simDirect/f, "direct-simulator-cpu-s")
	b.ReportMetric(readCPUms/f, "status-read-cpu-ms")
	b.ReportMetric(polls/f, "status-reads")
	b.ReportMetric(0, "ns/op")
}

// benchStatus is the part of a fleet reboot's status the benchmark reads.
type benchStatus struct {
	State    string
	Reason   string
	Totals   struct{ Succeeded, Failed, NotOnline, TimedOut int }
	Waves    []json.RawMessage
	Rebooted struct {
		Devices int
		Percent float64
	}
}

func startFleet(b *testing.B, app, body string) string {
	resp, err := http.Post(app+"/api/reboots", "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusAccepted {
		b.Fatalf("POST /api/reboots: %d %v", resp.StatusCode, err)
	}
	return st.ID
}

func awaitFleet(b *testing.B, app, id string, done func(benchStatus) bool) benchStatus {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := http.Get(app + "/api/reboots/" + id)
		if err != nil {
			b.Fatal(err)
		}
		var st benchStatus
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			b.Fatalf("fleet reboot %s: still %s", id, st.State)
		}
		time.Sleep(time.Second) // polling an HTTP API, as its callers do (more often than its Retry-After)
	}
}

// directReboots reboots sim-0001..sim-<n> through RebootDevice, callers at
// a time.
func directReboots(b *testing.B, app string, n, callers int) {
	ids := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range callers {
		wg.Go(func() {
			for i := range ids {
				resp, err := http.Post(fmt.Sprintf("%s/api/devices/sim-%04d/reboot", app, i), "application/json", nil)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	for i := 1; i <= n; i++ {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if failed > 0 {
		b.Fatalf("%d direct reboots failed", failed)
	}
}

// awaitConnected waits until n devices are connected and report running.
func awaitConnected(b *testing.B, svc *iothub.Client, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		connected := countTwins(b, svc, "connectionState = 'Connected' AND properties.reported.iothubDM.reboot.status = 'running'")
		if connected >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d devices connected", connected, n)
		}
		time.Sleep(200 * time.Millisecond) // polling the hub's observable state
	}
}

// cpuTimes are CPU seconds (user + system) so far.
type cpuTimes struct{ self, handler, simulator float64 }

// readCPU reads this process's CPU time (hub and host, in process) and
// that of its children: the handler (the host's child, found by name) and
// the simulator.
func readCPU(b *testing.B, simPID int) cpuTimes {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	c := cpuTimes{self: tv(ru.Utime) + tv(ru.Stime), simulator: procCPU(simPID)}
	entries, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if strings.TrimSpace(string(comm)) == "handler" && parentOf(pid) == me {
			c.handler += procCPU(pid)
		}
	}
	return c
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// procCPU reads utime + stime of /proc/<pid>/stat, in clock ticks of
// 1/100 s (USER_HZ on Linux).
func procCPU(pid int) float64 {
	f := statFields(pid)
	if len(f) < 15 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[13], 64)
	s, _ := strconv.ParseFloat(f[14], 64)
	return (u + s) / 100
}

func parentOf(pid int) int {
	f := statFields(pid)
	if len(f) < 4 {
		return 0
	}
	p, _ := strconv.Atoi(f[3])
	return p
}

// statFields splits /proc/<pid>/stat, whose second field (the command, in
// parentheses) may hold spaces.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return append([]string{s[:strings.IndexByte(s, ' ')], "comm"}, strings.Fields(s[i+1:])...)
}
