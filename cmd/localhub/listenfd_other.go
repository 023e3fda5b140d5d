//go:build !unix

package main

import (
	"fmt"
	"net"
	"runtime"
)

// inheritedListener: passing listening sockets by descriptor number is a
// Unix convention.
func inheritedListener(fd int) (net.Listener, error) {
	return nil, fmt.Errorf("fd:%d: inherited sockets are not supported on %s", fd, runtime.GOOS)
}
