package funchost

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// dotnetUnspecified renders a UTC time as Newtonsoft renders the Event
// Hubs extension's EnqueuedTimeUtc in arrays and SystemProperties: no zone
// designator (functions-custom-handler.md §3.2).
const dotnetUnspecified = "2006-01-02T15:04:05.9999999"

// eventHubTrigger is an eventHubTrigger binding with its settings resolved.
type eventHubTrigger struct {
	binding       string
	many          bool
	binary        bool
	eventHubName  string
	consumerGroup string
	namespace     string
	// untypedMany: cardinality many without dataType, which the host
	// delivers as object[] (unverified); sent as strings here.
	untypedMany bool
}

// newEventHubTrigger resolves %SETTING% expressions and the connection
// the way the extension does: EntityPath in the connection string wins
// over eventHubName; <connection>__fullyQualifiedNamespace is the
// identity-based form.
func newEventHubTrigger(b binding, s settings) (*eventHubTrigger, error) {
	t := &eventHubTrigger{binding: b.Name, consumerGroup: "$Default"}
	switch strings.ToLower(b.Cardinality) {
	case "", "one":
	case "many":
		t.many = true
	default:
		return nil, fmt.Errorf("cardinality %q is not one or many", b.Cardinality)
	}
	switch strings.ToLower(b.DataType) {
	case "":
		t.untypedMany = t.many
	case "string":
	case "binary":
		t.binary = true
	default:
		return nil, fmt.Errorf("dataType %q is not supported locally (string or binary)", b.DataType)
	}
	name := b.EventHubName
	if name == "" {
		name = b.Path
	}
	var err error
	if t.eventHubName, err = resolveBindingExpression(name, s); err != nil {
		return nil, fmt.Errorf("eventHubName: %w", err)
	}
	if b.ConsumerGroup != "" {
		if t.consumerGroup, err = resolveBindingExpression(b.ConsumerGroup, s); err != nil {
			return nil, fmt.Errorf("consumerGroup: %w", err)
		}
	}
	conn := b.Connection
	if conn == "" {
		return nil, fmt.Errorf("binding %q has no connection setting name", b.Name)
	}
	if cs, ok := s.get(conn); ok && strings.TrimSpace(cs) != "" {
		fields := parseConnectionString(cs)
		t.namespace = hostOfEndpoint(fields["endpoint"])
		if ep := fields["entitypath"]; ep != "" {
			t.eventHubName = ep
		}
	} else if ns, ok := s.get(conn + "__fullyQualifiedNamespace"); ok && ns != "" {
		t.namespace = ns
	} else {
		return nil, fmt.Errorf("the connection setting %q (or %s__fullyQualifiedNamespace) is not set", conn, conn)
	}
	if t.eventHubName == "" {
		return nil, fmt.Errorf("no event hub name: set eventHubName or EntityPath in %q", conn)
	}
	return t, nil
}

