package device

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatsWaitWakesOnChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var st Stats
		done := make(chan error, 1)
		go func() {
			done <- st.Wait(context.Background(), func(s Snapshot) bool { return s.Connected == 2 })
		}()
		st.update(func(s *Snapshot) { s.Connected++ })
		synctest.Wait()
		require.Empty(t, done, "one of two")
		st.update(func(s *Snapshot) { s.Connected++ })
		synctest.Wait()
		require.NoError(t, <-done)
	})
}

func TestStatsWaitEndsWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var st Stats
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := st.Wait(ctx, func(s Snapshot) bool { return s.Connected > 0 })
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestNilStatsCountsNothing(t *testing.T) {
	var st *Stats
	require.NotPanics(t, func() { st.update(func(s *Snapshot) { s.Connected++ }) })
}
