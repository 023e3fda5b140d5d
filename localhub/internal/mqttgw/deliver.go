package mqttgw

import (
	"fmt"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// deliver writes a PUBLISH to one client. A broadcast through mochi would
// reach every device subscribed to the same filter, so the gateway writes
// the packet itself; at QoS 1 it registers the packet as in flight the way
// mochi does, so the device's PUBACK (or a resend after a persistent
// session resumes) is handled by mochi.
func (g *Gateway) deliver(cl *mqtt.Client, topic string, payload []byte, qos byte) error {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos},
		TopicName:   topic,
		Payload:     payload,
		Created:     g.now().Unix(),
	}
	if qos > 0 {
		id, err := cl.NextPacketID()
		if err != nil {
			return fmt.Errorf("deliver %s: %w", topic, err)
		}
		pk.PacketID = uint16(id)
		if cl.State.Inflight.Set(pk) {
			atomic.AddInt64(&g.server.Info.Inflight, 1)
			cl.State.Inflight.DecreaseSendQuota()
		}
	}
	if err := cl.WritePacket(pk); err != nil {
		return fmt.Errorf("deliver %s: %w", topic, err)
	}
	return nil
}

// grantedQoS is the QoS to deliver at on filter: min(granted, 1), or false
// when the client is not subscribed to it.
func grantedQoS(cl *mqtt.Client, filter string) (byte, bool) {
	sub, ok := cl.State.Subscriptions.Get(filter)
	if !ok {
		return 0, false
	}
	return min(sub.Qos, 1), true
}
