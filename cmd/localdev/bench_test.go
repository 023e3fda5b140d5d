package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azeventhubs/v2"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost"
	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/latency"
)

// BenchmarkReportToProcessorLine measures make run's event path end to
// end: a device (paho, MQTT/TLS) reports a new lastReboot, the hub
// updates the twin and routes the twin change to its built-in endpoint,
// the local host reads it over AMQP with azeventhubs, invokes the real
// handler, and logs TwinChangeProcessor's `reboot reported` line. The
// wiring is make run's (appSettings: the UseDevelopmentEmulator=true
// connection string, checkpoints in files).
//
// The floor, in the same iterations: the same report read by an
// azeventhubs consumer of the same endpoint, in the application, with no
// Functions host or handler. Both clocks start before the report is sent.
func BenchmarkReportToProcessorLine(b *testing.B) {
	app := funchosttest.AppRoot(b)
	hub := localhubtest.New(b, nil)
	settings, err := appSettings(hub)
	require.NoError(b, err)
	lines := &lineStamps{stamps: make(chan stamp, 1024)}
	host, err := funchost.Start(b.Context(), funchost.Options{ScriptRoot: app, Settings: settings, CheckpointDir: b.TempDir(), Logger: slog.New(lines)})
	require.NoError(b, err)
	b.Cleanup(func() { host.Close() })

	const device = "bench-dev"
	dev := localhubtest.NewDevice(b, hub, device, localhubtest.Reply(200, `{}`))
	floor := directConsumer(b, settings["IOTHUB_EVENTHUB_CONNECTION"], strconv.Itoa(hub.Events().PartitionFor(device)))

	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	report := func() (processor, direct time.Duration) {
		at = at.Add(time.Second)
		start := time.Now()
		_, err := dev.Report(`{"iothubDM":{"reboot":{"lastReboot":"` + at.Format(time.RFC3339Nano) + `","status":"running"}}}`)
		require.NoError(b, err)
		return lines.await(b, at).Sub(start), floor.await(b, at).Sub(start)
	}
	for range 3 { // links attached, connections warm
		report()
	}
	var viaHost, direct []time.Duration
	for b.Loop() {
		p, d := report()
		viaHost = append(viaHost, p)
		direct = append(direct, d)
	}
	hostP50, floorP50 := latency.PercentileMS(viaHost, 0.5), latency.PercentileMS(direct, 0.5)
	b.ReportMetric(hostP50, "p50-ms")
	b.ReportMetric(latency.PercentileMS(viaHost, 0.99), "p99-ms")
	b.ReportMetric(floorP50, "floor-p50-ms")
	b.ReportMetric(latency.PercentileMS(direct, 0.99), "floor-p99-ms")
	b.ReportMetric(hostP50/floorP50, "x-floor-p50")
}

// stamp is when a lastReboot was seen.
type stamp struct {
	lastReboot time.Time
	at         time.Time
}

// awaitStamp returns when lastReboot was seen, skipping older ones.
func awaitStamp(b *testing.B, stamps <-chan stamp, lastReboot time.Time, what string) time.Time {
	b.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case s := <-stamps:
			if s.lastReboot.Equal(lastReboot) {
				return s.at
			}
		case <-timeout:
			b.Fatalf("no %s for lastReboot %s within %s", what, lastReboot.Format(time.RFC3339Nano), waitFor)
		}
	}
}

// lineStamps is a slog handler that stamps each `reboot reported` line
// as the host logs it.
type lineStamps struct {
	stamps chan stamp
}

var lastRebootField = regexp.MustCompile(`lastReboot=([^\s"]+)`)

func (l *lineStamps) Enabled(context.Context, slog.Level) bool { return true }

func (l *lineStamps) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "reboot reported") {
		return nil
	}
	now := time.Now()
	if m := lastRebootField.FindStringSubmatch(r.Message); m != nil {
		if at, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
			select {
			case l.stamps <- stamp{lastReboot: at, at: now}:
			default: // the benchmark reads every stamp; a full channel is its failure
			}
		}
	}
	return nil
}

func (l *lineStamps) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lineStamps) WithGroup(string) slog.Handler      { return l }

func (l *lineStamps) await(b *testing.B, lastReboot time.Time) time.Time {
	return awaitStamp(b, l.stamps, lastReboot, "processor line")
}

// floorConsumer reads a partition with azeventhubs and stamps every
// lastReboot it finds in a twin change.
type floorConsumer struct {
	stamps chan stamp
}

func directConsumer(b *testing.B, connectionString, partition string) *floorConsumer {
	b.Helper()
	client, err := azeventhubs.NewConsumerClientFromConnectionString(connectionString, "", azeventhubs.DefaultConsumerGroup, nil)
	require.NoError(b, err)
	// From the start of the partition, which holds only this benchmark's
	// events: Latest would be read when the link attaches, after the first
	// report perhaps.
	yes := true
	pc, err := client.NewPartitionClient(partition, &azeventhubs.PartitionClientOptions{StartPosition: azeventhubs.StartPosition{Earliest: &yes}})
	require.NoError(b, err)
	f := &floorConsumer{stamps: make(chan stamp, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			// One at a time: ReceiveEvents returns once it has count events.
			evs, err := pc.ReceiveEvents(ctx, 1, nil)
			now := time.Now()
			if err != nil && ctx.Err() != nil {
				return
			}
			for _, e := range evs {
				var body struct {
					Properties struct {
						Reported struct {
							IothubDM struct {
								Reboot struct {
									LastReboot time.Time `json:"lastReboot"`
								} `json:"reboot"`
							} `json:"iothubDM"`
						} `json:"reported"`
					} `json:"properties"`
				}
				if json.Unmarshal(e.Body, &body) == nil && !body.Properties.Reported.IothubDM.Reboot.LastReboot.IsZero() {
					select {
					case f.stamps <- stamp{lastReboot: body.Properties.Reported.IothubDM.Reboot.LastReboot, at: now}:
					default:
					}
				}
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		pc.Close(context.Background())
		client.Close(context.Background())
	})
	return f
}

func (f *floorConsumer) await(b *testing.B, lastReboot time.Time) time.Time {
	return awaitStamp(b, f.stamps, lastReboot, "event at the direct consumer")
}
