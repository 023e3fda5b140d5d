package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// status is what /proc/PID/status says about a process's memory.
type status struct {
	rss, anon int64 // bytes
}

// readStatus reads VmRSS and RssAnon of pid. The harness measures memory
// the way the issue states its targets, as resident set size, so it needs
// Linux's /proc.
func readStatus(pid int) (status, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return status{}, fmt.Errorf("resident memory (the harness needs Linux /proc): %w", err)
	}
	var st status
	for line := range strings.Lines(string(b)) {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &st.rss
		case "RssAnon":
			dst = &st.anon
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return status{}, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
		}
		*dst = kb * 1024
	}
	if st.rss == 0 {
		return status{}, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return st, nil
}

// cpuTime is the CPU time (user and system, all threads) pid has used.
// /proc/PID/stat counts it in clock ticks, 100 a second on Linux.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields count from its end.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// ensureOpenFiles makes sure this process may hold need descriptors,
// raising its soft limit towards the hard one. Go already raises the soft
// limit at start-up on Linux, but restores the original one for the
// processes it starts (Node.js among them), so the harness checks the
// hard limit, which children inherit as their ceiling, up front.
func ensureOpenFiles(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open files limit: %w", err)
	}
	if lim.Max < need {
		return fmt.Errorf("%d devices need about %d open files per process, and the hard limit is %d: raise it (ulimit -Hn, or LimitNOFILE in a systemd unit) or run fewer devices", need-fileMargin, need, lim.Max)
	}
	if lim.Cur < need {
		lim.Cur = min(max(need, lim.Cur), lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raise the open files limit to %d: %w", lim.Cur, err)
		}
	}
	return nil
}

// fileMargin is the descriptors a process needs besides its connections.
const fileMargin = 512

// checkEphemeralPorts fails early when loopback cannot hold n client
// connections to one server port at once.
func checkEphemeralPorts(n int) error {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return nil // not Linux; the dials will say
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return nil
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil {
		return nil
	}
	if hi-lo+1 < n+fileMargin {
		return fmt.Errorf("%d devices need %d ephemeral ports and net.ipv4.ip_local_port_range (%d-%d) has %d", n, n+fileMargin, lo, hi, hi-lo+1)
	}
	return nil
}

// machine describes where the figures were measured.
type machine struct {
	Cores     int
	CPU       string
	MemoryGB  float64
	GoVersion string
	OS        string
	Commit    string
	Date      time.Time
	Load      string // load averages at the start of the run
}

func describeMachine(repo string) machine {
	m := machine{
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		Date:      time.Now().UTC(),
		CPU:       "unknown CPU",
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.Join(strings.Fields(v), " ")
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemoryGB = kb / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	m.Commit = gitCommit(repo)
	return m
}

// gitCommit is the commit being measured, marked "+dirty" when the work
// tree has changes, so a row never claims a commit it was not measured at.
func gitCommit(repo string) string {
	git := func(args ...string) ([]byte, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		return cmd.Output()
	}
	out, err := git("rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && len(bytes.TrimSpace(st)) > 0 {
		c += "+dirty"
	}
	return c
}
