package localhub_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
)

// TestMethodPayloadAsDevicesReceiveIt: what a device receives over MQTT
// for each form of the service's payload (docs/architecture.md, "Direct
// method payloads as devices receive them"): an explicit null arrives as
// null (Microsoft's Node device SDK runs JSON.parse on any body), no
// payload member as an empty body, and JSON as it was sent.
func TestMethodPayloadAsDevicesReceiveIt(t *testing.T) {
	hub := localhubtest.New(t, nil)
	svc := newService(t, hub)
	dev := localhubtest.NewDevice(t, hub, "d1", localhubtest.Reply(200, `"ok"`))

	for _, tt := range []struct {
		name, request, want string
	}{
		{"explicit null", `{"methodName":"reboot","payload":null}`, `null`},
		{"no payload member", `{"methodName":"reboot"}`, ``},
		{"empty object", `{"methodName":"reboot","payload":{}}`, `{}`},
		{"object", `{"methodName":"reboot","payload":{"delay":5}}`, `{"delay":5}`},
		{"string", `{"methodName":"reboot","payload":"now"}`, `"now"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body, _ := svc.do(http.MethodPost, "/twins/d1/methods", tt.request)
			require.Equal(t, http.StatusOK, status, "%s", body)
			require.JSONEq(t, `{"status":200,"payload":"ok"}`, body)
			call := dev.NextCall(t)
			require.Equal(t, "reboot", call.Name)
			require.Equal(t, tt.want, string(call.Payload))
		})
	}
}
