package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// The call both paths make: a method with a small JSON payload, which the
// devices echo with status 200.
const methodName = "ping"

var methodPayload = []byte(`{"requestId":"perf-000001","delaySeconds":0}`)

// caller makes one direct-method round trip to a device: deviceID, the
// index-th of the fleet.
type caller interface {
	call(ctx context.Context, deviceID string, index int) error
	close()
}

// hubCaller calls through the local hub's service API with this
// repository's client (shared/iothub): HTTPS to the hub, MQTT to the
// device, and back.
type hubCaller struct {
	client *iothub.Client
	http   *http.Client
}

func newHubCaller(info hubInfo) (*hubCaller, error) {
	pem, err := os.ReadFile(info.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no CA certificate in " + info.CAFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 256 // one connection per call in flight, kept
	hc := &http.Client{Transport: tr}
	client, err := iothub.NewClientFromConnectionString(info.Service, &iothub.ClientOptions{
		Endpoint:      info.HTTPSURL,
		ClientOptions: azcore.ClientOptions{Transport: hc},
	})
	if err != nil {
		return nil, err
	}
	return &hubCaller{client: client, http: hc}, nil
}

func (h *hubCaller) call(ctx context.Context, deviceID string, _ int) error {
	resp, err := h.client.InvokeMethod(ctx, deviceID, iothub.MethodRequest{
		MethodName:      methodName,
		Payload:         methodPayload,
		ResponseTimeout: 30 * time.Second,
	}, nil)
	if err != nil {
		return err
	}
	if resp.Status != 200 || !bytes.Equal(resp.Payload, methodPayload) {
		return fmt.Errorf("device %s answered %d %s", deviceID, resp.Status, resp.Payload)
	}
	return nil
}

func (h *hubCaller) close() { h.http.CloseIdleConnections() }

// floorCaller is the requester on the floor: as many paho connections to
// the bare broker as there are calls in flight (as many as the HTTP client
// opens to the hub), each the requester for an equal share of the devices.
// A connection publishes each request to its device's topic and takes
// its devices' answers on its subscriptions, matched to their calls by
// request id, as the hub matches them. One requester connection for all
// calls would make its one reader in the broker the bottleneck, and the
// floor lower than a bare broker can go.
type floorCaller struct {
	conns   []paho.Client
	nextRID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan []byte
}

func newFloorCaller(addr, caFile, serverName string, ids []string, conns int) (*floorCaller, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no CA certificate in " + caFile)
	}
	tlsConf := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	f := &floorCaller{pending: map[uint64]chan []byte{}}
	for k := range conns {
		c := paho.NewClient(paho.NewClientOptions().
			AddBroker("tls://" + addr).
			SetTLSConfig(tlsConf).
			SetClientID(fmt.Sprintf("requester-%d", k)).
			SetProtocolVersion(4).
			SetCleanSession(true).
			SetAutoReconnect(false).
			SetKeepAlive(4 * time.Minute))
		if err := await(c.Connect()); err != nil {
			f.close()
			return nil, fmt.Errorf("requester: connect: %w", err)
		}
		f.conns = append(f.conns, c)
		filters := map[string]byte{}
		for i := k; i < len(ids); i += conns {
			filters[ids[i]+"/methods/res/#"] = 0
		}
		for len(filters) > 0 {
			// Subscribe in packets of a few hundred filters.
			batch := map[string]byte{}
			for f := range filters {
				batch[f] = 0
				delete(filters, f)
				if len(batch) == 500 {
					break
				}
			}
			if err := await(c.SubscribeMultiple(batch, f.onResponse)); err != nil {
				f.close()
				return nil, fmt.Errorf("requester: subscribe: %w", err)
			}
		}
	}
	return f, nil
}

