package main

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// simulatorRun is one run of the simulator command, measured from outside.
type simulatorRun struct {
	devices int
	connect time.Duration // as the simulator reports it: first dial to all connected
	rss     int64         // resident set once connected (the simulator has returned the connect storm's memory)
	cpu     time.Duration // CPU time the simulator used until then
}

// buildSimulator builds the simulator (its own module) into dir.
func buildSimulator(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "simulator")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/simulator")
	cmd.Dir = filepath.Join(repo, "simulator")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the simulator: %w\n%s", err, out)
	}
	return bin, nil
}

// runSimulator runs bin with the first n devices of devicesFile against the
// hub, waits for its "connected" line, measures it and stops it with
// SIGTERM, as a user would. then, when not nil, runs while every device is
// connected.
func runSimulator(ctx context.Context, bin string, flags []string, info hubInfo, devicesFile string, n int, dir string, then func() error) (simulatorRun, error) {
	file, err := firstLines(devicesFile, n, dir)
	if err != nil {
		return simulatorRun{}, err
	}
	args := append([]string{"--devices-file", file, "--mqtt-addr", info.MQTTAddr, "--ca-file", info.CAFile,
		"--progress", "0", "--log-level", "warn", "--seed", "1"}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return simulatorRun{}, err
	}
	if err := cmd.Start(); err != nil {
		return simulatorRun{}, err
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	stop := func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		for range lines {
		}
		select {
		case err := <-exited:
			return err
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			return errors.New("the simulator did not stop on SIGTERM")
		}
	}

	run := simulatorRun{devices: n}
	timeout := time.NewTimer(5 * time.Minute)
	defer timeout.Stop()
	for run.connect == 0 {
		select {
		case line, ok := <-lines:
			if !ok {
				return simulatorRun{}, fmt.Errorf("the simulator exited before connecting its devices: %v", <-exited)
			}
			if took, ok := connectedLine(line); ok {
				run.connect = took
			}
		case <-timeout.C:
			_ = stop()
			return simulatorRun{}, fmt.Errorf("the simulator did not connect %d devices in 5 minutes", n)
		case <-ctx.Done():
			_ = stop()
			return simulatorRun{}, ctx.Err()
		}
	}
	st, err := readStatus(cmd.Process.Pid)
	if err == nil {
		run.cpu, err = cpuTime(cmd.Process.Pid)
	}
	if err == nil && then != nil {
		err = then()
	}
	run.rss = st.rss
	if stopErr := stop(); err == nil && stopErr != nil {
		err = fmt.Errorf("simulator: %w", stopErr)
	}
	return run, err
}

// connectedLine reads the simulator's "connected devices=N ... took=D"
// line.
func connectedLine(line string) (time.Duration, bool) {
	f := strings.Fields(line)
	if len(f) < 2 || f[1] != "connected" {
		return 0, false
	}
	for _, kv := range f[2:] {
		if v, ok := strings.CutPrefix(kv, "took="); ok {
			d, err := time.ParseDuration(v)
			return d, err == nil
		}
	}
	return 0, false
}

// firstLines writes the first n lines of path to a file in dir.
func firstLines(path string, n int, dir string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	lines := strings.SplitAfter(string(b), "\n")
	if len(lines) < n {
		return "", fmt.Errorf("%s has %d devices, not %d", path, len(lines), n)
	}
	out := filepath.Join(dir, "devices-"+strconv.Itoa(n)+".txt")
	return out, os.WriteFile(out, []byte(strings.Join(lines[:n], "")), 0o600)
}

//go:embed nodedevices.js
var nodeDevicesJS []byte

// nodeSDK is where Microsoft's Node.js SDKs are installed: the
// conformance suite's pinned copy (make test, or npm ci there, installs
// it).
const nodeSDK = "conformance/node/node_modules"

// nodeRun is Microsoft's Node.js device SDK connecting the same devices.
type nodeRun struct {
	Devices int     `json:"devices"`
	RSSOne  int64   `json:"rssOne"`
	RSSAll  int64   `json:"rssAll"`
	Seconds float64 `json:"seconds"`
}

func (r nodeRun) perDevice() float64 { return float64(r.RSSAll-r.RSSOne) / float64(r.Devices-1) }

// nodeAvailable says why the Node.js comparison cannot run, or "".
func nodeAvailable(repo string) string {
	if _, err := exec.LookPath("node"); err != nil {
		return "Node.js is not installed"
	}
	if _, err := os.Stat(filepath.Join(repo, nodeSDK, "azure-iot-device-mqtt")); err != nil {
		return "Microsoft's Node.js SDKs are not installed (npm ci in conformance/node, or make test, installs them)"
	}
	return ""
}

// runNode connects the first n devices with the Node.js SDK.
func runNode(ctx context.Context, repo string, info hubInfo, devicesFile string, n int, dir string) (nodeRun, error) {
	script := filepath.Join(dir, "nodedevices.js")
	if err := os.WriteFile(script, nodeDevicesJS, 0o600); err != nil {
		return nodeRun{}, err
	}
	sdk, err := filepath.Abs(filepath.Join(repo, nodeSDK))
	if err != nil {
		return nodeRun{}, err
	}
	// Node inherits the soft open-files limit Go had before raising its
	// own; the shell raises it to the hard limit for node.
	cmd := exec.Command("sh", "-c", `ulimit -n "$(ulimit -Hn)" && exec node --expose-gc "$0"`, script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+sdk, "NODE_EXTRA_CA_CERTS="+info.CAFile,
		"DEVICES_FILE="+devicesFile, "COUNT="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nodeRun{}, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nodeRun{}, err
	}
	if err := cmd.Start(); err != nil {
		return nodeRun{}, err
	}
	got := make(chan error, 1)
	var run nodeRun
	go func() {
		line, err := bufio.NewReader(out).ReadBytes('\n')
		if err == nil {
			err = decodeJSON(line, &run)
		}
		got <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err = <-got:
	case <-time.After(10 * time.Minute):
		err = errors.New("the Node.js devices did not connect in 10 minutes")
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = in.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
	}
	if err != nil {
		return nodeRun{}, fmt.Errorf("node: %w", err)
	}
	return run, nil
}
