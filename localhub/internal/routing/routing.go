// Package routing turns what happens on the hub into the messages IoT Hub
// routes: device-to-cloud telemetry, twin changes, device lifecycle and
// connection-state notifications. It is the one place that decides their
// AMQP shape (properties, application properties, message annotations)
// and where they go: the built-in events endpoint, for the sources the
// hub's routes name (Options.Sources), as IoT Hub's routes and fallback
// route do.
package routing

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// OperationTimestampLayout is how notifications spell operationTimestamp:
// UTC with seven fractional digits.
const OperationTimestampLayout = "2006-01-02T15:04:05.0000000Z"

// Sources is a set of routing sources, the data sources of IoT Hub's
// routes (the names are ARM's RoutingSource values).
type Sources uint8

// The routing sources the local hub produces.
const (
	// DeviceMessages is device-to-cloud telemetry; IoT Hub's fallback
	// route sends it to the built-in endpoint.
	DeviceMessages Sources = 1 << iota
	TwinChangeEvents
	DeviceLifecycleEvents
	DeviceConnectionStateEvents

	// AllSources routes everything the hub produces.
	AllSources = DeviceMessages | TwinChangeEvents | DeviceLifecycleEvents | DeviceConnectionStateEvents
)

var sourceNames = []struct {
	s    Sources
	name string
}{
	{DeviceMessages, "DeviceMessages"},
	{TwinChangeEvents, "TwinChangeEvents"},
	{DeviceLifecycleEvents, "DeviceLifecycleEvents"},
	{DeviceConnectionStateEvents, "DeviceConnectionStateEvents"},
}

