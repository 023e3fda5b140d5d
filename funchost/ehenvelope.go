package funchost

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/Azure/go-amqp"
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
	conn          ehConnection
	// untypedMany: cardinality many without dataType, which the host
	// delivers as object[] (unverified); sent as strings here.
	untypedMany bool
}

// namespace is the PartitionContext's FullyQualifiedNamespace.
func (t *eventHubTrigger) namespace() string { return t.conn.namespace }

// newEventHubTrigger resolves the binding like the extension's
// EventHubClientFactory: %SETTING% expressions in eventHubName,
// consumerGroup (default $Default) and connection, the connection setting
// (resolveConnection), and EntityPath in a connection string winning over
// eventHubName.
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
	if b.Connection == "" {
		return nil, fmt.Errorf("binding %q has no connection setting name", b.Name)
	}
	conn, err := resolveBindingExpression(b.Connection, s)
	if err != nil {
		return nil, fmt.Errorf("connection: %w", err)
	}
	if t.conn, err = resolveConnection(conn, s); err != nil {
		return nil, err
	}
	if t.conn.entityPath != "" {
		t.eventHubName = t.conn.entityPath
	}
	if t.eventHubName == "" {
		return nil, fmt.Errorf("no event hub name: set eventHubName, or EntityPath in the connection %q", conn)
	}
	return t, nil
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
// JSON-encoded once more, objects as objects, nulls omitted.
type ehSingleMetadata struct {
	TriggerPartitionContext partitionContext `json:"TriggerPartitionContext"`
	PartitionContext        partitionContext `json:"PartitionContext"`
	Offset                  string           `json:"Offset"`
	OffsetString            string           `json:"OffsetString"`
	// PartitionKey is left out when null, as every null.
	PartitionKey     string         `json:"PartitionKey,omitempty"`
	SequenceNumber   string         `json:"SequenceNumber"`
	EnqueuedTimeUtc  string         `json:"EnqueuedTimeUtc"`
	Properties       map[string]any `json:"Properties"`
	SystemProperties map[string]any `json:"SystemProperties"`
	RetryContext     *retryContext  `json:"RetryContext,omitempty"`
	Sys              sysData        `json:"sys"`
}

type ehEnvelope struct {
	Data     map[string]string `json:"Data"`
	Metadata any               `json:"Metadata"`
}

// buildEventHubBatch renders a cardinality-many invocation
// (functions-custom-handler.md §3.1-§3.2): Data.<binding> is a string
// holding the JSON array of the bodies (strings, or base64 for binary).
func buildEventHubBatch(t *eventHubTrigger, pc partitionContext, evs []*azeventhubs.ReceivedEventData, sys sysData, retry *retryContext) ([]byte, error) {
	n := len(evs)
	keys := make([]*string, n)
	offsets := make([]string, n)
	seqs := make([]int64, n)
	times := make([]string, n)
	props := make([]map[string]any, n)
	sysProps := make([]map[string]any, n)
	bodies := make([]string, n)
	for i, e := range evs {
		keys[i] = e.PartitionKey
		offsets[i] = e.Offset
		seqs[i] = e.SequenceNumber
		times[i] = enqueuedTime(e).Format(dotnetUnspecified)
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
func buildEventHubSingle(t *eventHubTrigger, pc partitionContext, e *azeventhubs.ReceivedEventData, sys sysData, retry *retryContext) ([]byte, error) {
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
		EnqueuedTimeUtc:  enqueuedTime(e).Format("2006-01-02T15:04:05"),
		Properties:       properties(e),
		SystemProperties: systemProperties(e),
		RetryContext:     retry,
		Sys:              sys,
	}
	if e.PartitionKey != nil {
		meta.PartitionKey = jsonString(*e.PartitionKey)
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

// enqueuedTime is x-opt-enqueued-time in UTC (the zero time if an event
// lacks it, which Event Hubs never sends).
func enqueuedTime(e *azeventhubs.ReceivedEventData) time.Time {
	if e.EnqueuedTime == nil {
		return time.Time{}
	}
	return e.EnqueuedTime.UTC()
}

// properties are the event's application properties as the host
// serializes EventData.Properties (an IDictionary<string, object>).
func properties(e *azeventhubs.ReceivedEventData) map[string]any {
	out := make(map[string]any, len(e.Properties))
	for k, v := range e.Properties {
		out[k] = dotnetValue(v)
	}
	return out
}

// systemProperties is the event's SystemProperties as the extension builds
// them (AmqpSystemProperties): the AMQP properties that are set, every
// message annotation (Event Hubs' x-opt-* and IoT Hub's iothub-* ones
// included), then the extension's own entries.
func systemProperties(e *azeventhubs.ReceivedEventData) map[string]any {
	var raw *azeventhubs.AMQPAnnotatedMessage
	if e.RawAMQPMessage != nil {
		raw = e.RawAMQPMessage
	} else {
		raw = &azeventhubs.AMQPAnnotatedMessage{}
	}
	sp := make(map[string]any, len(raw.MessageAnnotations)+16)
	if p := raw.Properties; p != nil {
		setAny(sp, "message-id", p.MessageID)
		if p.UserID != nil {
			sp["user-id"] = base64.StdEncoding.EncodeToString(p.UserID)
		}
		setString(sp, "to", p.To)
		setString(sp, "subject", p.Subject)
		setString(sp, "reply-to", p.ReplyTo)
		setAny(sp, "correlation-id", p.CorrelationID)
		setString(sp, "content-type", p.ContentType)
		setString(sp, "content-encoding", p.ContentEncoding)
		if p.AbsoluteExpiryTime != nil {
			sp["absolute-expiry-time"] = dotnetValue(*p.AbsoluteExpiryTime)
		}
		if p.CreationTime != nil {
			sp["creation-time"] = dotnetValue(*p.CreationTime)
		}
		setString(sp, "group-id", p.GroupID)
		if p.GroupSequence != nil {
			sp["group-sequence"] = *p.GroupSequence
		}
		setString(sp, "reply-to-group-id", p.ReplyToGroupID)
	}
	for k, v := range raw.MessageAnnotations {
		if key, ok := k.(string); ok {
			sp[key] = dotnetValue(v)
		}
	}
	sp["SequenceNumber"] = e.SequenceNumber
	if off, err := strconv.ParseInt(e.Offset, 10, 64); err == nil {
		sp["Offset"] = off
	} else {
		sp["Offset"] = e.Offset
	}
	sp["OffsetString"] = e.Offset
	if e.PartitionKey != nil {
		sp["PartitionKey"] = *e.PartitionKey
	} else {
		sp["PartitionKey"] = nil
	}
	sp["EnqueuedTimeUtc"] = enqueuedTime(e).Format(dotnetUnspecified)
	return sp
}

func setString(m map[string]any, k string, v *string) {
	if v != nil {
		m[k] = *v
	}
}

func setAny(m map[string]any, k string, v any) {
	if v != nil {
		m[k] = dotnetValue(v)
	}
}

// dotnetValue renders an AMQP value as Newtonsoft renders the .NET value
// the client decodes it to: timestamps as UTC DateTimes, binary as base64,
// UUIDs as GUID strings; numbers, strings and booleans as they are.
func dotnetValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format(dotnetUTC)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case amqp.UUID:
		return x.String()
	case amqp.Symbol:
		return string(x)
	}
	return v
}
