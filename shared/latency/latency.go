// Package latency summarises measured durations for benchmarks: the one
// percentile helper of this repository, so every figure in
// docs/performance.md is computed the same way.
package latency

import (
	"math"
	"slices"
	"time"
)

// Percentile returns the p-th percentile (0 < p <= 1) of d by nearest rank,
// or 0 for no samples. d is not modified.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sorted := slices.Clone(d)
	slices.Sort(sorted)
	return sorted[rank(len(sorted), p)]
}

// PercentileMS is Percentile in milliseconds, the unit benchmarks report
// ("p50-ms", "p99-ms").
func PercentileMS(d []time.Duration, p float64) float64 {
	return float64(Percentile(d, p)) / float64(time.Millisecond)
}

func rank(n int, p float64) int {
	return min(n-1, max(0, int(math.Ceil(p*float64(n)))-1))
}
