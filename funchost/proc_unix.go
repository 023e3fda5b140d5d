//go:build unix && !linux

package funchost

import (
	"os"
	"syscall"
)

// childProcAttr puts the handler in its own process group, so a Ctrl+C in
// the terminal reaches the host alone and the host stops the handler in
// order.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
