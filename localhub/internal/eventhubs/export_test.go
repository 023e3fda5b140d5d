package eventhubs

import "github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"

// EncodeEvent is the encoding consumers get, for benchmarks' floors.
func EncodeEvent(e *eventlog.Event) ([]byte, error) {
	var enc encoder
	return enc.encode(e)
}
