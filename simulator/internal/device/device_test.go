package device

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBootReportsRunningWithBootTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boot := time.Now()
		ft := &fakeTransport{}
		stats := &Stats{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, Stats: stats}))
		defer stop()
		synctest.Wait()

		r := ft.lastReport(t)
		require.Equal(t, stamp(boot), str(r.LastReboot))
		require.Equal(t, StatusRunning, str(r.Status))
		require.Nil(t, r.RequestID, "no reboot requested yet")
		require.Nil(t, r.Reason)
		require.Equal(t, Snapshot{Connected: 1, Connects: 1}, stats.Snapshot())
	})
}

func TestRebootGoesDownAndComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stats := &Stats{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, RebootDuration: 5 * time.Second, Stats: stats}))
		defer stop()
		synctest.Wait()
		boot := time.Now()

		time.Sleep(time.Minute)
		asked := time.Now()
		status, reply := ft.session(t, 0).call("reboot", `{"requestId":"r-1","delaySeconds":0}`)
		require.Equal(t, 200, status)
		require.Equal(t, map[string]any{"result": "Reboot started", "requestId": "r-1"}, reply)
		synctest.Wait()

		rebooting := ft.lastReport(t)
		require.Equal(t, StatusRebooting, str(rebooting.Status))
		require.Equal(t, "r-1", str(rebooting.RequestID))
		require.Equal(t, stamp(boot), str(rebooting.LastReboot), "lastReboot is still the previous boot")
		require.True(t, ft.session(t, 0).isClosed(), "the device disconnects to reboot")
		require.Equal(t, 1, stats.Snapshot().Rebooting)

		time.Sleep(5*time.Second - time.Nanosecond)
		synctest.Wait()
		require.Equal(t, 1, ft.sessionCount(), "still down during the reboot")

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		back := ft.lastReport(t)
		require.Equal(t, StatusRunning, str(back.Status))
		require.Equal(t, "r-1", str(back.RequestID), "the device says which request it rebooted for")
		require.Equal(t, stamp(asked.Add(5*time.Second)), str(back.LastReboot))
		require.Nil(t, back.Reason)
		require.Equal(t, Snapshot{Connected: 1, Connects: 2, Reboots: 1}, stats.Snapshot())
	})
}

func TestRebootHonoursDelaySeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, RebootDuration: 2 * time.Second}))
		defer stop()
		synctest.Wait()
		asked := time.Now()

		status, _ := ft.session(t, 0).call("reboot", `{"requestId":"r-2","delaySeconds":3.5}`)
		require.Equal(t, 200, status)
		synctest.Wait()
		require.Equal(t, StatusRebooting, str(ft.lastReport(t).Status), "reported at once, before the delay")

		time.Sleep(3500*time.Millisecond - time.Nanosecond)
		synctest.Wait()
		require.False(t, ft.session(t, 0).isClosed(), "still connected during the delay")
		status, reply := ft.session(t, 0).call("reboot", `{"requestId":"r-3"}`)
		require.Equal(t, 409, status, "a second reboot while one is pending")
		require.Equal(t, map[string]any{"error": "A reboot is already in progress", "requestId": "r-3", "pendingRequestId": "r-2"}, reply)

		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.True(t, ft.session(t, 0).isClosed(), "down once the delay is over")

		time.Sleep(2 * time.Second)
		synctest.Wait()
		back := ft.lastReport(t)
		require.Equal(t, StatusRunning, str(back.Status))
		require.Equal(t, "r-2", str(back.RequestID))
		require.Equal(t, stamp(asked.Add(5500*time.Millisecond)), str(back.LastReboot))

		status, _ = ft.session(t, 1).call("reboot", `{"requestId":"r-4"}`)
		require.Equal(t, 200, status, "accepts reboots again once back")
	})
}

