package mqttgw

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/iothub-reboot/devmgmt/localhub/internal/routing"
)

// Topic prefixes and the subscription filters a device may use
// (reference §2.4).
const (
	telemetryPrefix = "devices/"
	telemetryLevels = "messages/events/"
	methodResPrefix = "$iothub/methods/res/"
	methodReqPrefix = "$iothub/methods/POST/"
	twinGetPrefix   = "$iothub/twin/GET/"
	twinPatchPrefix = "$iothub/twin/PATCH/properties/reported/"
	twinResPrefix   = "$iothub/twin/res/"
	desiredPrefix   = "$iothub/twin/PATCH/properties/desired/"

	methodsFilter = methodReqPrefix + "#"
	twinResFilter = twinResPrefix + "#"
	desiredFilter = desiredPrefix + "#"
)

// ErrTopic is wrapped by every ParseTopic error.
var ErrTopic = errors.New("unsupported or malformed topic")

// TopicKind says what a device published.
type TopicKind uint8

const (
	// TopicTelemetry is devices/{id}/messages/events/[{property-bag}].
	TopicTelemetry TopicKind = iota + 1
	// TopicMethodResponse is $iothub/methods/res/{status}/?$rid={rid}.
	TopicMethodResponse
	// TopicTwinGet is $iothub/twin/GET/?$rid={rid}.
	TopicTwinGet
	// TopicTwinPatchReported is
	// $iothub/twin/PATCH/properties/reported/?$rid={rid}[&$version=...].
	TopicTwinPatchReported
)

// Property is one decoded entry of a topic's property bag; the router
// reads telemetry bags as they are.
type Property = routing.Property

// Topic is a parsed device-to-hub PUBLISH topic.
type Topic struct {
	Kind TopicKind
	// DeviceID is the device named in a telemetry topic.
	DeviceID string
	// Properties is a telemetry property bag, percent-decoded, in order.
	// An entry without '=' has an empty value.
	Properties []Property
	// Status is a method response's status code.
	Status int
	// RID is the request id of a method response or twin request.
	RID string
}

// ParseTopic classifies a topic a device published to. Property bags are
// percent-decoded without turning '+' into a space: both SDKs encode
// spaces as %20 (reference §2.5).
func ParseTopic(topic string) (Topic, error) {
	switch {
	case strings.HasPrefix(topic, telemetryPrefix):
		return parseTelemetryTopic(topic)
	case strings.HasPrefix(topic, methodResPrefix):
		status, query, ok := strings.Cut(topic[len(methodResPrefix):], "/")
		if !ok {
			return Topic{}, topicError(topic, "no status level")
		}
		code, err := strconv.ParseInt(status, 10, 32)
		if err != nil {
			return Topic{}, topicError(topic, "status is not an integer")
		}
		rid, err := requestID(topic, query)
		if err != nil {
			return Topic{}, err
		}
		return Topic{Kind: TopicMethodResponse, Status: int(code), RID: rid}, nil
	case strings.HasPrefix(topic, twinGetPrefix):
		rid, err := requestID(topic, topic[len(twinGetPrefix):])
		if err != nil {
			return Topic{}, err
		}
		return Topic{Kind: TopicTwinGet, RID: rid}, nil
	case strings.HasPrefix(topic, twinPatchPrefix):
		rid, err := requestID(topic, topic[len(twinPatchPrefix):])
		if err != nil {
			return Topic{}, err
		}
		return Topic{Kind: TopicTwinPatchReported, RID: rid}, nil
	}
	return Topic{}, topicError(topic, "not a device-to-hub topic")
}

func parseTelemetryTopic(topic string) (Topic, error) {
	id, rest, ok := strings.Cut(topic[len(telemetryPrefix):], "/")
	if !ok || id == "" {
		return Topic{}, topicError(topic, "no device id")
	}
	bag, ok := strings.CutPrefix(rest, telemetryLevels)
	if !ok {
		return Topic{}, topicError(topic, "not a telemetry topic")
	}
	props, err := parseBag(bag)
	if err != nil {
		return Topic{}, topicError(topic, err.Error())
	}
	return Topic{Kind: TopicTelemetry, DeviceID: id, Properties: props}, nil
}

