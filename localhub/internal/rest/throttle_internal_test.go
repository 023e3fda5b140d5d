package rest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucketRefillsAtRate(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(2, t0) // burst 2
	require.True(t, b.take(t0, 1))
	require.True(t, b.take(t0, 1))
	require.False(t, b.take(t0, 1), "burst used")
	require.False(t, b.take(t0.Add(400*time.Millisecond), 1), "0.8 tokens")
	require.True(t, b.take(t0.Add(500*time.Millisecond), 1), "1 token after 0.5 s")
	require.True(t, b.take(t0.Add(time.Hour), 2), "refills to the burst, no more")
	require.False(t, b.take(t0.Add(time.Hour), 1))
}

func TestBucketSlowRateAllowsOne(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(20.0/60, t0) // 20/min: one call, then one every 3 s
	require.True(t, b.take(t0, 1))
	require.False(t, b.take(t0.Add(2900*time.Millisecond), 1))
	require.True(t, b.take(t0.Add(3*time.Second), 1))
}

func TestBucketLetsAnOversizedCallThroughWhenFull(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(1, t0)
	require.True(t, b.take(t0, 3), "a 3-unit call on a 1-unit burst")
	require.False(t, b.take(t0.Add(2*time.Second), 1), "it is paid back before anything else passes")
	require.True(t, b.take(t0.Add(3*time.Second), 1))
}
