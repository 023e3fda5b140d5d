package eventhubs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	goamqp "github.com/Azure/go-amqp"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventhubs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

const (
	testHost = "myhub.azure-devices.net"
	testName = "myhub"
)

// Policies of the test endpoint; the key of each is its name + "-key".
var testPolicies = map[string]eventhubs.Rights{
	"listen": eventhubs.Listen,
	"send":   eventhubs.Send,
	"owner":  eventhubs.Listen | eventhubs.Send,
	"none":   0,
}

func keyOf(policy string) string { return policy + "-key=" }

// clock is a settable clock for the log's enqueued times.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// env is an endpoint on a fresh log, served on a loopback listener.
type env struct {
	srv    *eventhubs.Server
	events *eventlog.Log
	addr   string
	clock  *clock
	dir    string
}

// start serves an endpoint with 2 partitions and the consumer group
// "extra"; mod adjusts its options.
func start(t testing.TB, mod func(*eventhubs.Options)) *env {
	t.Helper()
	e := &env{clock: &clock{}, dir: t.TempDir()}
	e.open(t, mod)
	return e
}

func (e *env) open(t testing.TB, mod func(*eventhubs.Options)) {
	t.Helper()
	events, err := eventlog.Open(eventlog.Options{Dir: e.dir, Partitions: 2, Now: e.clock.now})
	require.NoError(t, err)
	opts := eventhubs.Options{
		Events:         events,
		Hostname:       testHost,
		Name:           testName,
		ConsumerGroups: []string{"extra"},
		Policy: func(name string) (eventhubs.Policy, bool) {
			r, ok := testPolicies[name]
			return eventhubs.Policy{Name: name, Keys: []string{"unused-primary=", keyOf(name)}, Rights: r}, ok
		},
	}
	if os.Getenv("EVENTHUBS_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&opts)
	}
	srv, err := eventhubs.NewServer(opts)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	e.srv, e.events, e.addr = srv, events, ln.Addr().String()
	t.Cleanup(e.stop(t, served))
}

func (e *env) stop(t testing.TB, served chan error) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			require.NoError(t, e.srv.Close())
			require.ErrorIs(t, <-served, amqp.ErrServerClosed)
			require.NoError(t, e.events.Close())
		})
	}
}

// cs is the emulator connection string of a policy, as azeventhubs takes
// it for a plain listener.
func (e *env) cs(policy string) string {
	return fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=%s;SharedAccessKey=%s;EntityPath=%s;UseDevelopmentEmulator=true", e.addr, policy, keyOf(policy), testName)
}

func (e *env) consumer(t testing.TB, policy, group string) *azeventhubs.ConsumerClient {
	t.Helper()
	c, err := azeventhubs.NewConsumerClientFromConnectionString(e.cs(policy), "", group, &azeventhubs.ConsumerClientOptions{
		RetryOptions: azeventhubs.RetryOptions{MaxRetries: -1}, // fail fast: tests look at the first error
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func (e *env) producer(t testing.TB, policy string) *azeventhubs.ProducerClient {
	t.Helper()
	p, err := azeventhubs.NewProducerClientFromConnectionString(e.cs(policy), "", &azeventhubs.ProducerClientOptions{
		RetryOptions: azeventhubs.RetryOptions{MaxRetries: -1},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// partitionClient reads partition p of group from pos.
func partitionClient(t testing.TB, c *azeventhubs.ConsumerClient, p string, pos azeventhubs.StartPosition, ownerLevel *int64) *azeventhubs.PartitionClient {
	t.Helper()
	pc, err := c.NewPartitionClient(p, &azeventhubs.PartitionClientOptions{StartPosition: pos, OwnerLevel: ownerLevel})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close(context.Background()) })
	return pc
}

// receive reads exactly n events, failing on an error or a timeout.
func receive(t testing.TB, pc *azeventhubs.PartitionClient, n int) []*azeventhubs.ReceivedEventData {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*azeventhubs.ReceivedEventData
	for len(out) < n {
		evs, err := pc.ReceiveEvents(ctx, n-len(out), nil)
		require.NoError(t, err, "after %d of %d events", len(out), n)
		out = append(out, evs...)
	}
	return out
}

// nothingMore asserts that no event arrives for a short while: the one
// place a wait is the point, since what is checked is an absence.
func nothingMore(t testing.TB, pc *azeventhubs.PartitionClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	evs, err := pc.ReceiveEvents(ctx, 10, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Empty(t, evs)
}

// append stores bodies in partition p, one append each.
func (e *env) append(t testing.TB, p int, bodies ...string) []eventlog.Event {
	t.Helper()
	var out []eventlog.Event
	for _, b := range bodies {
		evs, err := e.events.AppendTo(p, eventlog.Event{Body: []byte(b)})
		require.NoError(t, err)
		out = append(out, evs...)
	}
	return out
}

func bodies(evs []*azeventhubs.ReceivedEventData) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = string(e.Body)
	}
	return out
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// condition returns the AMQP error condition in err's chain, or "".
func condition(err error) string {
	var ae *goamqp.Error
	if errors.As(err, &ae) {
		return string(ae.Condition)
	}
	var le *goamqp.LinkError
	if errors.As(err, &le) && le.RemoteErr != nil {
		return string(le.RemoteErr.Condition)
	}
	return ""
}
