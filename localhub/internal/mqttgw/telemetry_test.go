package mqttgw

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

func TestTelemetryEvent(t *testing.T) {
	h := newTestHub(t)
	dev := h.createDevice(t, "d1")
	key := dev.Authentication.SymmetricKey.PrimaryKey

	// The Go SDK's bag: url.Values.Encode with '+' turned into %20.
	goProps := url.Values{
		"$.mid": {"m-1"}, "$.cid": {"c-1"}, "$.ct": {"application/json"}, "$.ce": {"utf-8"},
		"$.ctime": {"2024-05-01T10:00:00.123Z"}, "$.exp": {"2024-05-02T10:00:00Z"},
		"level": {"a b+c"}, "ünï": {"çødé"},
	}
	goBag := strings.ReplaceAll(goProps.Encode(), "+", "%20")

	tests := []struct {
		name      string
		topic     string
		body      string
		retain    bool
		want      eventlog.Event
		wantAnnot map[string]any
	}{
		{
			name:  "go sdk property bag",
			topic: "devices/d1/messages/events/" + goBag,
			body:  `{"t":21.5}`,
			want: eventlog.Event{
				MessageID: "m-1", CorrelationID: "c-1", ContentType: "application/json", ContentEncoding: "utf-8",
				Properties: map[string]string{"level": "a b+c", "ünï": "çødé"},
			},
			wantAnnot: map[string]any{"iothub-creation-time-utc": "2024-05-01T10:00:00.123Z"},
		},
		{
			name:  "node sdk property bag with user id, no value and $.ifid",
			topic: "devices/d1/messages/events/%24.mid=42&%24.uid=alice&%24.ifid=urn%3Ax&flag&%24.sub=thermostat1",
			body:  "raw",
			want: eventlog.Event{
				MessageID: "42", UserID: []byte("alice"),
				Properties: map[string]string{"flag": ""},
			},
			wantAnnot: map[string]any{"dt-subject": "thermostat1"},
		},
		{
			name:   "no bag, retained",
			topic:  "devices/d1/messages/events/",
			body:   "",
			retain: true,
			want:   eventlog.Event{Properties: map[string]string{"mqtt-retain": "true"}},
		},
	}
	d := h.connect(t, "d1", key)
	d.subscribe(t, methodsFilter, 0)
	events := h.eventsOf("d1")
	require.Equal(t, "deviceConnected", events.nextEvent(t).Properties["opType"])
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait(t, d.Publish(tt.topic, 1, tt.retain, []byte(tt.body)))
			got := events.nextEvent(t)

			require.Equal(t, "d1", got.DeviceID)
			require.Equal(t, tt.body, string(got.Body))
			require.Equal(t, tt.want.MessageID, got.MessageID)
			require.Equal(t, tt.want.CorrelationID, got.CorrelationID)
			require.Equal(t, tt.want.ContentType, got.ContentType)
			require.Equal(t, tt.want.ContentEncoding, got.ContentEncoding)
			require.Equal(t, tt.want.UserID, got.UserID)
			require.Equal(t, tt.want.Properties, got.Properties)

			wantAnnot := map[string]any{
				"iothub-connection-device-id":          "d1",
				"iothub-connection-auth-generation-id": dev.GenerationID,
				"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
				"iothub-message-source":                "Telemetry",
			}
			for k, v := range tt.wantAnnot {
				wantAnnot[k] = v
			}
			for k, v := range wantAnnot {
				require.Equal(t, v, got.Annotations[k], "annotation %s", k)
			}
			for _, k := range []string{"$.exp", "$.ifid", "$.to"} {
				require.NotContains(t, got.Properties, k)
			}
		})
	}
}

func TestTelemetryTouchesActivity(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	before, err := h.reg.GetDevice("d1")
	require.NoError(t, err)

	d := h.connect(t, "d1", key)
	wait(t, d.Publish("devices/d1/messages/events/", 1, false, "x"))
	after, err := h.reg.GetDevice("d1")
	require.NoError(t, err)
	require.True(t, after.LastActivityTime.After(before.LastActivityTime))
	require.Equal(t, "Connected", after.ConnectionState)
}

func TestTelemetryWithPolicyTokenAndModelID(t *testing.T) {
	h := newTestHub(t)
	h.createDevice(t, "d1")
	policy, ok := h.reg.Policy("device")
	require.True(t, ok)
	const model = "dtmi:com:example:Thermostat;1"
	d := h.connect(t, "d1", "", withCredentials(
		testHost+"/d1/"+goAPIVersion+"&model-id="+url.QueryEscape(model),
		policyToken(t, "device", policy.PrimaryKey)))

	wait(t, d.Publish("devices/d1/messages/events/", 1, false, "x"))
	events := h.eventsOf("d1")
	events.nextEvent(t) // deviceConnected
	got := events.nextEvent(t)
	require.Equal(t, model, got.Annotations["dt-dataschema"])
	require.Equal(t, `{"scope":"hub","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
		got.Annotations["iothub-connection-auth-method"])
}

// IoT Hub stores no retained message, and neither does the gateway, not
// even mochi's own $SYS topics: with one retained, mochi searches the
// topic tree for retained messages on every SUBSCRIBE.
func TestNothingIsRetained(t *testing.T) {
	h := newTestHub(t)
	require.Zero(t, h.gw.server.Topics.Retained.Len(), "after Start")
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	d.subscribe(t, methodsFilter, 0)
	wait(t, d.Publish("devices/d1/messages/events/", 1, true, []byte(`{"n":1}`)))
	require.Zero(t, h.gw.server.Topics.Retained.Len(), "after a retained publish")
}
