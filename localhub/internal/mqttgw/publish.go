package mqttgw

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
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
		s := g.sessionOf(cl)
		if s == nil {
			return nil
		}
		e := telemetryEvent(s, cl.ID, t.Properties, pk.Payload)
		if pk.FixedHeader.Retain {
			setProperty(&e, "mqtt-retain", "true")
		}
		if _, err := g.events.Append(e); err != nil {
			return err
		}
	case TopicMethodResponse:
		g.methodResponse(cl, t, pk.Payload)
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
	e := telemetryEvent(s, cl.ID, t.Properties, pk.Payload)
	setProperty(&e, "iothub-MessageType", "Will")
	if _, err := g.events.Append(e); err != nil {
		g.log.Warn("will message not stored", "deviceId", cl.ID, "err", err)
	}
}

// telemetryEvent builds the event IoT Hub routes for a device-to-cloud
// message. System properties in the bag become AMQP properties:
// $.mid message-id, $.cid correlation-id, $.ct content-type, $.ce
// content-encoding, $.uid user-id. $.ctime becomes the annotation
// iothub-creation-time-utc and $.sub dt-subject; the model id from the
// CONNECT username becomes dt-dataschema. Other system properties ($.to,
// $.exp, $.ifid, ...) are dropped. Everything else is an application
// property.
func telemetryEvent(s *session, deviceID string, props []Property, body []byte) eventlog.Event {
	e := eventlog.Event{
		DeviceID: deviceID,
		Body:     body,
		Annotations: map[string]any{
			"iothub-connection-device-id":          deviceID,
			"iothub-connection-auth-generation-id": s.generationID,
			"iothub-connection-auth-method":        s.authMethod,
			"iothub-message-source":                eventlog.SourceTelemetry,
		},
	}
	if s.modelID != "" {
		e.Annotations["dt-dataschema"] = s.modelID
	}
	for _, p := range props {
		switch p.Key {
		case "$.mid":
			e.MessageID = p.Value
		case "$.cid":
			e.CorrelationID = p.Value
		case "$.ct":
			e.ContentType = p.Value
		case "$.ce":
			e.ContentEncoding = p.Value
		case "$.uid":
			e.UserID = []byte(p.Value)
		case "$.ctime":
			e.Annotations["iothub-creation-time-utc"] = p.Value
		case "$.sub":
			e.Annotations["dt-subject"] = p.Value
		default:
			if !strings.HasPrefix(p.Key, "$.") {
				setProperty(&e, p.Key, p.Value)
			}
		}
	}
	return e
}

func setProperty(e *eventlog.Event, k, v string) {
	if e.Properties == nil {
		e.Properties = make(map[string]string)
	}
	e.Properties[k] = v
}
