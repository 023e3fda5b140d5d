//go:build unix

package main

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// rawFD is a duplicate of f's descriptor that no *os.File owns, as a
// process inherits it: inheritedListener closes the number it is given.
func rawFD(t *testing.T, f interface{ Fd() uintptr }) int {
	t.Helper()
	fd, err := syscall.Dup(int(f.Fd()))
	require.NoError(t, err)
	return fd
}

func TestInheritedListener(t *testing.T) {
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer ln.Close()
	f, err := ln.File()
	require.NoError(t, err)
	fd := rawFD(t, f)
	require.NoError(t, f.Close())

	got, err := inheritedListener(fd)
	require.NoError(t, err)
	defer got.Close()
	require.Equal(t, ln.Addr().String(), got.Addr().String())
	accepted := make(chan error, 1)
	go func() {
		c, err := got.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, <-accepted, "the inherited socket accepts")
}

func TestInheritedListenerRefusesWhatIsNoListeningSocket(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "f"))
	require.NoError(t, err)
	defer file.Close()
	unbound, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	require.NoError(t, err)
	defer syscall.Close(unbound)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer udp.Close()
	udpFile, err := udp.File()
	require.NoError(t, err)
	defer udpFile.Close()

	for name, tt := range map[string]struct {
		fd      int
		wantErr string
	}{
		// Descriptors the parent did not pass are left alone: closing one
		// could close the Go runtime's own.
		"not open":    {1 << 20, "file descriptor 1048576 is not open"},
		"a file":      {int(file.Fd()), "is not a socket"},
		"unbound TCP": {unbound, "is a socket that is not listening"},
		"UDP":         {int(udpFile.Fd()), "is a socket that is not listening"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := inheritedListener(tt.fd)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	// None of them was closed.
	_, err = file.Stat()
	require.NoError(t, err)
	_, err = syscall.GetsockoptInt(unbound, syscall.SOL_SOCKET, syscall.SO_TYPE)
	require.NoError(t, err)
}

// TestServeOnInheritedSockets runs "localhub serve --mqtt-addr fd:3 ..."
// with four sockets this test bound: the hub serves them, says so, and a
// service reaches it there.
func TestServeOnInheritedSockets(t *testing.T) {
	var files []*os.File
	var addrs []string
	for range 4 {
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		defer ln.Close()
		f, err := ln.File()
		require.NoError(t, err)
		defer f.Close()
		files, addrs = append(files, f), append(addrs, ln.Addr().String())
	}
	dataDir := t.TempDir()
	p := startHubProcessWith(t, dataDir, []string{"--mqtt-addr", "fd:3", "--https-addr", "fd:4", "--amqp-addr", "fd:5", "--amqp-plain-addr", "fd:6"}, files)
	require.Equal(t, "https://"+addrs[1], p.httpsURL)

	ctx := t.Context()
	_, err := localhub.CreateDeviceIn(ctx, dataDir, "dev-fd")
	require.NoError(t, err)
	twin, err := p.client(t, dataDir, "iothubowner").GetTwin(ctx, "dev-fd", nil)
	require.NoError(t, err)
	require.Equal(t, "dev-fd", twin.Twin.DeviceID)

	info, err := os.ReadFile(filepath.Join(dataDir, "run.json"))
	require.NoError(t, err)
	for _, a := range addrs {
		require.Contains(t, string(info), a, "run.json names every inherited socket's address")
	}
}
