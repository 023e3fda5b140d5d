package mqttgw

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothub-reboot/devmgmt/localhub/internal/routing"
)

// handlePublish acts on a PUBLISH that passed checkPublish. An error means
// the telemetry is not stored, so the device must get no PUBACK.
func (g *Gateway) handlePublish(cl *mqtt.Client, pk packets.Packet) error {
	t, err := ParseTopic(pk.TopicName)
	if err != nil {
		return nil // checkPublish already refused it
	}
	g.registry.TouchActivity(cl.ID, g.now())
	switch t.Kind {
	case TopicTelemetry:
		if s := g.sessionOf(cl); s != nil {
			if err := g.router.Telemetry(s.telemetry(t.Properties, pk.Payload, pk.FixedHeader.Retain, false)); err != nil {
				return err
			}
		}
	case TopicMethodResponse:
		g.methodResponse(cl.ID, t, pk.Payload)
	case TopicTwinGet:
		g.twinGet(cl, t.RID)
	case TopicTwinPatchReported:
		g.twinPatchReported(cl, t.RID, pk.Payload)
	}
	return nil
}

// handleWill forwards a will message (sent because the connection ended
// without DISCONNECT) as telemetry with iothub-MessageType=Will.
func (g *Gateway) handleWill(cl *mqtt.Client, pk packets.Packet) {
	t, err := ParseTopic(pk.TopicName)
	s := g.sessionOf(cl)
	if err != nil || t.Kind != TopicTelemetry || t.DeviceID != cl.ID || s == nil {
		return
	}
	if err := g.router.Telemetry(s.telemetry(t.Properties, pk.Payload, false, true)); err != nil {
		g.log.Warn("will message not stored", "deviceId", cl.ID, "err", err)
	}
}

// telemetry is a message the session's device sent, for the router.
func (s *session) telemetry(props []Property, body []byte, retain, will bool) routing.Telemetry {
	return routing.Telemetry{
		DeviceID:     s.client.ID,
		GenerationID: s.generationID,
		AuthMethod:   s.authMethod,
		ModelID:      s.modelID,
		Properties:   props,
		Body:         body,
		Retain:       retain,
		Will:         will,
	}
}