// requestID reads $rid from a "?k=v&..." query level.
func requestID(topic, query string) (string, error) {
	bag, ok := strings.CutPrefix(query, "?")
	if !ok {
		return "", topicError(topic, "no query after the last level")
	}
	props, err := parseBag(bag)
	if err != nil {
		return "", topicError(topic, err.Error())
	}
	for _, p := range props {
		if p.Key == "$rid" && p.Value != "" {
			return p.Value, nil
		}
	}
	return "", topicError(topic, "no $rid")
}

// parseBag decodes "k=v&k2&k3=" into properties. Empty entries and entries
// with an empty key are skipped.
func parseBag(bag string) ([]Property, error) {
	var props []Property
	for entry := range strings.SplitSeq(bag, "&") {
		k, v, _ := strings.Cut(entry, "=")
		if k == "" {
			continue
		}
		key, err := url.PathUnescape(k)
		if err != nil {
			return nil, fmt.Errorf("property name: %w", err)
		}
		value, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("property %q: %w", key, err)
		}
		if key == "" {
			continue
		}
		props = append(props, Property{Key: key, Value: value})
	}
	return props, nil
}

func topicError(topic, why string) error {
	return fmt.Errorf("%w: %q: %s", ErrTopic, topic, why)
}

// String formats the topic as a device would publish it, percent-encoding
// the property bag the way the Go SDK does ('$' as %24).
func (t Topic) String() string {
	switch t.Kind {
	case TopicTelemetry:
		return telemetryPrefix + t.DeviceID + "/" + telemetryLevels + formatBag(t.Properties)
	case TopicMethodResponse:
		return methodResPrefix + strconv.Itoa(t.Status) + "/?$rid=" + escape(t.RID)
	case TopicTwinGet:
		return twinGetPrefix + "?$rid=" + escape(t.RID)
	case TopicTwinPatchReported:
		return twinPatchPrefix + "?$rid=" + escape(t.RID)
	}
	return ""
}

func formatBag(props []Property) string {
	var b strings.Builder
	for i, p := range props {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escape(p.Key))
		b.WriteByte('=')
		b.WriteString(escape(p.Value))
	}
	return b.String()
}

// escape percent-encodes everything but RFC 3986 unreserved characters.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&0xF])
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// Topics the hub publishes to a device.

func methodRequestTopic(method string, rid uint64) string {
	return methodReqPrefix + method + "/?$rid=" + strconv.FormatUint(rid, 10)
}

func twinResponseTopic(status int, rid string, version int64) string {
	t := twinResPrefix + strconv.Itoa(status) + "/?$rid=" + escape(rid)
	if version > 0 {
		t += "&$version=" + strconv.FormatInt(version, 10)
	}
	return t
}

func desiredTopic(version int64) string {
	return desiredPrefix + "?$version=" + strconv.FormatInt(version, 10)
}

// subscriptionAllowed reports whether a device may subscribe to filter:
// only the exact filters IoT Hub documents (reference §2.4).
func subscriptionAllowed(deviceID, filter string) bool {
	switch filter {
	case methodsFilter, twinResFilter, desiredFilter:
		return true
	}
	const c2dLevels = "/messages/devicebound/#"
	rest, ok := strings.CutPrefix(filter, telemetryPrefix)
	return ok && len(rest) == len(deviceID)+len(c2dLevels) &&
		strings.HasPrefix(rest, deviceID) && strings.HasSuffix(rest, c2dLevels)
}

// validMethodName reports whether a direct-method name fits in one topic
// level without changing the topic's meaning. IoT Hub's own rule (printable
// US-ASCII without $()<>@,;:\"/[]?={} SP HT) is stricter; the REST layer
// applies it.
func validMethodName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c <= ' ' || c >= 0x7f, c == '/', c == '+', c == '#', c == '?':
			return false
		}
	}
	return true
}
