package codec_test

import (
	"bytes"
	"testing"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
)

// The benchmarks encode and decode a 1 KB telemetry event with IoT Hub's
// annotations. The floor is copying the encoded bytes, the least any
// encoder must do.

func BenchmarkMessageEncode(b *testing.B) {
	m := iotHubEvent(bytes.Repeat([]byte("x"), 1024))
	enc, _ := m.MarshalBinary()
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkMessageDecode(b *testing.B) {
	enc, _ := iotHubEvent(bytes.Repeat([]byte("x"), 1024)).MarshalBinary()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		var m codec.Message
		if err := m.UnmarshalBinary(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkMessageSplitSections(b *testing.B) {
	enc, _ := iotHubEvent(bytes.Repeat([]byte("x"), 1024)).MarshalBinary()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := codec.SplitSections(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkMessageCopyFloor copies the encoded event: the floor for both.
func BenchmarkMessageCopyFloor(b *testing.B) {
	enc, _ := iotHubEvent(bytes.Repeat([]byte("x"), 1024)).MarshalBinary()
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		buf = append(buf[:0], enc...)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
