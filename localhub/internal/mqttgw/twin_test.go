package mqttgw

import (
	"encoding/json"
	"strconv"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// twinResponse is a parsed $iothub/twin/res/{status}/?$rid=..&$version=..
type twinResponse struct {
	status  int
	rid     string
	version string
	body    []byte
}

func parseTwinResponse(t *testing.T, m paho.Message) twinResponse {
	t.Helper()
	rest := m.Topic()[len(twinResPrefix):]
	status, query, ok := cutByte(rest, '/')
	require.True(t, ok, "topic %q", m.Topic())
	code, err := strconv.Atoi(status)
	require.NoError(t, err)
	require.Equal(t, byte('?'), query[0], "topic %q", m.Topic())
	props, err := parseBag(query[1:])
	require.NoError(t, err)
	r := twinResponse{status: code, body: m.Payload()}
	for _, p := range props {
		switch p.Key {
		case "$rid":
			r.rid = p.Value
		case "$version":
			r.version = p.Value
		}
	}
	return r
}

func cutByte(s string, b byte) (before, after string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func TestTwinGetAndPatchReported(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	res := d.subscribe(t, twinResFilter, 1)

	// Go SDK: hex rid, empty body.
	wait(t, d.Publish("$iothub/twin/GET/?$rid=a", 1, false, []byte{}))
	r := parseTwinResponse(t, receive(t, res))
	require.Equal(t, 200, r.status)
	require.Equal(t, "a", r.rid)
	var twin struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	require.NoError(t, json.Unmarshal(r.body, &twin))
	require.Contains(t, twin.Desired, "$version")
	require.Contains(t, twin.Reported, "$version")

	// Node SDK: uuid rid.
	const rid = "5b6e3c0e-8f1d-4d7b-9a43-1c2d3e4f5a6b"
	wait(t, d.Publish("$iothub/twin/PATCH/properties/reported/?$rid="+rid, 0, false,
		`{"iothubDM":{"reboot":{"startedRebootTime":"2024-05-01T10:00:00.000Z"}}}`))
	r = parseTwinResponse(t, receive(t, res))
	require.Equal(t, 204, r.status)
	require.Equal(t, rid, r.rid)
	require.Empty(t, r.body)
	require.NotEmpty(t, r.version)

	wait(t, d.Publish("$iothub/twin/GET/?$rid=b", 1, false, " "))
	r2 := parseTwinResponse(t, receive(t, res))
	require.NoError(t, json.Unmarshal(r2.body, &twin))
	require.Equal(t, r.version, strconv.FormatFloat(twin.Reported["$version"].(float64), 'f', -1, 64),
		"the PATCH response $version is the reported $version")
	require.Contains(t, twin.Reported, "iothubDM")
}

func TestTwinPatchReportedInvalid(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)
	res := d.subscribe(t, twinResFilter, 1)

	for _, patch := range []string{`not json`, `["array"]`, `{"bad$key":1}`} {
		wait(t, d.Publish("$iothub/twin/PATCH/properties/reported/?$rid=1", 1, false, patch))
		r := parseTwinResponse(t, receive(t, res))
		require.Equal(t, 400, r.status, "patch %s", patch)
		var body struct {
			ErrorCode int    `json:"errorCode"`
			Message   string `json:"message"`
		}
		require.NoError(t, json.Unmarshal(r.body, &body), "patch %s", patch)
		require.Equal(t, 400, body.ErrorCode/1000, "patch %s: errorCode %d", patch, body.ErrorCode)
		require.NotEmpty(t, body.Message)
	}
}

func TestTwinResponseNeedsSubscription(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)

	// Not subscribed yet: the hub answers this GET before its PUBACK, so
	// the answer is dropped by the time the subscription exists.
	wait(t, d.Publish("$iothub/twin/GET/?$rid=1", 1, false, []byte{}))
	res := d.subscribe(t, twinResFilter, 0)
	wait(t, d.Publish("$iothub/twin/GET/?$rid=2", 1, false, []byte{}))

	m := receive(t, res)
	require.Equal(t, "2", parseTwinResponse(t, m).rid)
	require.Equal(t, byte(0), m.Qos(), "delivered at the granted QoS")
}

func TestSendDesired(t *testing.T) {
	h := newTestHub(t)
	key := h.createDevice(t, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(t, "d1", key)

	h.gw.SendDesired("d1", 7, []byte(`{"x":1,"$version":7}`)) // not subscribed: dropped
	h.gw.SendDesired("nobody", 7, []byte(`{}`))               // not connected: no-op
	msgs := d.subscribe(t, desiredFilter, 1)
	h.gw.SendDesired("d1", 8, []byte(`{"x":null,"$version":8}`))

	m := receive(t, msgs)
	require.Equal(t, "$iothub/twin/PATCH/properties/desired/?$version=8", m.Topic())
	require.JSONEq(t, `{"x":null,"$version":8}`, string(m.Payload()))
	require.Equal(t, byte(1), m.Qos())
}
