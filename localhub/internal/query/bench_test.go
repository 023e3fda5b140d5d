package query

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func BenchmarkRun(b *testing.B) {
	const n = 10_000
	docs := make([]map[string]any, n)
	for i := range docs {
		docs[i] = map[string]any{
			"deviceId": fmt.Sprintf("dev%05d", i), "status": "enabled", "version": float64(2),
			"tags": map[string]any{"location": map[string]any{"region": "US"}},
			"properties": map[string]any{
				"desired": map[string]any{"$version": float64(1)},
				"reported": map[string]any{
					"iothubDM": map[string]any{"reboot": map[string]any{
						"lastReboot": fmt.Sprintf("2024-%02d-01T00:00:00Z", i%12+1),
					}},
					"$version": float64(1),
				},
			},
		}
	}
	q, err := Parse("SELECT * FROM devices WHERE properties.reported.iothubDM.reboot.lastReboot >= '2024-07-01T00:00:00Z'")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		res, err := q.Run(docs)
		if err != nil || len(res.Items) == 0 {
			b.Fatalf("Run = %d items, %v", len(res.Items), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/twin")
}