func (f *floorCaller) onResponse(_ paho.Client, m paho.Message) {
	_, rid, ok := strings.Cut(m.Topic(), "/?$rid=")
	if !ok {
		return
	}
	n, err := strconv.ParseUint(rid, 10, 64)
	if err != nil {
		return
	}
	f.mu.Lock()
	ch := f.pending[n]
	delete(f.pending, n)
	f.mu.Unlock()
	if ch != nil {
		ch <- m.Payload()
	}
}

// call sends the request through the connection that takes the device's
// answers.
func (f *floorCaller) call(ctx context.Context, deviceID string, index int) error {
	rid := f.nextRID.Add(1)
	ch := make(chan []byte, 1)
	f.mu.Lock()
	f.pending[rid] = ch
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.pending, rid)
		f.mu.Unlock()
	}()
	f.conns[index%len(f.conns)].Publish(floorRequestTopic(deviceID, methodName, rid), 0, false, methodPayload)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case body := <-ch:
		if !bytes.Equal(body, methodPayload) {
			return fmt.Errorf("device %s answered %s", deviceID, body)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("device %s: %w", deviceID, ctx.Err())
	}
}

func (f *floorCaller) close() {
	for _, c := range f.conns {
		c.Disconnect(0)
	}
}

// load is the outcome of calls made for a while.
type load struct {
	calls     int
	elapsed   time.Duration
	latencies []time.Duration
	// cpu is the CPU time each process of the path used meanwhile: the
	// hub or broker, the device fleet, and the caller (this process).
	cpu [3]time.Duration
}

// cpuPerCall is the CPU time the path's processes used per round trip.
func (l load) cpuPerCall() time.Duration {
	return (l.cpu[0] + l.cpu[1] + l.cpu[2]) / time.Duration(max(l.calls, 1))
}

func (l load) rate() float64 { return float64(l.calls) / l.elapsed.Seconds() }

// runLoad keeps inFlight calls going, spread over the devices in turn,
// for a warm-up (not counted) and then for d, calling window when counting
// starts and when it stops. Every call must succeed. The warm-up lasts at
// least warmup and until every device has had a call: a device's first
// call after it connected costs more on both paths (goroutine stacks grow,
// buffers are allocated), and with 10,000 devices a short warm-up would
// leave most of those first calls in the counted round.
func runLoad(ctx context.Context, c caller, ids []string, inFlight int, warmup, d time.Duration, window func()) (load, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Uint64
		warmed   = make(chan struct{})
		warmOnce sync.Once
		counting atomic.Bool
		mu       sync.Mutex
		lat      []time.Duration
		firstErr error
		wg       sync.WaitGroup
	)
	for range inFlight {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				i := int(next.Add(1) % uint64(len(ids)))
				start := time.Now()
				err := c.call(ctx, ids[i], i)
				took := time.Since(start)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						cancel()
					}
					break
				}
				if counting.Load() {
					mine = append(mine, took)
				} else if i == len(ids)-1 {
					warmOnce.Do(func() { close(warmed) }) // the last device had its call
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	sleepCtx(ctx, warmup)
	select {
	case <-warmed:
	case <-ctx.Done():
	}
	window()
	counting.Store(true)
	start := time.Now()
	sleepCtx(ctx, d)
	counting.Store(false)
	elapsed := time.Since(start)
	window()
	cancel()
	wg.Wait()
	if firstErr != nil {
		return load{}, firstErr
	}
	// Calls in flight when counting stopped and finished later are not
	// counted; calls started before it and finished within are.
	return load{calls: len(lat), elapsed: elapsed, latencies: lat}, nil
}

// runSerial makes n calls one after another and returns their latencies.
func runSerial(ctx context.Context, c caller, ids []string, n, offset int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, n)
	for i := range n {
		k := (offset + i) % len(ids)
		start := time.Now()
		if err := c.call(ctx, ids[k], k); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start))
	}
	return lat, nil
}

func cmpErr(old, new error) error {
	if old != nil {
		return old
	}
	return new
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// decodeJSON is json.Unmarshal with the input in the error.
func decodeJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s", err, b)
	}
	return nil
}
