package fleet_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/simulator/internal/device"
	"github.com/iothub-reboot/devmgmt/simulator/internal/fleet"
	"github.com/iothub-reboot/devmgmt/simulator/internal/hubtest"
	"github.com/iothub-reboot/devmgmt/simulator/internal/mqttdev"
)

// localhubBin is the local hub, built once for this package's tests.
var localhubBin string

func TestMain(m *testing.M) { os.Exit(hubtest.Main(m, &localhubBin)) }

// rig is a hub child process with a fleet of simulated devices on it.
type rig struct {
	hub   *hubtest.Hub
	fleet *fleet.Fleet
	ids   []string
}

// startRig registers n devices (dev-1...), runs a fleet of them with opts
// and waits until every device that should connect has. t.Cleanup stops
// the fleet before the hub.
func startRig(t testing.TB, n int, opts fleet.Options) *rig {
	t.Helper()
	r := &rig{hub: hubtest.Start(t, localhubBin)}
	for i := range n {
		r.ids = append(r.ids, fmt.Sprintf("dev-%d", i+1))
	}
	opts.Devices = members(t, r.hub, r.ids)
	r.fleet = fleet.New(opts)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.fleet.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	online := n - len(r.fleet.Offline())
	r.awaitStats(t, "all devices connected", func(s device.Snapshot) bool { return s.Connected == online })
	return r
}

// members creates (or reuses) the devices through the REST API and
// prepares their MQTT transports pointed at the hub.
func members(t testing.TB, hub *hubtest.Hub, ids []string) []fleet.Member {
	t.Helper()
	dialer, err := mqttdev.NewDialer(mqttdev.Options{BrokerAddr: hub.MQTTAddr, ExtraRootsPEM: hub.CAPEM(t)})
	require.NoError(t, err)
	ms := make([]fleet.Member, len(ids))
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	sem := make(chan struct{}, 16)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cs, err := hub.Service().EnsureDevice(context.Background(), id)
			if err != nil {
				errs[i] = err
				return
			}
			gotID, tr, err := dialer.Transport(cs)
			errs[i] = err
			ms[i] = fleet.Member{ID: gotID, Transport: tr}
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return ms
}

// awaitStats waits, without polling, for the fleet's counts to satisfy
// cond.
func (r *rig) awaitStats(t testing.TB, what string, cond func(device.Snapshot) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.fleet.Stats().Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v (counts %+v)", what, err, r.fleet.Stats().Snapshot())
	}
}

func (r *rig) onlineIDs() []string {
	offline := map[string]bool{}
	for _, id := range r.fleet.Offline() {
		offline[id] = true
	}
	var ids []string
	for _, id := range r.ids {
		if !offline[id] {
			ids = append(ids, id)
		}
	}
	return ids
}
