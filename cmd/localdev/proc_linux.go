package main

import (
	"os"
	"syscall"
)

// childProcAttr puts the simulator in its own process group, so a Ctrl+C
// in the terminal reaches localdev alone, which stops it in order; the
// kernel ends it if localdev dies without doing so.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