// parseConnectionString splits "Key=Value;..." with lower-case keys.
func parseConnectionString(cs string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			out[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return out
}

// hostOfEndpoint turns "sb://ns.servicebus.windows.net/" into its host.
func hostOfEndpoint(ep string) string {
	if _, rest, ok := strings.Cut(ep, "://"); ok {
		ep = rest
	}
	host, _, _ := strings.Cut(ep, "/")
	return host
}

// partitionContext is the extension's PartitionContext object.
type partitionContext struct {
	FullyQualifiedNamespace string `json:"FullyQualifiedNamespace"`
	EventHubName            string `json:"EventHubName"`
	ConsumerGroup           string `json:"ConsumerGroup"`
	PartitionID             string `json:"PartitionId"`
}

// retryContext is Metadata.RetryContext on a re-delivered invocation.
type retryContext struct {
	RetryCount    int           `json:"RetryCount"`
	MaxRetryCount int           `json:"MaxRetryCount"`
	Exception     exceptionData `json:"Exception"`
}

// exceptionData is the failure as the host serializes a .NET exception
// (the fields a handler would read).
type exceptionData struct {
	ClassName        string  `json:"ClassName"`
	Message          string  `json:"Message"`
	Source           string  `json:"Source"`
	StackTraceString *string `json:"StackTraceString"`
	HResult          int     `json:"HResult"`
}

func exceptionOf(err error) exceptionData {
	return exceptionData{
		ClassName: "System.Net.Http.HttpRequestException",
		Message:   err.Error(),
		Source:    "System.Net.Http",
		HResult:   -2146233088,
	}
}

// ehBatchMetadata is Metadata for cardinality many: every per-event field
// is a string holding a JSON array.
type ehBatchMetadata struct {
	PartitionKeyArray       string           `json:"PartitionKeyArray"`
	OffsetArray             string           `json:"OffsetArray"`
	OffsetStringArray       string           `json:"OffsetStringArray"`
	SequenceNumberArray     string           `json:"SequenceNumberArray"`
	EnqueuedTimeUtcArray    string           `json:"EnqueuedTimeUtcArray"`
	PropertiesArray         string           `json:"PropertiesArray"`
	SystemPropertiesArray   string           `json:"SystemPropertiesArray"`
	TriggerPartitionContext partitionContext `json:"TriggerPartitionContext"`
	PartitionContext        partitionContext `json:"PartitionContext"`
	RetryContext            *retryContext    `json:"RetryContext,omitempty"`
	Sys                     sysData          `json:"sys"`
}

// ehSingleMetadata is Metadata for cardinality one: strings and numbers
// JSON-encoded once more, objects as objects, null PartitionKey omitted.
type ehSingleMetadata struct {
	TriggerPartitionContext partitionContext  `json:"TriggerPartitionContext"`
	PartitionContext        partitionContext  `json:"PartitionContext"`
	Offset                  string            `json:"Offset"`
	OffsetString            string            `json:"OffsetString"`
	SequenceNumber          string            `json:"SequenceNumber"`
	EnqueuedTimeUtc         string            `json:"EnqueuedTimeUtc"`
	Properties              map[string]string `json:"Properties"`
	SystemProperties        map[string]any    `json:"SystemProperties"`
	RetryContext            *retryContext     `json:"RetryContext,omitempty"`
	Sys                     sysData           `json:"sys"`
}

type ehEnvelope struct {
	Data     map[string]string `json:"Data"`
	Metadata any               `json:"Metadata"`
}

// buildEventHubBatch renders a cardinality-many invocation
// (functions-custom-handler.md §3.1-§3.2): Data.<binding> is a string
// holding the JSON array of the bodies (strings, or base64 for binary).
func buildEventHubBatch(t *eventHubTrigger, pc partitionContext, evs []localhub.Event, sys sysData, retry *retryContext) ([]byte, error) {
	n := len(evs)
	keys := make([]*string, n)
	offsets := make([]string, n)
	seqs := make([]int64, n)
	times := make([]string, n)
	props := make([]map[string]string, n)
	sysProps := make([]map[string]any, n)
	bodies := make([]string, n)
	for i, e := range evs {
		offsets[i] = e.Offset
		seqs[i] = e.SequenceNumber
		times[i] = e.EnqueuedTime.UTC().Format(dotnetUnspecified)
		props[i] = properties(e)
		sysProps[i] = systemProperties(e)
		bodies[i] = bodyText(t, e.Body)
	}
	var err error
	str := func(v any) string {
		b, mErr := marshal(v)
		if mErr != nil && err == nil {
			err = mErr
		}
		return string(b)
	}
	meta := ehBatchMetadata{
		PartitionKeyArray:       str(keys),
		OffsetArray:             str(offsets),
		OffsetStringArray:       str(offsets),
		SequenceNumberArray:     str(seqs),
		EnqueuedTimeUtcArray:    str(times),
		PropertiesArray:         str(props),
		SystemPropertiesArray:   str(sysProps),
		TriggerPartitionContext: pc,
		PartitionContext:        pc,
		RetryContext:            retry,
		Sys:                     sys,
	}
	data := str(bodies)
	if err != nil {
		return nil, err
	}
	return marshal(ehEnvelope{Data: map[string]string{t.binding: data}, Metadata: meta})
}

// buildEventHubSingle renders a cardinality-one invocation: Data.<binding>
// is the body JSON-encoded once more (string), or base64 (binary).
func buildEventHubSingle(t *eventHubTrigger, pc partitionContext, e localhub.Event, sys sysData, retry *retryContext) ([]byte, error) {
	data := base64.StdEncoding.EncodeToString(e.Body)
	if !t.binary {
		data = jsonString(string(e.Body))
	}
	meta := ehSingleMetadata{
		TriggerPartitionContext: pc,
		PartitionContext:        pc,
		Offset:                  jsonString(e.Offset),
		OffsetString:            jsonString(e.Offset),
		SequenceNumber:          strconv.FormatInt(e.SequenceNumber, 10),
		// DateTime metadata keeps whole seconds and no zone.
		EnqueuedTimeUtc:  e.EnqueuedTime.UTC().Format("2006-01-02T15:04:05"),
		Properties:       properties(e),
		SystemProperties: systemProperties(e),
		RetryContext:     retry,
		Sys:              sys,
	}
	return marshal(ehEnvelope{Data: map[string]string{t.binding: data}, Metadata: meta})
}

// bodyText is one body inside the many-array: the UTF-8 text, or base64.
func bodyText(t *eventHubTrigger, body []byte) string {
	if t.binary {
		return base64.StdEncoding.EncodeToString(body)
	}
	return string(body)
}

func properties(e localhub.Event) map[string]string {
	if e.Properties == nil {
		return map[string]string{}
	}
	return e.Properties
}

// systemProperties is the event's SystemProperties: the AMQP properties
// that are set, every message annotation (IoT Hub's iothub-* ones
// included) and the extension's own entries.
func systemProperties(e localhub.Event) map[string]any {
	sp := make(map[string]any, len(e.Annotations)+16)
	if e.MessageID != "" {
		sp["message-id"] = e.MessageID
	}
	if e.UserID != nil {
		sp["user-id"] = base64.StdEncoding.EncodeToString(e.UserID)
	}
	if e.CorrelationID != "" {
		sp["correlation-id"] = e.CorrelationID
	}
	if e.ContentType != "" {
		sp["content-type"] = e.ContentType
	}
	if e.ContentEncoding != "" {
		sp["content-encoding"] = e.ContentEncoding
	}
	for k, v := range e.Annotations {
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(dotnetUTC)
		}
		sp[k] = v
	}
	// IoT Hub stamps these on every message it routes; the local hub's log
	// keeps them as event fields.
	setDefault(sp, "iothub-connection-device-id", e.DeviceID)
	setDefault(sp, "iothub-connection-module-id", e.ModuleID)
	setDefault(sp, "iothub-enqueuedtime", e.EnqueuedTime.UTC().Format(dotnetUTC))

	sp["x-opt-sequence-number"] = e.SequenceNumber
	sp["x-opt-offset"] = e.Offset
	sp["x-opt-enqueued-time"] = e.EnqueuedTime.UTC().Format(dotnetUTC)
	sp["SequenceNumber"] = e.SequenceNumber
	if off, err := strconv.ParseInt(e.Offset, 10, 64); err == nil {
		sp["Offset"] = off
	} else {
		sp["Offset"] = e.Offset
	}
	sp["OffsetString"] = e.Offset
	sp["PartitionKey"] = nil
	sp["EnqueuedTimeUtc"] = e.EnqueuedTime.UTC().Format(dotnetUnspecified)
	return sp
}

func setDefault(m map[string]any, k, v string) {
	if _, ok := m[k]; !ok && v != "" {
		m[k] = v
	}
}
