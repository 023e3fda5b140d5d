//go:build !unix

package main

import (
	"os"
	"syscall"
)

func childProcAttr() *syscall.SysProcAttr { return nil }

// terminate kills the process: there is no SIGTERM to send.
func terminate(p *os.Process) error { return p.Kill() }
