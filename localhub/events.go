package localhub

import "github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"

// The built-in events endpoint's types, named here so that code outside
// localhub (a local Functions host feeding an Event Hubs trigger, tests
// asserting on routed events) can read the log that Hub.Events returns.
type (
	// EventLog is the built-in endpoint's partitioned log.
	EventLog = eventlog.Log
	// Event is one message on the built-in endpoint.
	Event = eventlog.Event
	// Position is where a reader starts in a partition.
	Position = eventlog.Position
	// PartitionInfo describes a partition as Event Hubs' management API does.
	PartitionInfo = eventlog.PartitionInfo
)

// Message sources, the iothub-message-source annotation of each event.
const (
	SourceTelemetry       = eventlog.SourceTelemetry
	SourceTwinChange      = eventlog.SourceTwinChange
	SourceLifecycle       = eventlog.SourceLifecycle
	SourceConnectionState = eventlog.SourceConnectionState
)
