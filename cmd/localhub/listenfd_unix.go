//go:build unix

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// inheritedListener serves the listening TCP socket this process
// inherited as file descriptor fd. The descriptor is checked before
// anything else touches it: a number the parent did not pass may be one of
// the Go runtime's own, which closing would break.
func inheritedListener(fd int) (net.Listener, error) {
	accepting, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN)
	switch {
	case errors.Is(err, syscall.EBADF):
		return nil, fmt.Errorf("file descriptor %d is not open: the parent process must pass it", fd)
	case errors.Is(err, syscall.ENOTSOCK):
		return nil, fmt.Errorf("file descriptor %d is not a socket", fd)
	case err != nil:
		return nil, fmt.Errorf("file descriptor %d: %w", fd, err)
	case accepting == 0:
		return nil, fmt.Errorf("file descriptor %d is a socket that is not listening", fd)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("fd:%d", fd))
	// FileListener duplicates the descriptor; the original is not needed.
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("file descriptor %d: %w", fd, err)
	}
	if _, ok := ln.(*net.TCPListener); !ok {
		ln.Close()
		return nil, fmt.Errorf("file descriptor %d listens on %s, not TCP", fd, ln.Addr().Network())
	}
	return ln, nil
}
