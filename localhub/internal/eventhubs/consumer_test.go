package eventhubs_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/stretchr/testify/require"
)

func TestProperties(t *testing.T) {
	e := start(t, nil)
	c := e.consumer(t, "listen", azeventhubs.DefaultConsumerGroup)

	props, err := c.GetEventHubProperties(ctx(t), nil)
	require.NoError(t, err)
	require.Equal(t, testName, props.Name)
	require.Equal(t, []string{"0", "1"}, props.PartitionIDs)
	require.True(t, props.CreatedOn.Equal(e.events.CreatedAt()), "created_at is when the log was created")
	require.False(t, props.GeoReplicationEnabled)

	empty, err := c.GetPartitionProperties(ctx(t), "1", nil)
	require.NoError(t, err)
	require.True(t, empty.LastEnqueuedOn.Equal(time.UnixMilli(0)), "an empty partition's last time is the epoch")
	empty.LastEnqueuedOn = time.Time{}
	require.Equal(t, azeventhubs.PartitionProperties{
		EventHubName: testName, PartitionID: "1", IsEmpty: true,
		BeginningSequenceNumber: 0, LastEnqueuedSequenceNumber: -1, LastEnqueuedOffset: "-1",
	}, empty)

	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	e.clock.set(at)
	stored := e.append(t, 1, "a", "b")
	p, err := c.GetPartitionProperties(ctx(t), "1", nil)
	require.NoError(t, err)
	require.False(t, p.IsEmpty)
	require.Equal(t, int64(0), p.BeginningSequenceNumber)
	require.Equal(t, int64(1), p.LastEnqueuedSequenceNumber)
	require.Equal(t, stored[1].Offset, p.LastEnqueuedOffset)
	require.True(t, p.LastEnqueuedOn.Equal(at))

	_, err = c.GetPartitionProperties(ctx(t), "2", nil)
	require.ErrorContains(t, err, "could not be found")
}

// TestStartPositions reads partition 0 from every start position the
// clients can ask for, with events enqueued a second apart.
func TestStartPositions(t *testing.T) {
	e := start(t, nil)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var stored []string // offsets
	for i := range 5 {
		e.clock.set(t0.Add(time.Duration(i) * time.Second))
		ev := e.append(t, 0, "e"+strconv.Itoa(i))
		stored = append(stored, ev[0].Offset)
	}
	e.clock.set(t0.Add(time.Minute)) // within the retention of what was stored
	c := e.consumer(t, "listen", azeventhubs.DefaultConsumerGroup)
	yes := true
	seq := func(n int64) *int64 { return &n }
	at := func(i int) *time.Time { x := t0.Add(time.Duration(i) * time.Second); return &x }

	t.Run("positions", func(t *testing.T) { // in parallel: each waits a moment for nothing more
		for _, tt := range []struct {
			name string
			pos  azeventhubs.StartPosition
			want []string
		}{
			{"earliest", azeventhubs.StartPosition{Earliest: &yes}, []string{"e0", "e1", "e2", "e3", "e4"}},
			{"offset exclusive", azeventhubs.StartPosition{Offset: &stored[1]}, []string{"e2", "e3", "e4"}},
			{"offset inclusive", azeventhubs.StartPosition{Offset: &stored[1], Inclusive: true}, []string{"e1", "e2", "e3", "e4"}},
			{"sequence number exclusive", azeventhubs.StartPosition{SequenceNumber: seq(2)}, []string{"e3", "e4"}},
			{"sequence number inclusive", azeventhubs.StartPosition{SequenceNumber: seq(2), Inclusive: true}, []string{"e2", "e3", "e4"}},
			{"enqueued time exclusive", azeventhubs.StartPosition{EnqueuedTime: at(3)}, []string{"e4"}},
			{"enqueued time inclusive", azeventhubs.StartPosition{EnqueuedTime: at(3), Inclusive: true}, []string{"e3", "e4"}},
			{"enqueued time between events", azeventhubs.StartPosition{EnqueuedTime: func() *time.Time { x := t0.Add(1500 * time.Millisecond); return &x }()}, []string{"e2", "e3", "e4"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				pc := partitionClient(t, c, "0", tt.pos, nil)
				got := receive(t, pc, len(tt.want))
				require.Equal(t, tt.want, bodies(got))
				for _, ev := range got {
					i, _ := strconv.Atoi(string(ev.Body[1:]))
					require.Equal(t, int64(i), ev.SequenceNumber)
					require.Equal(t, stored[i], ev.Offset)
					require.True(t, ev.EnqueuedTime.Equal(*at(i)), "x-opt-enqueued-time")
				}
				nothingMore(t, pc)
			})
		}
	})

	t.Run("latest", func(t *testing.T) {
		pc := partitionClient(t, c, "0", azeventhubs.StartPosition{Latest: &yes}, nil)
		nothingMore(t, pc) // attached: what is there already is behind it
		e.append(t, 0, "e5")
		require.Equal(t, []string{"e5"}, bodies(receive(t, pc, 1)))
	})
	t.Run("default is latest", func(t *testing.T) {
		pc := partitionClient(t, c, "0", azeventhubs.StartPosition{}, nil)
		nothingMore(t, pc)
		e.append(t, 0, "e6")
		require.Equal(t, []string{"e6"}, bodies(receive(t, pc, 1)))
	})
}

// TestManyEventsAndCredit reads more than a client's prefetch (300) so
// credit must be renewed, and reads them from disk rather than from the
// log's memory.
func TestManyEventsAndCredit(t *testing.T) {
	e := start(t, nil)
	const n = 2000
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	e.append(t, 1, want...)
	c := e.consumer(t, "listen", "extra")
	yes := true
	pc := partitionClient(t, c, "1", azeventhubs.StartPosition{Earliest: &yes}, nil)
	require.Equal(t, want, bodies(receive(t, pc, n)))
}
