package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/iothub-reboot/devmgmt/shared/latency"
)

// scenario is everything measured with one fleet size.
type scenario struct {
	devices int
	created time.Duration // registering the devices (not a target)

	hubSim  memory // hub memory with the simulator's devices connected, minus none
	hubPaho memory // likewise with the paho fleet
	floor   memory // the bare broker with the floor fleet

	simOne, sim   simulatorRun
	hubConnectCPU time.Duration // the hub's CPU time while the simulator connected
	node          *nodeRun

	pahoConnect, floorConnect time.Duration

	hubLoad, floorLoad     []load
	hubSerial, floorSerial []time.Duration
}

func runScenario(ctx context.Context, o options, n int, dir string, withNode bool, log *slog.Logger) (sc scenario, err error) {
	sc.devices = n
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return sc, err
	}
	// startHub starts a hub with the n devices registered. Each memory
	// figure is measured on a hub of its own: a hub that has had devices
	// connected reuses what they left behind, and would show less.
	startHub := func(name string) (*child, hubInfo, string, error) {
		var info hubInfo
		file := filepath.Join(dir, name+"-devices.txt")
		hub, err := startChild(ctx, "hub", o.childEnv(), hubConfig{DataDir: filepath.Join(dir, name), Devices: n, DevicesFile: file}, &info)
		if err == nil {
			sc.created = seconds(info.CreateSecond)
			log.Info("hub ready", "devices", n, "registered", sc.created.Round(time.Millisecond))
		}
		return hub, info, file, err
	}
	profile := func(c *child, what string) error {
		if o.profile == "" {
			return nil
		}
		for _, kind := range []string{"heap", "goroutines"} {
			p := filepath.Join(o.profile, fmt.Sprintf("%s-%d-%s-%s.pprof", c.name, n, what, kind))
			if err := c.call(ctx, kind+" "+p, nil); err != nil {
				return err
			}
		}
		return nil
	}

	if o.simulator != "off" || withNode {
		hub, info, devicesFile, err := startHub("hub-simulator")
		if err != nil {
			return sc, err
		}
		err = runDeviceSDKs(ctx, o, n, dir, withNode, hub, info, devicesFile, profile, &sc, log)
		hub.stop()
		if err != nil {
			return sc, err
		}
	}
	if !o.methods {
		return sc, nil
	}
	hub, info, devicesFile, err := startHub("hub-paho")
	if err != nil {
		return sc, err
	}
	defer hub.stop()
	var bi brokerInfo
	broker, err := startChild(ctx, "broker", o.childEnv(), brokerConfig{DataDir: filepath.Join(dir, "hub-paho"), Host: info.Hostname}, &bi)
	if err != nil {
		return sc, err
	}
	defer broker.stop()

	// The paho fleets, on the hub and on the floor.
	before, err := hub.memory(ctx)
	if err != nil {
		return sc, err
	}
	var fi fleetInfo
	hubFleet, err := startChild(ctx, "fleet", nil, fleetConfig{Addr: info.MQTTAddr, CAFile: info.CAFile, ServerName: info.Hostname,
		DevicesFile: devicesFile, Concurrency: o.concurrency}, &fi)
	if err != nil {
		return sc, err
	}
	defer hubFleet.stop()
	sc.pahoConnect = seconds(fi.Seconds)
	after, err := hub.memory(ctx)
	if err != nil {
		return sc, err
	}
	sc.hubPaho = after.minus(before)
	if err := profile(hub, "paho"); err != nil {
		return sc, err
	}
	if before, err = broker.memory(ctx); err != nil {
		return sc, err
	}
	floorFleet, err := startChild(ctx, "fleet", nil, fleetConfig{Floor: true, Addr: bi.MQTTAddr, CAFile: info.CAFile, ServerName: info.Hostname,
		DevicesFile: devicesFile, Concurrency: o.concurrency}, &fi)
	if err != nil {
		return sc, err
	}
	defer floorFleet.stop()
	sc.floorConnect = seconds(fi.Seconds)
	if after, err = broker.memory(ctx); err != nil {
		return sc, err
	}
	sc.floor = after.minus(before)
	if err := profile(broker, "paho"); err != nil {
		return sc, err
	}
	log.Info("paho fleets connected", "devices", n, "hub KB/device", kb(float64(sc.hubPaho.RSS)/float64(n)),
		"floor KB/device", kb(float64(sc.floor.RSS)/float64(n)))

	hc, err := newHubCaller(info)
	if err != nil {
		return sc, err
	}
	defer hc.close()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = deviceID(i)
	}
	fc, err := newFloorCaller(bi.MQTTAddr, info.CAFile, info.Hostname, ids, o.inFlight)
	if err != nil {
		return sc, err
	}
	defer fc.close()
	for r := range o.rounds {
		for _, side := range []struct {
			c     caller
			proc  *child
			fleet *child
			loads *[]load
		}{{hc, hub, hubFleet, &sc.hubLoad}, {fc, broker, floorFleet, &sc.floorLoad}} {
			cpu := o.profile != "" && r == 0
			var stopSelf func() error
			if cpu {
				p := filepath.Join(o.profile, fmt.Sprintf("%s-%d-cpu.pprof", side.proc.name, n))
				if err := side.proc.call(ctx, "cpu "+p, nil); err != nil {
					return sc, err
				}
				p = filepath.Join(o.profile, fmt.Sprintf("%s-fleet-%d-cpu.pprof", side.proc.name, n))
				if err := side.fleet.call(ctx, "cpu "+p, nil); err != nil {
					return sc, err
				}
				// The caller's own share: the requester runs in this process.
				if stopSelf, err = startCPUProfile(filepath.Join(o.profile, fmt.Sprintf("%s-caller-%d-cpu.pprof", side.proc.name, n))); err != nil {
					return sc, err
				}
			}
			pids := [3]int{side.proc.cmd.Process.Pid, side.fleet.cmd.Process.Pid, os.Getpid()}
			var used [2][3]time.Duration
			windows := 0
			l, err := runLoad(ctx, side.c, ids, o.inFlight, o.warmup, o.duration, func() {
				for i, pid := range pids {
					used[windows][i], _ = cpuTime(pid)
				}
				windows++
			})
			for i := range pids {
				l.cpu[i] = used[1][i] - used[0][i]
			}
			if cpu {
				err = errors.Join(err, side.proc.call(ctx, "cpu", nil), side.fleet.call(ctx, "cpu", nil), stopSelf())
			}
			if err != nil {
				return sc, fmt.Errorf("%s, %d in flight: %w", side.proc.name, o.inFlight, err)
			}
			*side.loads = append(*side.loads, l)
			log.Info("throughput", "on", side.proc.name, "devices", n, "calls/s", int(l.rate()),
				"cpu/call", l.cpuPerCall().Round(time.Microsecond), "server", l.cpu[0]/time.Duration(max(l.calls, 1)),
				"devices", l.cpu[1]/time.Duration(max(l.calls, 1)), "caller", l.cpu[2]/time.Duration(max(l.calls, 1)))
		}
	}
	for r := range o.rounds {
		lat, err := runSerial(ctx, hc, ids, o.serial, r*o.serial)
		if err != nil {
			return sc, fmt.Errorf("hub, one in flight: %w", err)
		}
		sc.hubSerial = append(sc.hubSerial, lat...)
		if lat, err = runSerial(ctx, fc, ids, o.serial, r*o.serial); err != nil {
			return sc, fmt.Errorf("floor, one in flight: %w", err)
		}
		sc.floorSerial = append(sc.floorSerial, lat...)
	}
	pct := func(d []time.Duration) string {
		return fmt.Sprintf("p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f ms", latency.PercentileMS(d, 0.5), latency.PercentileMS(d, 0.9),
			latency.PercentileMS(d, 0.99), latency.PercentileMS(d, 0.999))
	}
	log.Info("one call in flight", "devices", n, "hub", pct(sc.hubSerial), "floor", pct(sc.floorSerial))
	for _, f := range []*child{hubFleet, floorFleet} {
		var st fleetStats
		if err := f.call(ctx, "stats", &st); err != nil {
			return sc, err
		}
		if st.Lost != 0 {
			return sc, fmt.Errorf("%d devices lost their connection during the run", st.Lost)
		}
	}
	return sc, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// kb is bytes in KB (1,024 bytes), rounded to a tenth.