// String lists the sources as ARM spells them, comma-separated.
func (s Sources) String() string {
	var names []string
	for _, n := range sourceNames {
		if s&n.s != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// ParseSources reads a comma-separated list of source names (ARM's
// spelling, any case; spaces around names are ignored). An empty list is
// an error: a hub that routes nothing is never what a test wants.
func ParseSources(list string) (Sources, error) {
	if strings.TrimSpace(list) == "" {
		return 0, errors.New("no routing source: name at least one of DeviceMessages, TwinChangeEvents, DeviceLifecycleEvents, DeviceConnectionStateEvents")
	}
	var out Sources
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, n := range sourceNames {
			if strings.EqualFold(name, n.name) {
				out |= n.s
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown routing source %q: want DeviceMessages, TwinChangeEvents, DeviceLifecycleEvents or DeviceConnectionStateEvents", name)
		}
	}
	return out, nil
}

// Options configure a Router.
type Options struct {
	// Hostname is the hub host name; its first label is the hub name.
	Hostname string
	// Events is the built-in events endpoint.
	Events *eventlog.Log
	// Sources are routed to Events; the others are dropped, as IoT Hub
	// drops messages no route matches. Zero routes every source (a hub
	// with a route for each).
	Sources Sources
	// Now defaults to time.Now.
	Now func() time.Time
}

// Router shapes and routes messages. Safe for concurrent use.
type Router struct {
	events  *eventlog.Log
	sources Sources
	hubName string
	userID  []byte // user-id of notifications; readers never modify it
	now     func() time.Time
	seq     sequence
}

// New returns a router for o.
func New(o Options) *Router {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	name := HubName(o.Hostname)
	sources := o.Sources
	if sources == 0 {
		sources = AllSources
	}
	return &Router{
		events:  o.Events,
		sources: sources,
		hubName: name,
		userID:  []byte(name),
		now:     now,
		seq:     sequence{epoch: fileTime(now())},
	}
}

// HubName is the hub's name: the first DNS label of its host name, as in
// the hubName property and user-id of routed notifications.
func HubName(hostname string) string {
	name, _, _ := strings.Cut(hostname, ".")
	return name
}

// Property is one entry of a telemetry message's property bag.
type Property struct {
	Key, Value string
}

// Telemetry is a device-to-cloud message as the device endpoint took it.
type Telemetry struct {
	DeviceID string
	// The authenticated connection it came on: the device's generation id,
	// the iothub-connection-auth-method JSON and the model id the device
	// announced, if any.
	GenerationID string
	AuthMethod   string
	ModelID      string
	// Properties is the message's property bag in order: system properties
	// ("$.mid", ...) and application properties.
	Properties []Property
	Body       []byte
	// Retain is the MQTT retain flag; Will marks a will message sent
	// because the connection ended without DISCONNECT.
	Retain bool
	Will   bool
}

// Sources are the sources r routes.
func (r *Router) Sources() Sources { return r.sources }

// Telemetry routes a device-to-cloud message. It returns once the event is
// on disk (or at once when telemetry is not routed); an error means it is
// not stored, so the device must not get a PUBACK.
func (r *Router) Telemetry(m Telemetry) error {
	if r.sources&DeviceMessages == 0 {
		return nil
	}
	_, err := r.events.Append(telemetryEvent(m, r.now()))
	return err
}

// telemetryEvent builds the event IoT Hub routes for a device-to-cloud
// message. System properties become AMQP properties: $.mid message-id,
// $.cid correlation-id, $.ct content-type, $.ce content-encoding, $.uid
// user-id. $.ctime becomes the annotation iothub-creation-time-utc and $.sub
// dt-subject; the model id becomes dt-dataschema. Other system properties
// ($.to, $.exp, $.ifid, ...) are dropped. Everything else is an application
// property. iothub-enqueuedtime (an AMQP timestamp) is when the hub took
// the message: at, just before the log enqueues it.
func telemetryEvent(m Telemetry, at time.Time) eventlog.Event {
	e := eventlog.Event{
		DeviceID: m.DeviceID,
		Body:     m.Body,
		Annotations: map[string]any{
			"iothub-connection-device-id":          m.DeviceID,
			"iothub-connection-auth-generation-id": m.GenerationID,
			"iothub-connection-auth-method":        m.AuthMethod,
			"iothub-enqueuedtime":                  enqueuedTime(at),
			"iothub-message-source":                eventlog.SourceTelemetry,
		},
	}
	if m.ModelID != "" {
		e.Annotations["dt-dataschema"] = m.ModelID
	}
	for _, p := range m.Properties {
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
	if m.Retain {
		setProperty(&e, "mqtt-retain", "true")
	}
	if m.Will {
		setProperty(&e, "iothub-MessageType", "Will")
	}
	return e
}

func setProperty(e *eventlog.Event, k, v string) {
	if e.Properties == nil {
		e.Properties = make(map[string]string)
	}
	e.Properties[k] = v
}

// Change routes a committed registry change: a twin change or a device
// lifecycle notification. It returns once the event is on disk, so a change
// is acknowledged only after its notification is stored; a change whose
// source is not routed returns at once.
func (r *Router) Change(n registry.Notification) error {
	if !r.routes(n.Source) {
		return nil
	}
	_, err := r.events.Append(r.notification(n.DeviceID, n.Source, n.Schema, n.OpType, n.Body, n.Time))
	return err
}

// routes reports whether events of an iothub-message-source are routed.
func (r *Router) routes(messageSource string) bool {
	var s Sources
	switch messageSource {
	case eventlog.SourceTelemetry:
		s = DeviceMessages
	case eventlog.SourceTwinChange:
		s = TwinChangeEvents
	case eventlog.SourceLifecycle:
		s = DeviceLifecycleEvents
	case eventlog.SourceConnectionState:
		s = DeviceConnectionStateEvents
	}
	return r.sources&s != 0
}

// ConnectionState routes a deviceConnected or deviceDisconnected
// notification. Its body carries a sequence number that strictly increases
// in the order of calls, also across restarts; callers that need one
// device's notifications in order serialise their calls. The event is only
// queued for the disk (eventlog.Enqueue): callers hold the gateway's device
// lock, which must not wait for an fsync.
func (r *Router) ConnectionState(deviceID string, connected bool) error {
	if r.sources&DeviceConnectionStateEvents == 0 {
		return nil
	}
	opType := "deviceDisconnected"
	if connected {
		opType = "deviceConnected"
	}
	body := fmt.Appendf(nil, `{"sequenceNumber":"%s"}`, r.seq.next())
	_, err := r.events.Enqueue(r.notification(deviceID, eventlog.SourceConnectionState,
		"deviceConnectionStateNotification", opType, body, r.now()))
	return err
}

// notification is the shape every notification shares (reference §4, and
// the captures in Microsoft's iot-hub-non-telemetry-event-schema page):
// JSON in UTF-8, a fresh correlation-id, the hub name as user-id, the
// application properties hubName, deviceId, operationTimestamp,
// iothub-message-schema and opType, and the annotations
// iothub-connection-device-id, iothub-enqueuedtime (a timestamp: when the
// hub sent the notification) and iothub-message-source.
func (r *Router) notification(deviceID, source, schema, opType string, body []byte, at time.Time) eventlog.Event {
	return eventlog.Event{
		DeviceID:        deviceID,
		Body:            body,
		CorrelationID:   newCorrelationID(),
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		UserID:          r.userID,
		Properties: map[string]string{
			"hubName":               r.hubName,
			"deviceId":              deviceID,
			"operationTimestamp":    at.UTC().Format(OperationTimestampLayout),
			"iothub-message-schema": schema,
			"opType":                opType,
		},
		Annotations: map[string]any{
			"iothub-connection-device-id": deviceID,
			"iothub-enqueuedtime":         enqueuedTime(r.now()),
			"iothub-message-source":       source,
		},
	}
}

// enqueuedTime is t as an AMQP timestamp holds it: UTC milliseconds.
func enqueuedTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Millisecond)
}

// sequence makes connection-state sequence numbers: 64 hex digits that
// strictly increase, also across restarts. Like IoT Hub's
// (000000000000000001D8713FF7E08514 00000002000000000000000000000007) the
// first half is a Windows file time, here of the router's creation, and
// the second half counts.
type sequence struct {
	epoch uint64
	n     atomic.Uint64
}

// fileTime is t in 100 ns ticks since 1601-01-01, as in the sample above.
func fileTime(t time.Time) uint64 {
	const unixToFileTime = 116444736000000000
	return uint64(t.UnixNano()/100) + unixToFileTime
}

func (s *sequence) next() string {
	return fmt.Sprintf("%032X%032X", s.epoch, s.n.Add(1))
}

// newCorrelationID returns a random UUID: every routed notification
// carries a unique correlation-id.
func newCorrelationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
