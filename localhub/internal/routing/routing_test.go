package routing

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

func TestHubName(t *testing.T) {
	for host, want := range map[string]string{
		"myhub.azure-devices.net": "myhub",
		"localhost":               "localhost",
	} {
		require.Equal(t, want, HubName(host), "HubName(%q)", host)
	}
}

// newRouter routes into a fresh log, with the clock at `at`.
func newRouter(t *testing.T, at time.Time) (*Router, *eventlog.Log) {
	events, err := eventlog.Open(eventlog.Options{Dir: t.TempDir(), Partitions: 1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, events.Close()) })
	return New(Options{Hostname: "myhub.azure-devices.net", Events: events, Now: func() time.Time { return at }}), events
}

// read returns the first n events of the log's one partition.
func read(t *testing.T, events *eventlog.Log, n int) []eventlog.Event {
	t.Helper()
	var all []eventlog.Event
	for len(all) < n {
		evs, err := events.Read(t.Context(), 0, int64(len(all)), n-len(all))
		require.NoError(t, err)
		all = append(all, evs...)
	}
	return all
}

var uuid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestChangeIsANotification(t *testing.T) {
	r, events := newRouter(t, time.Now())
	at := time.Date(2024, 5, 1, 12, 30, 15, 123456789, time.FixedZone("CEST", 2*3600))
	require.NoError(t, r.Change(registry.Notification{
		DeviceID: "d1", Source: registry.SourceTwinChangeEvents, Schema: registry.SchemaTwinChange,
		OpType: registry.OpUpdateTwin, Body: json.RawMessage(`{"version":2}`), Time: at,
	}))
	e := read(t, events, 1)[0]
	require.Equal(t, "d1", e.DeviceID)
	require.JSONEq(t, `{"version":2}`, string(e.Body))
	require.Equal(t, "application/json", e.ContentType)
	require.Equal(t, "utf-8", e.ContentEncoding)
	require.Equal(t, []byte("myhub"), e.UserID)
	require.Regexp(t, uuid, e.CorrelationID)
	require.Equal(t, map[string]string{
		"hubName":               "myhub",
		"deviceId":              "d1",
		"operationTimestamp":    "2024-05-01T10:30:15.1234567Z",
		"iothub-message-schema": "twinChangeNotification",
		"opType":                "updateTwin",
	}, e.Properties)
	require.Equal(t, "d1", e.Annotations["iothub-connection-device-id"])
	require.Equal(t, "twinChangeEvents", e.Annotations["iothub-message-source"])
	require.Equal(t, r.now().UTC().Truncate(time.Millisecond), e.Annotations["iothub-enqueuedtime"], "a timestamp, in ms")
	require.Len(t, e.Annotations, 3, "the annotations of Microsoft's captures, no more")
}

var sequenceNumber = regexp.MustCompile(`^\{"sequenceNumber":"([0-9A-F]{64})"\}$`)

func TestConnectionStateSequenceIncreases(t *testing.T) {
	start := time.Date(2022, 5, 4, 15, 53, 0, 0, time.UTC)
	r, events := newRouter(t, start)
	for i := range 300 {
		require.NoError(t, r.ConnectionState("d1", i%2 == 0))
	}
	later, laterEvents := newRouter(t, start.Add(time.Second))
	require.NoError(t, later.ConnectionState("d1", true))

	prev := ""
	for i, e := range append(read(t, events, 300), read(t, laterEvents, 1)...) {
		m := sequenceNumber.FindStringSubmatch(string(e.Body))
		require.NotNil(t, m, "body %s", e.Body)
		require.Greater(t, m[1], prev, "event %d: sequence numbers strictly increase, also after a restart", i)
		prev = m[1]
		require.Equal(t, "deviceConnectionStateNotification", e.Properties["iothub-message-schema"])
		require.Equal(t, "deviceConnectionStateEvents", e.Annotations["iothub-message-source"])
	}
}