func kb(b float64) float64 { return float64(int(b/1024*10+0.5)) / 10 }

// runDeviceSDKs measures the simulator (one device first, the baseline its
// memory per device is counted from, then all of them, with the hub
// measured meanwhile) and Microsoft's Node.js device SDK on the same hub.
func runDeviceSDKs(ctx context.Context, o options, n int, dir string, withNode bool, hub *child, info hubInfo, devicesFile string,
	profile func(*child, string) error, sc *scenario, log *slog.Logger) error {
	if o.simulator != "off" {
		var err error
		if sc.simOne, err = runSimulator(ctx, o.simulator, o.simFlags, info, devicesFile, 1, dir, nil); err != nil {
			return err
		}
		before, err := hub.memory(ctx)
		if err != nil {
			return err
		}
		if o.profile != "" {
			if err := hub.call(ctx, "cpu "+filepath.Join(o.profile, fmt.Sprintf("hub-%d-connect-cpu.pprof", n)), nil); err != nil {
				return err
			}
		}
		hubCPU, _ := cpuTime(hub.cmd.Process.Pid)
		sc.sim, err = runSimulator(ctx, o.simulator, o.simFlags, info, devicesFile, n, dir, func() error {
			used, _ := cpuTime(hub.cmd.Process.Pid)
			sc.hubConnectCPU = used - hubCPU
			if o.profile != "" {
				if err := hub.call(ctx, "cpu", nil); err != nil {
					return err
				}
			}
			after, err := hub.memory(ctx)
			sc.hubSim = after.minus(before)
			if err == nil {
				err = profile(hub, "simulator")
			}
			return err
		})
		if err != nil {
			return err
		}
		log.Info("simulator", "devices", n, "connect", sc.sim.connect.Round(time.Millisecond), "simulator cpu", sc.sim.cpu, "hub cpu", sc.hubConnectCPU,
			"KB/device", kb(float64(sc.sim.rss-sc.simOne.rss)/float64(n-1)), "hub KB/device", kb(float64(sc.hubSim.RSS)/float64(n)))
	}
	if withNode {
		r, err := runNode(ctx, o.repo, info, devicesFile, n, dir)
		if err != nil {
			return err
		}
		sc.node = &r
		log.Info("node", "devices", n, "connect", seconds(r.Seconds).Round(time.Millisecond), "KB/device", kb(r.perDevice()))
	}
	return nil
}
