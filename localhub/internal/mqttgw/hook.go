package mqttgw

import (
	"bytes"
	"fmt"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hookConfig is what hook.Init expects.
type hookConfig struct {
	gw *Gateway
}

// hook is the gateway's only mochi hook: authentication, topic rules and
// all IoT Hub behaviour hang off it.
type hook struct {
	mqtt.HookBase
	gw *Gateway
}

func (h *hook) ID() string { return "iothub" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnPacketRead,
		mqtt.OnSubscribed,
		mqtt.OnPublish,
		mqtt.OnWillSent,
		mqtt.OnDisconnect,
	}, []byte{b})
}

func (h *hook) Init(config any) error {
	c, ok := config.(*hookConfig)
	if !ok || c.gw == nil {
		return mqtt.ErrInvalidConfigType
	}
	h.gw = c.gw
	return nil
}

// OnConnect refuses every protocol but MQTT 3.1.1, as IoT Hub does.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.ProtocolVersion == 4 {
		return nil
	}
	h.gw.log.Info("mqtt connect refused", "deviceId", cl.ID, "remote", cl.Net.Remote,
		"reason", fmt.Sprintf("MQTT protocol version %d", pk.ProtocolVersion))
	// Answer before failing: an error from OnConnect alone drops the
	// connection without a CONNACK.
	_ = h.gw.server.SendConnack(cl, packets.ErrUnsupportedProtocolVersion, false, nil)
	return packets.ErrUnsupportedProtocolVersion
}

// OnConnectAuthenticate checks username and SAS token; false makes mochi
// answer CONNACK 5 (not authorized).
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if err := h.gw.authenticate(pk); err != nil {
		h.gw.log.Info("mqtt connect refused", "deviceId", cl.ID, "remote", cl.Net.Remote, "reason", err.Error())
		return false
	}
	return true
}

// OnSessionEstablish runs after authentication, before mochi takes over
// an earlier connection of the same device. mochi's takeover writes to the
// old connection under its client lock; a device that reconnects because
// its old connection went dead must not wait for writes to that one to
// time out, so they are made to fail at once.
func (h *hook) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if old, ok := h.gw.server.Clients.Get(cl.ID); ok && old != cl {
		if tc, ok := old.Net.Conn.(*trackedConn); ok {
			tc.abortWrites()
		}
	}
}

// OnSessionEstablished runs after the CONNACK went out, once mochi has
// taken over any earlier connection of the same device.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	cred := h.gw.sessionCredentials(pk)
	s := &session{
		client:       cl,
		generationID: cred.generationID,
		authMethod:   cred.authMethod,
		modelID:      cred.modelID,
	}
	h.gw.attach(cl.ID, s)
	h.gw.expireWithToken(s, cred.tokenExpiry)
}

func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.gw.detach(cl)
}

// OnPacketRead enforces the topic rules before mochi looks at a packet.
// Returning ErrRejectPacket makes mochi close the network connection,
// which is what IoT Hub does on a forbidden topic or QoS 2 (reference
// §2.3) instead of failing the SUBACK or PUBACK.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	var err error
	switch pk.FixedHeader.Type {
	case packets.Publish:
		err = checkPublish(cl.ID, pk)
	case packets.Subscribe:
		err = checkSubscribe(cl.ID, pk)
	default:
		return pk, nil
	}
	if err != nil {
		h.gw.log.Info("mqtt device disconnected", "deviceId", cl.ID, "remote", cl.Net.Remote, "reason", err.Error())
		return pk, packets.ErrRejectPacket
	}
	h.gw.announce(cl)
	return pk, nil
}

// OnACLCheck repeats the topic rules for mochi's own checks.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if !write {
		return subscriptionAllowed(cl.ID, topic)
	}
	t, err := ParseTopic(topic)
	return err == nil && (t.Kind != TopicTelemetry || t.DeviceID == cl.ID)
}

// OnSubscribed wakes InvokeMethod calls waiting for the device to
// subscribe to $iothub/methods/POST/#.
func (h *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, _ []byte) {
	h.gw.subscriptionsChanged(cl)
}

// OnPublish consumes every device publish. CodeSuccessIgnore makes mochi
// acknowledge a QoS 1 publish but deliver it to no subscriber;
// ErrRejectPacket makes it send no PUBACK, so the device sends again.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if err := h.gw.handlePublish(cl, pk); err != nil {
		h.gw.log.Error("telemetry not stored; no PUBACK", "deviceId", cl.ID, "err", err)
		return pk, packets.ErrRejectPacket
	}
	return pk, packets.CodeSuccessIgnore
}

// OnWillSent forwards a will message as telemetry, marked as IoT Hub does.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	h.gw.handleWill(cl, pk)
}