func TestMethodCalls(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		payload   string
		wantCode  int
		wantReply map[string]any
	}{
		{"reboot with id", "reboot", `{"requestId":"abc"}`, 200, map[string]any{"result": "Reboot started", "requestId": "abc"}},
		{"reboot extra fields ignored", "reboot", `{"requestId":"abc","force":true}`, 200, map[string]any{"result": "Reboot started", "requestId": "abc"}},
		{"empty body (service payload null)", "reboot", ``, 200, map[string]any{"result": "Reboot started"}},
		{"JSON null", "reboot", `null`, 200, map[string]any{"result": "Reboot started"}},
		{"empty object", "reboot", `{}`, 200, map[string]any{"result": "Reboot started"}},
		{"string payload", "reboot", `"Reboot"`, 400, map[string]any{"error": "bad reboot payload: the payload must be a JSON object"}},
		{"array payload", "reboot", `[1]`, 400, map[string]any{"error": "bad reboot payload: the payload must be a JSON object"}},
		{"not JSON", "reboot", `{"requestId":`, 400, map[string]any{"error": "bad reboot payload: unexpected end of JSON input"}},
		{"numeric requestId", "reboot", `{"requestId":7}`, 400, map[string]any{"error": "bad reboot payload: requestId must be a string"}},
		{"negative delay", "reboot", `{"delaySeconds":-1}`, 400, map[string]any{"error": "bad reboot payload: delaySeconds must be a number from 0 to 86400"}},
		{"delay as string", "reboot", `{"delaySeconds":"5"}`, 400, map[string]any{"error": "bad reboot payload: delaySeconds must be a number from 0 to 86400"}},
		{"unknown method", "firmwareUpdate", `{}`, 404, map[string]any{"error": `method "firmwareUpdate" is not implemented`}},
		{"unknown method, empty body", "restart", ``, 404, map[string]any{"error": `method "restart" is not implemented`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ft := &fakeTransport{}
				stop := runDevice(New(Config{ID: "d1", Transport: ft}))
				defer stop()
				synctest.Wait()

				code, reply := ft.session(t, 0).call(tt.method, tt.payload)
				require.Equal(t, tt.wantCode, code)
				require.Equal(t, tt.wantReply, reply)
				synctest.Wait()
				if code != 200 {
					require.Len(t, ft.allReports(), 1, "a refused call changes nothing")
					require.False(t, ft.session(t, 0).isClosed())
				}
			})
		})
	}
}

func TestFailingRebootRepliesServerErrorAndStaysUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stats := &Stats{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, Faults: Faults{FailShare: 1}, Stats: stats}))
		defer stop()
		synctest.Wait()
		boot := time.Now()

		code, reply := ft.session(t, 0).call("reboot", `{"requestId":"r-9"}`)
		require.Equal(t, 500, code)
		require.Equal(t, map[string]any{"error": "Reboot failed", "reason": "injected fault: the reboot could not start", "requestId": "r-9"}, reply)
		synctest.Wait()

		r := ft.lastReport(t)
		require.Equal(t, StatusFailed, str(r.Status))
		require.Equal(t, "r-9", str(r.RequestID))
		require.Equal(t, "injected fault: the reboot could not start", str(r.Reason))
		require.Equal(t, stamp(boot), str(r.LastReboot), "no reboot happened")
		require.False(t, ft.session(t, 0).isClosed())
		require.Equal(t, Snapshot{Connected: 1, Connects: 1, Failed: 1}, stats.Snapshot())

		code, _ = ft.session(t, 0).call("reboot", `{"requestId":"r-10"}`)
		require.Equal(t, 500, code, "a failed reboot does not block the next call")
	})
}

func TestNeverBackDeviceStaysAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stats := &Stats{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, RebootDuration: time.Second, Faults: Faults{NeverBackShare: 1}, Stats: stats}))
		defer stop()
		synctest.Wait()

		code, reply := ft.session(t, 0).call("reboot", `{"requestId":"r-1"}`)
		require.Equal(t, 200, code, "the device accepts the reboot like any other")
		require.Equal(t, "Reboot started", reply["result"])
		synctest.Wait()
		require.Equal(t, StatusRebooting, str(ft.lastReport(t).Status))

		time.Sleep(24 * time.Hour)
		synctest.Wait()
		require.Equal(t, 1, ft.sessionCount(), "never reconnects")
		require.Equal(t, Snapshot{Connects: 1, Gone: 1}, stats.Snapshot())
	})
}

func TestMethodLatencyDelaysTheReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, Faults: Faults{MethodLatency: 7 * time.Second}}))
		defer stop()
		synctest.Wait()

		start := time.Now()
		code, _ := ft.session(t, 0).call("reboot", `{}`)
		require.Equal(t, 200, code)
		require.Equal(t, 7*time.Second, time.Since(start))
	})
}

func TestReconnectsWithBackoffAndReReportsState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stats := &Stats{}
		backoff := Backoff{Min: time.Second, Max: 8 * time.Second}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, RebootDuration: time.Second, Backoff: backoff, Seed: 42, Stats: stats}))
		defer stop()
		synctest.Wait()

		// One reboot, so that there is a requestId to keep.
		ft.session(t, 0).call("reboot", `{"requestId":"r-1"}`)
		time.Sleep(time.Second)
		synctest.Wait()
		before := ft.lastReport(t)
		require.Equal(t, "r-1", str(before.RequestID))

		// The hub goes away for a while: six connects fail.
		ft.mu.Lock()
		ft.failNext = 6
		ft.mu.Unlock()
		lostAt := time.Now()
		ft.session(t, 1).drop()
		time.Sleep(time.Hour)
		synctest.Wait()

		attempts := ft.attemptTimes()[2:] // after the boot and the reboot
		require.Len(t, attempts, 7)
		caps := []time.Duration{1, 2, 4, 8, 8, 8, 8} // seconds, doubling up to Max
		prev := lostAt
		for i, c := range caps {
			wait := attempts[i].Sub(prev)
			require.GreaterOrEqual(t, wait, c*time.Second/2, "wait %d", i)
			require.LessOrEqual(t, wait, c*time.Second, "wait %d", i)
			prev = attempts[i]
		}

		after := ft.lastReport(t)
		require.Equal(t, attempts[6], after.At, "re-reports as soon as it is connected")
		require.Equal(t, before.LastReboot, after.LastReboot, "state survives the reconnect")
		require.Equal(t, before.RequestID, after.RequestID)
		require.Equal(t, StatusRunning, str(after.Status))
		require.Equal(t, Snapshot{Connected: 1, Connects: 3, Reboots: 1, Lost: 1}, stats.Snapshot())
	})
}

func TestRebootJitterStaysInBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, RebootDuration: 10 * time.Second, RebootJitter: 3 * time.Second, Seed: 7}))
		defer stop()
		synctest.Wait()

		var seen []time.Duration
		for i := range 20 {
			asked := time.Now()
			code, _ := ft.session(t, i).call("reboot", `{}`)
			require.Equal(t, 200, code)
			time.Sleep(time.Minute)
			synctest.Wait()
			down := ft.attemptTimes()[i+1].Sub(asked)
			require.GreaterOrEqual(t, down, 7*time.Second)
			require.LessOrEqual(t, down, 13*time.Second)
			seen = append(seen, down)
		}
		require.NotEqual(t, seen[0], seen[1], "jitter varies")
	})
}

func TestStopEndsRunAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stats := &Stats{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, Stats: stats}))
		synctest.Wait()
		stop()
		require.True(t, ft.session(t, 0).isClosed())
		require.Equal(t, 0, stats.Snapshot().Connected)
	})
}

func TestStopWhileConnectingGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{failNext: 1000}
		stop := runDevice(New(Config{ID: "d1", Transport: ft}))
		time.Sleep(10 * time.Minute)
		stop() // returns only if Run gave up
		require.Zero(t, ft.sessionCount())
	})
}

func TestGateBoundsConcurrentDials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := NewGate(1, 0)
		leave, err := gate.Enter(t.Context()) // someone else holds the only slot
		require.NoError(t, err)
		ft := &fakeTransport{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, Gate: gate}))
		defer stop()
		synctest.Wait()
		require.Empty(t, ft.attemptTimes(), "waits for a slot")
		leave()
		synctest.Wait()
		require.Equal(t, 1, ft.sessionCount())
		leave, err = gate.Enter(t.Context())
		require.NoError(t, err, "slot released after the dial")
		leave()
	})
}

func TestGateBoundsDialRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := NewGate(100, 4) // four dials a second
		ft := &fakeTransport{}
		var stops []func()
		for i := range 10 {
			stops = append(stops, runDevice(New(Config{ID: fmt.Sprintf("d%d", i), Transport: ft, Gate: gate})))
		}
		start := time.Now()
		time.Sleep(time.Minute)
		synctest.Wait()
		at := ft.attemptTimes()
		require.Len(t, at, 10)
		slices.SortFunc(at, time.Time.Compare)
		for i, a := range at {
			require.Equal(t, time.Duration(i)*250*time.Millisecond, a.Sub(start), "dial %d", i)
		}
		for _, stop := range stops {
			stop()
		}
	})
}

func TestShortSessionsKeepBackingOffUntilOneLasts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTransport{}
		stop := runDevice(New(Config{ID: "d1", Transport: ft, Backoff: Backoff{Min: time.Second, Max: 4 * time.Second}}))
		defer stop()
		synctest.Wait()

		// Something kicks the device as soon as it is on, five times.
		var drops []time.Time
		for i := range 5 {
			drops = append(drops, time.Now())
			ft.session(t, i).drop()
			time.Sleep(10 * time.Second)
			synctest.Wait()
		}
		at := ft.attemptTimes()
		require.Len(t, at, 6)
		for i, c := range []time.Duration{1, 2, 4, 4, 4} { // seconds: doubling up to Max
			wait := at[i+1].Sub(drops[i])
			require.GreaterOrEqual(t, wait, c*time.Second/2, "wait %d", i)
			require.LessOrEqual(t, wait, c*time.Second, "wait %d", i)
		}

		// A session that lasts a minute or more starts the back-off afresh.
		time.Sleep(2 * time.Minute)
		lostAt := time.Now()
		ft.session(t, 5).drop()
		time.Sleep(time.Minute)
		synctest.Wait()
		at = ft.attemptTimes()
		require.Len(t, at, 7)
		wait := at[6].Sub(lostAt)
		require.GreaterOrEqual(t, wait, 500*time.Millisecond)
		require.LessOrEqual(t, wait, time.Second)
	})
}

// A connected, idle device holds no goroutine (it parks), yet still acts on
// a reboot order, a lost connection and the end of its context.
func TestIdleDeviceHoldsNoGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		ft := &fakeTransport{}
		stats := &Stats{}
		before := packageGoroutines()
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{}, n)
		for i := range n {
			New(Config{ID: fmt.Sprintf("d%d", i), Transport: ft, Stats: stats, RebootDuration: time.Second}).
				Start(ctx, func() { stopped <- struct{}{} })
		}
		synctest.Wait()
		require.Equal(t, n, stats.Snapshot().Connected)
		require.Equal(t, before, packageGoroutines(), "idle devices hold no goroutine")

		status, _ := ft.session(t, 0).call("reboot", `{"requestId":"r-1"}`)
		require.Equal(t, 200, status)
		ft.session(t, 1).drop()
		time.Sleep(time.Minute)
		synctest.Wait()
		require.Equal(t, n+2, ft.sessionCount(), "the rebooted and the dropped device connected again")
		require.Equal(t, n, stats.Snapshot().Connected)
		require.Equal(t, before, packageGoroutines())

		cancel()
		for range n {
			<-stopped
		}
		require.Zero(t, stats.Snapshot().Connected)
	})
}

// packageGoroutines counts the goroutines, other than the caller, running
// code of this package (devices and the fake transport).
// runtime.NumGoroutine would count the whole process's, and goroutines
// outside the synctest bubble (the runtime's, the test runner's) come and
// go on their own.
func packageGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := strings.Split(string(buf), "\n\n")
	count := 0
	for _, s := range stacks[1:] { // the first is the caller's
		if strings.Contains(s, "simulator/internal/device.") {
			count++
		}
	}
	return count
}
