package mqttgw

import (
	"encoding/json"
	"errors"
	"net/http"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// twinGet answers $iothub/twin/GET with the desired and reported
// properties.
func (g *Gateway) twinGet(cl *mqtt.Client, rid string) {
	body, err := g.registry.DeviceTwin(cl.ID)
	if err != nil {
		g.twinFailed(cl, rid, err)
		return
	}
	g.twinRespond(cl, http.StatusOK, rid, 0, body)
}

// twinPatchReported applies a reported-properties patch and answers 204
// with the new reported $version.
func (g *Gateway) twinPatchReported(cl *mqtt.Client, rid string, patch []byte) {
	version, err := g.registry.PatchReported(cl.ID, json.RawMessage(patch))
	if err != nil {
		g.twinFailed(cl, rid, err)
		return
	}
	g.twinRespond(cl, http.StatusNoContent, rid, version, nil)
}

// twinError is the error body of a twin response. The Node SDK fails a
// request only when the body has an errorCode member (reference §2.5).
type twinError struct {
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
}

func (g *Gateway) twinFailed(cl *mqtt.Client, rid string, err error) {
	status := http.StatusInternalServerError
	body := twinError{ErrorCode: 500001, Message: "internal server error"}
	var invalid *registry.InvalidError
	switch {
	case errors.As(err, &invalid):
		status = http.StatusBadRequest
		body = twinError{ErrorCode: 400004, Message: invalid.Msg} // ArgumentInvalid
		if invalid.Reason == registry.ReasonFormat {
			body.ErrorCode = 400006 // IotHubFormatError
		}
	case errors.Is(err, registry.ErrDeviceNotFound):
		status = http.StatusNotFound
		body = twinError{ErrorCode: 404001, Message: err.Error()}
	default:
		g.log.Error("twin request failed", "deviceId", cl.ID, "err", err)
	}
	b, _ := json.Marshal(body)
	g.twinRespond(cl, status, rid, 0, b)
}

// twinRespond queues $iothub/twin/res/{status}/?$rid={rid}[&$version=n]
// for the requesting client only, and only if it subscribed to
// $iothub/twin/res/#: IoT Hub requires the subscription.
func (g *Gateway) twinRespond(cl *mqtt.Client, status int, rid string, version int64, body []byte) {
	qos, ok := grantedQoS(cl, twinResFilter)
	if !ok {
		g.log.Debug("twin response dropped: not subscribed", "deviceId", cl.ID, "rid", rid)
		return
	}
	s := g.sessionOf(cl)
	if s == nil {
		return
	}
	if err := g.send(s, outPacket{topic: twinResponseTopic(status, rid, version), payload: body, qos: qos}); err != nil {
		g.log.Debug("twin response not delivered", "deviceId", cl.ID, "err", err)
	}
}

// SendDesired queues a desired-properties notification for the device if
// it is connected and subscribed to $iothub/twin/PATCH/properties/desired/#.
// It never waits for the device: the registry calls it under the device's
// lock.
func (g *Gateway) SendDesired(deviceID string, version int64, body []byte) {
	s := g.liveSession(deviceID)
	if s == nil {
		return
	}
	qos, ok := grantedQoS(s.client, desiredFilter)
	if !ok {
		return
	}
	if err := g.send(s, outPacket{topic: desiredTopic(version), payload: body, qos: qos}); err != nil {
		g.log.Debug("desired properties not delivered", "deviceId", deviceID, "err", err)
	}
}
