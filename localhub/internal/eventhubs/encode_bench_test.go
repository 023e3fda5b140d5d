package eventhubs

import (
	"bytes"
	"testing"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// BenchmarkEncode: one 1 KB telemetry event into the message a consumer
// gets; the floor is copying the body, which any encoding must do.
func BenchmarkEncode(b *testing.B) {
	e := eventlog.Event{
		DeviceID: "dev-0001", Body: bytes.Repeat([]byte("x"), 1024), MessageID: "6e1d0b9c-0b7a-4b7e-9a39-6f3b2a1c0d11",
		ContentType: "application/json", Properties: map[string]string{"temperatureAlert": "false"},
		Annotations: map[string]any{
			"iothub-connection-device-id":          "dev-0001",
			"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
			"iothub-connection-auth-generation-id": "638000000000000000",
			"iothub-enqueuedtime":                  time.UnixMilli(1_700_000_000_000).UTC(),
			"iothub-message-source":                "Telemetry",
		},
		SequenceNumber: 123456, Offset: "987654321", EnqueuedTime: time.UnixMilli(1_700_000_000_123).UTC(),
	}
	b.Run("encode", func(b *testing.B) {
		var enc encoder
		b.ReportAllocs()
		for b.Loop() {
			if _, err := enc.encode(&e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("floor-copy", func(b *testing.B) {
		var dst []byte
		b.ReportAllocs()
		for b.Loop() {
			dst = append(dst[:0], e.Body...)
		}
	})
}
