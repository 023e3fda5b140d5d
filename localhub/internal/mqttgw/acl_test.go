package mqttgw

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestForbiddenTrafficDisconnects(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	h.createDevice(t, "d2")

	tests := []struct {
		name string
		act  func(d *testDevice)
	}{
		{"publish to another device's telemetry", func(d *testDevice) {
			d.Publish("devices/d2/messages/events/", 1, false, "x")
		}},
		{"publish to an unknown topic", func(d *testDevice) {
			d.Publish("foo/bar", 0, false, "x")
		}},
		{"publish telemetry without the trailing level", func(d *testDevice) {
			d.Publish("devices/d1/messages/events", 1, false, "x")
		}},
		{"QoS 2 publish", func(d *testDevice) {
			d.Publish("devices/d1/messages/events/", 2, false, "x")
		}},
		{"telemetry over 256 KB", func(d *testDevice) {
			d.Publish("devices/d1/messages/events/", 1, false, make([]byte, MaxTelemetryBody+1))
		}},
		{"subscribe to everything", func(d *testDevice) {
			d.Subscribe("#", 1, nil)
		}},
		{"subscribe to another device's cloud-to-device messages", func(d *testDevice) {
			d.Subscribe("devices/d2/messages/devicebound/#", 1, nil)
		}},
		{"subscribe to a twin topic IoT Hub does not offer", func(d *testDevice) {
			d.Subscribe("$iothub/twin/PATCH/properties/reported/#", 1, nil)
		}},
		{"one bad filter among good ones", func(d *testDevice) {
			d.SubscribeMultiple(map[string]byte{methodsFilter: 0, "$iothub/#": 0}, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := h.connect(t, "d1", key)
			tt.act(d)
			d.requireLost(t)
		})
	}
}

func TestAllowedSubscriptions(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)

	tok := d.SubscribeMultiple(map[string]byte{
		"devices/d1/messages/devicebound/#": 1,
		methodsFilter:                       0,
		twinResFilter:                       2,
		desiredFilter:                       1,
	}, nil)
	wait(t, tok)
	granted := tok.(interface{ Result() map[string]byte }).Result()
	require.Equal(t, map[string]byte{
		"devices/d1/messages/devicebound/#": 1,
		methodsFilter:                       0,
		twinResFilter:                       1, // QoS 2 is granted QoS 1
		desiredFilter:                       1,
	}, granted)
	require.True(t, d.IsConnectionOpen())
}

func TestSubscriptionAllowed(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"$iothub/methods/POST/#", true},
		{"$iothub/twin/res/#", true},
		{"$iothub/twin/PATCH/properties/desired/#", true},
		{"devices/d1/messages/devicebound/#", true},
		{"devices/d2/messages/devicebound/#", false},
		{"devices/d1x/messages/devicebound/#", false},
		{"devices/d1/messages/devicebound/", false},
		{"devices/+/messages/devicebound/#", false},
		{"$iothub/methods/POST/reboot", false},
		{"#", false},
		{"", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, subscriptionAllowed("d1", tt.filter), "subscriptionAllowed(d1, %q)", tt.filter)
	}
}
