package mqttgw

import (
	"errors"
	"fmt"

	"github.com/mochi-mqtt/server/v2/packets"
)

// checkPublish applies IoT Hub's rules to a device's PUBLISH.
func checkPublish(deviceID string, pk packets.Packet) error {
	if pk.FixedHeader.Qos > 1 {
		return errors.New("QoS 2 publish")
	}
	t, err := ParseTopic(pk.TopicName)
	if err != nil {
		return err
	}
	if t.Kind != TopicTelemetry {
		return nil
	}
	if t.DeviceID != deviceID {
		return fmt.Errorf("publish to device %q's telemetry topic", t.DeviceID)
	}
	if len(pk.Payload) > MaxTelemetryBody {
		return fmt.Errorf("telemetry body of %d bytes exceeds %d", len(pk.Payload), MaxTelemetryBody)
	}
	return nil
}

// checkSubscribe applies IoT Hub's rules to a SUBSCRIBE and grants QoS 2
// requests QoS 1, editing pk.Filters in place.
func checkSubscribe(deviceID string, pk packets.Packet) error {
	for i := range pk.Filters {
		f := &pk.Filters[i]
		if !subscriptionAllowed(deviceID, f.Filter) {
			return fmt.Errorf("subscribe to %q", f.Filter)
		}
		if f.Qos > 1 {
			f.Qos = 1
		}
	}
	return nil
}
