package mqttgw

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// emitConnectionStateLocked appends a deviceConnected or
// deviceDisconnected notification (reference §4). g.mu must be held, which
// keeps one device's events in order; Enqueue orders the event without
// holding g.mu across the log's fsync.
func (g *Gateway) emitConnectionStateLocked(deviceID string, connected bool) {
	opType := "deviceDisconnected"
	if connected {
		opType = "deviceConnected"
	}
	g.events.Enqueue(eventlog.Event{
		DeviceID:        deviceID,
		Body:            fmt.Appendf(nil, `{"sequenceNumber":"%s"}`, g.connSeq.next()),
		CorrelationID:   newCorrelationID(),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		UserID:          g.hubNameBytes,
		Properties:      NotificationProperties(g.hubName, deviceID, "deviceConnectionStateNotification", opType, g.now()),
		Annotations: map[string]any{
			"iothub-connection-device-id": deviceID,
			"iothub-message-source":       eventlog.SourceConnectionState,
		},
	})
}

// sequence makes connection-state sequence numbers: 64 hex digits that
// strictly increase, also across restarts. Like IoT Hub's
// (000000000000000001D8713FF7E08514 00000002000000000000000000000007) the
// first half is a Windows file time, here of the gateway's start, and the
// second half counts. Not safe for concurrent use: g.mu guards it.
type sequence struct {
	epoch uint64
	n     uint64
}

func newSequence(start time.Time) sequence {
	// 100 ns ticks since 1601-01-01, as in the sample above.
	const unixToFileTime = 116444736000000000
	return sequence{epoch: uint64(start.UnixNano()/100) + unixToFileTime}
}

func (s *sequence) next() string {
	s.n++
	return fmt.Sprintf("%032X%032X", s.epoch, s.n)
}

// newCorrelationID returns a random UUID: every routed notification
// carries a unique correlation-id.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
