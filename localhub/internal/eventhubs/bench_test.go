package eventhubs_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventhubs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/eventlog"
)

// Benchmarks of the endpoint with the real azeventhubs v2.0.2 client over
// loopback, each against a floor measured in the same run: what the
// endpoint cannot avoid (docs/performance.md).

// telemetry is a 1 KB device-to-cloud event as the hub routes it.
func telemetry(i int) eventlog.Event {
	return eventlog.Event{
		DeviceID:    "dev-0001",
		Body:        bytes.Repeat([]byte{'a' + byte(i%26)}, 1024),
		MessageID:   "6e1d0b9c-0b7a-4b7e-9a39-" + fmt.Sprintf("%012d", i),
		ContentType: "application/json",
		Properties:  map[string]string{"temperatureAlert": "false"},
		Annotations: map[string]any{
			"iothub-connection-device-id":          "dev-0001",
			"iothub-connection-auth-method":        `{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}`,
			"iothub-connection-auth-generation-id": "638000000000000000",
			"iothub-enqueuedtime":                  time.UnixMilli(1_700_000_000_000).UTC(),
			"iothub-message-source":                "Telemetry",
		},
	}
}

// fill appends n telemetry events to partition p in batches.
func fill(log *eventlog.Log, p, n int) error {
	for i := 0; i < n; {
		batch := make([]eventlog.Event, 0, 1000)
		for ; i < n && len(batch) < cap(batch); i++ {
			batch = append(batch, telemetry(i))
		}
		if _, err := log.AppendTo(p, batch...); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkConsumer: 1 KB events to one azeventhubs PartitionClient
// (prefetch 300, ReceiveEvents(100) in a loop), the way the Functions
// host's reader takes a partition. Each iteration reads 20,000 events
// from the endpoint, then 20,000 from the floor, so both see the same
// machine (it is shared and noisy):
//
//   - endpoint: this package over a log holding the events, read from
//     the start (the last 4 MiB from the log's memory, the rest from
//     files in the page cache), each event encoded as it goes out.
//   - floor: the same client against a bare AMQP application on the same
//     AMQP layer that sends one pre-encoded event over and over: the
//     server's connection and the client, without the log or encoding.
func BenchmarkConsumer(b *testing.B) {
	const n = 20_000
	e := start(b, nil)
	if err := fill(e.events, 0, n); err != nil {
		b.Fatal(err)
	}
	endpoint := e.consumer(b, "listen", azeventhubs.DefaultConsumerGroup)
	floor, err := azeventhubs.NewConsumerClientFromConnectionString(floorCS(serveFloor(true)), "", azeventhubs.DefaultConsumerGroup, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer floor.Close(context.Background())
	var tEndpoint, tFloor time.Duration
	yes := true
	earliest := &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &yes}}
	for b.Loop() {
		tEndpoint += timed(b, func() { readAll(b, endpoint, earliest, n) })
		tFloor += timed(b, func() { readAll(b, floor, nil, n) })
	}
	reportPair(b, float64(n*b.N), tEndpoint, tFloor)
}

func timed(b *testing.B, f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// reportPair reports events/s of the endpoint and of the floor, and
// their ratio.
func reportPair(b *testing.B, events float64, endpoint, floor time.Duration) {
	b.ReportMetric(events/endpoint.Seconds(), "events/s")
	b.ReportMetric(events/floor.Seconds(), "floor-events/s")
	b.ReportMetric(floor.Seconds()/endpoint.Seconds(), "x-floor")
}

// readAll reads n events with a new partition client of c.
func readAll(b *testing.B, c *azeventhubs.ConsumerClient, opts *azeventhubs.PartitionClientOptions, n int) {
	pc, err := c.NewPartitionClient("0", opts)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close(context.Background())
	for got := 0; got < n; {
		evs, err := pc.ReceiveEvents(context.Background(), min(100, n-got), nil)
		if err != nil {
			b.Fatal(err)
		}
		got += len(evs)
	}
}

// BenchmarkProducer: batches of 1 KB events, each as full as the 1 MiB
// limit allows, from one azeventhubs ProducerClient to one partition;
// each send waits for the events to be on disk. Each iteration sends one
// batch through the endpoint (to partition 0), then appends the same
// number of events to the log directly (to partition 1): the floor, the
// write and fsync the endpoint cannot avoid.
func BenchmarkProducer(b *testing.B) {
	e := start(b, nil)
	p := e.producer(b, "send")
	body := bytes.Repeat([]byte("x"), 1024)
	var tEndpoint, tFloor time.Duration
	events := 0
	for b.Loop() {
		var batch *azeventhubs.EventDataBatch
		tEndpoint += timed(b, func() {
			var err error
			if batch, err = p.NewEventDataBatch(context.Background(), &azeventhubs.EventDataBatchOptions{PartitionID: ptr("0")}); err != nil {
				b.Fatal(err)
			}
			for {
				err := batch.AddEventData(&azeventhubs.EventData{Body: body, ContentType: ptr("application/json")}, nil)
				if errors.Is(err, azeventhubs.ErrEventDataTooLarge) {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if err := p.SendEventDataBatch(context.Background(), batch, nil); err != nil {
				b.Fatal(err)
			}
		})
		direct := make([]eventlog.Event, batch.NumEvents())
		for i := range direct {
			direct[i] = eventlog.Event{Body: body, ContentType: "application/json"}
		}
		tFloor += timed(b, func() {
			if _, err := e.events.AppendTo(1, direct...); err != nil {
				b.Fatal(err)
			}
		})
		events += len(direct)
	}
	reportPair(b, float64(events), tEndpoint, tFloor)
	b.ReportMetric(float64(events)/float64(b.N), "events/batch")
}

// BenchmarkIdleConsumersMemory: what 10 consumers cost the endpoint's
// process, measured in a child process serving the endpoint (so the
// clients' own memory does not count): the live heap and goroutine
// stacks after a collection, before and after.
//
//   - idle: 10 consumers (each its own connection, as 10 hosts would be,
//     each on its own partition) waiting at the head of an empty one.
//   - stalled: the same over a backlog of 2,000 1 KB events each, whose
//     application never takes an event after the first, so credit is
//     never renewed: each holds what its link buffers, bounded whatever
//     the backlog.
//   - floor-idle, floor-stalled: the same clients on the bare AMQP
//     application, sending nothing or the same event over and over: the
//     AMQP layer's own connections, links and buffers.
func BenchmarkIdleConsumersMemory(b *testing.B) {
	for _, kind := range []string{"idle", "floor-idle", "stalled", "floor-stalled"} {
		b.Run(kind, func(b *testing.B) {
			srv := startChild(b, kind)
			for b.Loop() {
				before := srv.mem(b)
				var clients []*azeventhubs.ConsumerClient
				for i := range 10 {
					c, err := azeventhubs.NewConsumerClientFromConnectionString(srv.cs, "", azeventhubs.DefaultConsumerGroup, nil)
					if err != nil {
						b.Fatal(err)
					}
					yes := true
					pc, err := c.NewPartitionClient(strconv.Itoa(i), &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &yes}})
					if err != nil {
						b.Fatal(err)
					}
					// One receive attaches the link; the backlog then fills the
					// client's prefetch and the endpoint's buffers.
					ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
					_, err = pc.ReceiveEvents(ctx, 1, nil)
					cancel()
					if err != nil && !errors.Is(err, context.DeadlineExceeded) {
						b.Fatal(err)
					}
					clients = append(clients, c)
				}
				after := srv.steady(b)
				b.ReportMetric(float64(after-before)/10, "B/consumer")
				for _, c := range clients {
					_ = c.Close(context.Background())
				}
			}
		})
	}
}

// child is an endpoint (or the floor application) served by a child
// process: this test binary, re-run with benchChildEnv set.
type child struct {
	cs  string
	in  io.Writer
	out *bufio.Scanner
}

const benchChildEnv = "EVENTHUBS_BENCH_CHILD"

func TestMain(m *testing.M) {
	if kind := os.Getenv(benchChildEnv); kind != "" {
		runChild(kind)
		return
	}
	os.Exit(m.Run())
}

func startChild(b *testing.B, kind string) *child {
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+kind)
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	c := &child{in: in, out: bufio.NewScanner(out)}
	if !c.out.Scan() {
		b.Fatal("the child printed no connection string")
	}
	c.cs = c.out.Text()
	return c
}

// mem asks the child for its live heap and stacks after a collection.
func (c *child) mem(b *testing.B) int64 {
	if _, err := io.WriteString(c.in, "mem\n"); err != nil {
		b.Fatal(err)
	}
	if !c.out.Scan() {
		b.Fatal("the child died")
	}
	n, err := strconv.ParseInt(c.out.Text(), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// steady polls the child's memory until it stops growing (the endpoint's
// pumps have filled what they may), and returns it.
func (c *child) steady(b *testing.B) int64 {
	last := c.mem(b)
	for range 30 {
		time.Sleep(100 * time.Millisecond)
		now := c.mem(b)
		if now-last < last/100 {
			return now
		}
		last = now
	}
	return last
}

// runChild serves kind until stdin closes, printing the connection string
// first and its memory when asked.
func runChild(kind string) {
	var cs string
	switch kind {
	case "floor-idle":
		cs = floorCS(serveFloor(false))
	case "floor-stalled":
		cs = floorCS(serveFloor(true))
	default:
		dir, err := os.MkdirTemp("", "eventhubs-bench-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		events, err := eventlog.Open(eventlog.Options{Dir: dir, Partitions: 10})
		if err != nil {
			panic(err)
		}
		for p := range 10 {
			if kind == "stalled" {
				if err := fill(events, p, 2_000); err != nil {
					panic(err)
				}
			}
		}
		srv, err := eventhubs.NewServer(eventhubs.Options{
			Events: events, Hostname: testHost, Name: testName,
			Policy: func(name string) (eventhubs.Policy, bool) {
				return eventhubs.Policy{Name: name, Keys: []string{keyOf(name)}, Rights: eventhubs.Listen}, true
			},
		})
		if err != nil {
			panic(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		go srv.Serve(ln)
		cs = fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=listen;SharedAccessKey=%s;EntityPath=%s;UseDevelopmentEmulator=true", ln.Addr(), keyOf("listen"), testName)
	}
	fmt.Println(cs)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if strings.TrimSpace(in.Text()) == "mem" {
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Println(ms.HeapAlloc + ms.StackInuse)
		}
	}
}

// The floor application: the least an Event Hubs client needs from a
// server (CBS accepting any token; a partition sending one pre-encoded
// event over and over), on the same AMQP layer.

// serveFloor serves the floor application; send says whether its
// partitions send anything.
func serveFloor(send bool) string {
	ev := telemetry(0)
	ev.SequenceNumber, ev.Offset, ev.EnqueuedTime = 1, "1024", time.Now().UTC()
	payload, err := eventhubs.EncodeEvent(&ev)
	if err != nil {
		panic(err)
	}
	srv := amqp.NewServer(amqp.Options{Attach: func(ctx context.Context, l *amqp.Link) (amqp.LinkOptions, error) {
		switch {
		case l.Address() == "$cbs" && l.Role() == frame.RoleReceiver:
			go amqp.ServeRequests(l.Context(), l, func(context.Context, *codec.Message) *codec.Message {
				return &codec.Message{ApplicationProperties: codec.Map{{Key: "status-code", Value: int32(202)}, {Key: "status-description", Value: "Accepted"}}}
			})
		case l.Address() == "$cbs":
		case l.Role() == frame.RoleSender:
			go func() {
				for send && l.Send(l.Context(), payload) == nil {
				}
			}()
		default:
			return amqp.LinkOptions{}, amqp.Errorf(frame.CondNotFound, "not here")
		}
		return amqp.LinkOptions{}, nil
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	return ln.Addr().String()
}

func floorCS(addr string) string {
	return fmt.Sprintf("Endpoint=sb://%s;SharedAccessKeyName=x;SharedAccessKey=eA==;EntityPath=%s;UseDevelopmentEmulator=true", addr, testName)
}