func TestTelemetryEvent(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.FixedZone("CEST", 2*3600))
	e := telemetryEvent(Telemetry{
		DeviceID: "d1", GenerationID: "g1", AuthMethod: `{"scope":"device"}`, ModelID: "dtmi:x;1",
		Properties: []Property{
			{Key: "$.mid", Value: "m"}, {Key: "$.cid", Value: "c"}, {Key: "$.ct", Value: "application/json"},
			{Key: "$.ce", Value: "utf-8"}, {Key: "$.uid", Value: "u"}, {Key: "$.ctime", Value: "t"},
			{Key: "$.sub", Value: "comp"}, {Key: "$.exp", Value: "dropped"}, {Key: "level", Value: "hi"},
		},
		Body: []byte("b"), Retain: true, Will: true,
	}, at)
	require.Equal(t, eventlog.Event{
		DeviceID: "d1", Body: []byte("b"), MessageID: "m", CorrelationID: "c",
		ContentType: "application/json", ContentEncoding: "utf-8", UserID: []byte("u"),
		Properties: map[string]string{"level": "hi", "mqtt-retain": "true", "iothub-MessageType": "Will"},
		Annotations: map[string]any{
			"iothub-connection-device-id":          "d1",
			"iothub-connection-auth-generation-id": "g1",
			"iothub-connection-auth-method":        `{"scope":"device"}`,
			"iothub-message-source":                "Telemetry",
			"iothub-enqueuedtime":                  time.Date(2024, 5, 1, 10, 0, 0, 123000000, time.UTC),
			"dt-dataschema":                        "dtmi:x;1",
			"iothub-creation-time-utc":             "t",
			"dt-subject":                           "comp",
		},
	}, e)
}

func TestSourcesRouteOnlyWhatIsConfigured(t *testing.T) {
	events, err := eventlog.Open(eventlog.Options{Dir: t.TempDir(), Partitions: 1})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, events.Close()) })
	r := New(Options{Hostname: "myhub.azure-devices.net", Events: events, Sources: TwinChangeEvents | DeviceMessages})

	require.NoError(t, r.Change(registry.Notification{DeviceID: "d1", Source: registry.SourceDeviceLifecycleEvents, Schema: "deviceLifecycleNotification", OpType: "createDeviceIdentity", Body: []byte(`{}`)}))
	require.NoError(t, r.ConnectionState("d1", true))
	require.NoError(t, r.Change(registry.Notification{DeviceID: "d1", Source: registry.SourceTwinChangeEvents, Schema: registry.SchemaTwinChange, OpType: registry.OpUpdateTwin, Body: []byte(`{"version":2}`)}))
	require.NoError(t, r.Telemetry(Telemetry{DeviceID: "d1", Body: []byte("t")}))

	got := read(t, events, 2)
	require.Equal(t, "twinChangeEvents", got[0].Annotations["iothub-message-source"], "lifecycle and connection-state events are not routed")
	require.Equal(t, "Telemetry", got[1].Annotations["iothub-message-source"])
	info, err := events.Info(0)
	require.NoError(t, err)
	require.Equal(t, int64(1), info.LastSequenceNumber, "nothing else was stored")

	all := New(Options{Hostname: "h", Events: events})
	require.Equal(t, AllSources, all.Sources(), "zero Sources routes everything")
}

func TestParseSources(t *testing.T) {
	s, err := ParseSources(" twinchangeevents, DeviceMessages ")
	require.NoError(t, err)
	require.Equal(t, TwinChangeEvents|DeviceMessages, s)
	require.Equal(t, "DeviceMessages,TwinChangeEvents", s.String())
	all, err := ParseSources(AllSources.String())
	require.NoError(t, err)
	require.Equal(t, AllSources, all)
	for _, bad := range []string{"", " ", "Telemetry", "TwinChangeEvents,,DeviceMessages"} {
		_, err := ParseSources(bad)
		require.Error(t, err, "%q", bad)
	}
}
