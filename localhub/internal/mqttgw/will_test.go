package mqttgw

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWillBecomesTelemetry: a connection that ends without DISCONNECT
// publishes its will, which IoT Hub forwards as telemetry marked
// iothub-MessageType=Will.
func TestWillBecomesTelemetry(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	conn, err := tls.Dial("tcp", h.addr, h.tls)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitLimit)))

	_, err = conn.Write(connectWithWill("d1", testHost+"/d1/"+goAPIVersion, goToken(t, key),
		"devices/d1/messages/events/%24.mid=will-1&reason=gone", "bye"))
	require.NoError(t, err)
	connack := make([]byte, 4)
	_, err = io.ReadFull(conn, connack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, connack, "CONNACK accepted")
	require.NoError(t, conn.Close()) // no DISCONNECT: the will goes out

	e := h.eventsOf("d1").nextEvent(t)
	require.Equal(t, "bye", string(e.Body))
	require.Equal(t, "will-1", e.MessageID)
	require.Equal(t, map[string]string{"reason": "gone", "iothub-MessageType": "Will"}, e.Properties)
	require.Equal(t, "Telemetry", e.Annotations["iothub-message-source"])
}

// connectWithWill encodes an MQTT 3.1.1 CONNECT (clean session, QoS 0
// will, keep-alive 60).
func connectWithWill(clientID, user, password, willTopic, willMessage string) []byte {
	field := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	const flags = 0x80 | 0x40 | 0x04 | 0x02 // username, password, will, clean
	body := field(nil, "MQTT")
	body = append(body, 4, flags, 0, 60)
	for _, s := range []string{clientID, willTopic, willMessage, user, password} {
		body = field(body, s)
	}
	pk := []byte{0x10}
	for n := len(body); ; {
		b := byte(n % 128)
		if n /= 128; n > 0 {
			b |= 0x80
		}
		pk = append(pk, b)
		if n == 0 {
			break
		}
	}
	return append(pk, body...)
}

func TestWillOnForeignTopicRefused(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	conn, err := tls.Dial("tcp", h.addr, h.tls)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(waitLimit)))

	_, err = conn.Write(connectWithWill("d1", testHost+"/d1/"+goAPIVersion, goToken(t, key), "devices/d2/messages/events/", "x"))
	require.NoError(t, err)
	connack := make([]byte, 4)
	_, err = io.ReadFull(conn, connack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 5}, connack, "CONNACK not authorized")
}
