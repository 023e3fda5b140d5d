package localhub_test

import (
	"errors"
	"net"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestStartServesGivenListeners: sockets the caller listens on replace the
// addresses, which are ignored, and the hub closes them on Close.
func TestStartServesGivenListeners(t *testing.T) {
	t.Parallel()
	mqtt, https, amqps, amqp := loopbackListener(t), loopbackListener(t), loopbackListener(t), loopbackListener(t)
	hub := localhubtest.New(t, &localhub.Options{
		MQTTAddr: "192.0.2.1:1", HTTPSAddr: "192.0.2.1:2", AMQPAddr: "192.0.2.1:3", AMQPPlainAddr: "off",
		MQTTListener: mqtt, HTTPSListener: https, AMQPListener: amqps, AMQPPlainListener: amqp,
	})
	require.Equal(t, mqtt.Addr().String(), hub.MQTTAddr())
	require.Equal(t, "https://"+https.Addr().String(), hub.HTTPSURL())
	require.Equal(t, amqps.Addr().String(), hub.AMQPAddr())
	require.Equal(t, amqp.Addr().String(), hub.AMQPPlainAddr())

	localhubtest.NewDevice(t, hub, "d1", localhubtest.Reply(200, `"ok"`))
	status, body, _ := newService(t, hub).do(http.MethodPost, "/twins/d1/methods", `{"methodName":"ping"}`)
	require.Equal(t, http.StatusOK, status, "%s", body)

	require.NoError(t, hub.Close())
	for _, ln := range []net.Listener{mqtt, https, amqps, amqp} {
		_, err := ln.Accept()
		require.True(t, errors.Is(err, net.ErrClosed), "%s: %v", ln.Addr(), err)
	}
}

// TestStartRefusesARemotePlainListener: a given plain AMQP socket is held
// to the loopback rule as an address is; a failed Start closes every
// socket it was given.
func TestStartRefusesARemotePlainListener(t *testing.T) {
	t.Parallel()
	remote, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	defer remote.Close()
	mqtt := loopbackListener(t)
	_, err = localhub.Start(t.Context(), localhub.Options{AMQPPlainListener: remote, MQTTListener: mqtt})
	require.ErrorContains(t, err, "not a loopback address")
	for _, ln := range []net.Listener{remote, mqtt} {
		_, err := ln.Accept()
		require.True(t, errors.Is(err, net.ErrClosed), "%s: %v", ln.Addr(), err)
	}
}
