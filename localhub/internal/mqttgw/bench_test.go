package mqttgw

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/latency"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

func BenchmarkMethodRoundTrip(b *testing.B) {
	h := newTestHub(b)
	key := h.createDevice(b, "d1").Authentication.SymmetricKey.PrimaryKey
	d := h.connect(b, "d1", key)
	d.answerMethods(b, 200)
	payload := []byte(`{"delay":0}`)

	var latencies []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, _, err := h.gw.InvokeMethod(context.Background(), "d1", "reboot", payload, waitLimit, 0); err != nil {
			b.Fatal(err)
		}
		latencies = append(latencies, time.Since(start))
	}
	slices.Sort(latencies)
	b.ReportMetric(latency.PercentileMS(latencies, 0.50), "p50-ms")
	b.ReportMetric(latency.PercentileMS(latencies, 0.99), "p99-ms")
}

const (
	fleetSize = 1000
	fleetEnv  = "MQTTGW_TEST_FLEET" // addr|devices|key; the CA PEM is in fleetCA
	fleetCA   = "MQTTGW_TEST_FLEET_CA"
	fleetKey  = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" // shared by the fleet
)

// BenchmarkMethodThroughput1000 calls 1,000 connected devices in parallel
// (one call per device per iteration) and reports calls/s and the memory
// each connected device costs the gateway (heap + stacks, and RSS).
func BenchmarkMethodThroughput1000(b *testing.B) {
	h := newTestHub(b)
	createFleet(b, h.reg)

	heap0, rss0 := memoryInUse()
	stopFleet := startFleet(b, h)
	b.Cleanup(stopFleet)
	require.Equal(b, fleetSize, h.gw.ConnectedCount())
	heap1, rss1 := memoryInUse()

	payload := []byte(`{"delay":0}`)
	calls := 0
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make(chan error, fleetSize)
		for i := range fleetSize {
			wg.Go(func() {
				_, _, err := h.gw.InvokeMethod(context.Background(), fleetID(i), "reboot", payload, waitLimit, 0)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", fleetID(i), err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		calls += fleetSize
	}
	// After the loop: b.Loop's first call deletes metrics reported before it.
	b.ReportMetric(float64(calls)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(heap1-heap0)/fleetSize, "B/device")
	b.ReportMetric(float64(rss1-rss0)/fleetSize, "rss-B/device")
}

func fleetID(i int) string { return fmt.Sprintf("fleet-%04d", i) }

// createFleet registers the fleet with one shared key, in parallel so the
// registry can group its commits.
func createFleet(b *testing.B, reg *registry.Store) {
	b.Helper()
	var wg sync.WaitGroup
	ids := make(chan int)
	errs := make(chan error, fleetSize)
	for range 32 {
		wg.Go(func() {
			for i := range ids {
				_, err := reg.CreateDevice(registry.Device{DeviceID: fleetID(i), Authentication: registry.Authentication{
					Type:         "sas",
					SymmetricKey: registry.SymmetricKey{PrimaryKey: fleetKey, SecondaryKey: fleetKey},
				}})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range fleetSize {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// memoryInUse returns the heap and stack bytes in use after a full GC,
// and the process's resident set size.
func memoryInUse() (heapAndStack, rss int64) {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse), residentBytes()
}

func residentBytes() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// startFleet runs the fleet process and returns once every device is
// connected and subscribed to direct methods.
func startFleet(b *testing.B, h *testHub) (stop func()) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(),
		fleetEnv+"="+strings.Join([]string{h.addr, strconv.Itoa(fleetSize), fleetKey}, "|"),
		fleetCA+"="+string(h.caPEM))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(b, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("fleet said %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-ready:
		require.NoError(b, err, "fleet start")
	case <-time.After(2 * time.Minute):
		b.Fatal("fleet did not connect in time")
	}
	return func() {
		_ = stdin.Close() // the fleet disconnects and exits on EOF
		_ = cmd.Wait()
	}
}

// runFleet connects the fleet described by fleetEnv, answers every direct
// method with 200 and an echo, prints "ready" and waits for stdin to close.
func runFleet() int {
	parts := strings.Split(os.Getenv(fleetEnv), "|")
	if len(parts) != 3 {
		fmt.Fprintln(os.Stderr, "fleet: bad", fleetEnv)
		return 2
	}
	addr, key := parts[0], parts[2]
	n, _ := strconv.Atoi(parts[1])
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(os.Getenv(fleetCA))) {
		fmt.Fprintln(os.Stderr, "fleet: bad CA in", fleetCA)
		return 2
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: testHost, MinVersion: tls.VersionTLS12}

	clients := make([]paho.Client, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	slots := make(chan struct{}, 64)
	for i := range n {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			c, err := fleetDevice(addr, fleetID(i), key, tlsConf)
			clients[i] = c
			if err != nil {
				errs <- fmt.Errorf("%s: %w", fleetID(i), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(slices.Collect(chanValues(errs))...); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range clients {
		c.Disconnect(0)
	}
	return 0
}

func chanValues[T any](c <-chan T) func(func(T) bool) {
	return func(yield func(T) bool) {
		for v := range c {
			if !yield(v) {
				return
			}
		}
	}
}

func fleetDevice(addr, id, key string, tlsConf *tls.Config) (paho.Client, error) {
	tok, err := sas.New(testHost, "", key, time.Now().Add(time.Hour))
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.NewClientOptions().
		AddBroker("tls://" + addr).
		SetTLSConfig(tlsConf).
		SetClientID(id).
		SetUsername(testHost + "/" + id + "/" + goAPIVersion).
		SetPassword(tok).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetOrderMatters(false).
		SetKeepAlive(5 * time.Minute))
	if t := c.Connect(); !t.WaitTimeout(time.Minute) || t.Error() != nil {
		return c, fmt.Errorf("connect: %v", t.Error())
	}
	t := c.Subscribe(methodsFilter, 0, func(c paho.Client, m paho.Message) {
		if topic, err := methodReplyTopic(m.Topic(), 200); err == nil {
			c.Publish(topic, 0, false, m.Payload())
		}
	})
	if !t.WaitTimeout(time.Minute) || t.Error() != nil {
		return c, fmt.Errorf("subscribe: %v", t.Error())
	}
	return c, nil
}
