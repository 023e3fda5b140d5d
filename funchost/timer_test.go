package funchost

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/funchost/funchosttest"
)

func timerFunction(extra string) string {
	return `{"bindings":[{"type":"timerTrigger","direction":"in","name":"myTimer","schedule":"%TICK_SCHEDULE%"` + extra + `}]}`
}

func TestNewTimerTrigger(t *testing.T) {
	s := settings{"EVERY": "*/5 * * * * *", "SPAN": "00:10:00", "SHORT": "00:00:30", "BAD": "every minute"}
	tests := []struct {
		name              string
		b                 binding
		want              string
		monitor, constant bool
		runOnStartup      bool
		wantErr           string
	}{
		{name: "cron from a setting", b: binding{Name: "t", Schedule: "%EVERY%"}, want: "Cron: '*/5 * * * * *'"},
		{name: "minute cron keeps the monitor", b: binding{Name: "t", Schedule: "0 */5 * * * *"}, want: "Cron: '0 */5 * * * *'", monitor: true},
		{name: "useMonitor false", b: binding{Name: "t", Schedule: "0 */5 * * * *", UseMonitor: ptr(flexBool(false))}, want: "Cron: '0 */5 * * * *'"},
		{name: "useMonitor true cannot keep a sub-minute schedule monitored", b: binding{Name: "t", Schedule: "*/5 * * * * *", UseMonitor: ptr(flexBool(true))}, want: "Cron: '*/5 * * * * *'"},
		{name: "runOnStartup", b: binding{Name: "t", Schedule: "0 0 * * * *", RunOnStartup: true}, want: "Cron: '0 0 * * * *'", monitor: true, runOnStartup: true},
		{name: "TimeSpan", b: binding{Name: "t", Schedule: "%SPAN%"}, want: "Constant: 00:10:00", monitor: true, constant: true},
		{name: "short TimeSpan is not monitored", b: binding{Name: "t", Schedule: "%SHORT%"}, want: "Constant: 00:00:30", constant: true},
		{name: "missing", b: binding{Name: "t"}, wantErr: "schedule is required"},
		{name: "unknown setting", b: binding{Name: "t", Schedule: "%NOPE%"}, wantErr: "'%NOPE%' does not resolve to a value"},
		{name: "neither", b: binding{Name: "t", Schedule: "%BAD%"}, wantErr: "was not recognized as a valid cron expression or timespan string"},
		{name: "zero TimeSpan", b: binding{Name: "t", Schedule: "00:00:00"}, wantErr: "was not recognized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := newTimerTrigger(tt.b, s)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, tr.schedule.String())
			require.Equal(t, tt.monitor, tr.useMonitor, "useMonitor")
			require.Equal(t, tt.constant, tr.constant)
			require.Equal(t, tt.runOnStartup, tr.runOnStartup)
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestCheckPastDue follows ScheduleMonitor.CheckPastDueAsync.
func TestCheckPastDue(t *testing.T) {
	hourly, err := parseNCrontab("0 0 * * * *")
	require.NoError(t, err)
	now := at("2025-03-01 10:30:00")

	// No record: start one, nothing past due.
	st, due, changed := checkPastDue(now, hourly, nil)
	require.Equal(t, scheduleStatus{Next: at("2025-03-01 11:00:00"), LastUpdated: now}, st)
	require.Zero(t, due)
	require.True(t, changed)

	// The last run was at 08:00 and the host was down since: 09:00 was missed.
	last := &scheduleStatus{Last: at("2025-03-01 08:00:00"), Next: at("2025-03-01 09:00:00"), LastUpdated: at("2025-03-01 08:00:00")}
	st, due, changed = checkPastDue(now, hourly, last)
	require.Equal(t, *last, st)
	require.Equal(t, 90*time.Minute, due)
	require.False(t, changed)

	// Up to date: not past due.
	last = &scheduleStatus{Last: at("2025-03-01 10:00:00"), Next: at("2025-03-01 11:00:00"), LastUpdated: at("2025-03-01 10:00:00")}
	_, due, changed = checkPastDue(now, hourly, last)
	require.Zero(t, due)
	require.False(t, changed)

	// The schedule changed (the record's Next is not what the schedule
	// gives after Last) and its next occurrence after Last has passed:
	// recomputed from now, not past due.
	last = &scheduleStatus{Last: at("2025-03-01 08:00:00"), Next: at("2025-03-01 08:05:00"), LastUpdated: at("2025-03-01 08:00:00")}
	st, due, changed = checkPastDue(now, hourly, last)
	require.Equal(t, scheduleStatus{Next: at("2025-03-01 11:00:00"), LastUpdated: now}, st)
	require.Zero(t, due)
	require.True(t, changed)

	// Never fired, but LastUpdated says when Next was computed.
	last = &scheduleStatus{Next: at("2025-03-01 09:00:00"), LastUpdated: at("2025-03-01 08:30:00")}
	_, due, _ = checkPastDue(now, hourly, last)
	require.Equal(t, 90*time.Minute, due)
}

func TestScheduleStatusJSON(t *testing.T) {
	s := scheduleStatus{Next: at("2025-03-01 11:00:00"), LastUpdated: at("2025-03-01 10:30:00").Add(123 * time.Millisecond)}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	// Newtonsoft's IsoDateFormat for the host's local (UTC) DateTimes;
	// never-set is DateTime.MinValue.
	require.JSONEq(t, `{"Last":"0001-01-01T00:00:00+00:00","Next":"2025-03-01T11:00:00+00:00","LastUpdated":"2025-03-01T10:30:00.123+00:00"}`, string(b))
	var back scheduleStatus
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, s, back)
	// What Azure's blob holds can be read too (an unspecified-kind DateTime).
	require.NoError(t, json.Unmarshal([]byte(`{"Last":"2025-03-01T10:00:00.0000123","Next":"2025-03-01T11:00:00Z","LastUpdated":"2025-03-01T10:00:00+00:00"}`), &back))
	require.Equal(t, at("2025-03-01 10:00:00").Add(12300*time.Nanosecond), back.Last)
}

func TestTimerEnvelope(t *testing.T) {
	tr := &timerTrigger{binding: "myTimer"}
	st := scheduleStatus{Last: at("2025-03-01 10:00:00"), Next: at("2025-03-01 11:00:00"), LastUpdated: at("2025-03-01 10:00:00")}
	sys := sysData{MethodName: "Tick", UtcNow: "2025-03-01T11:00:00.0123Z", RandGuid: "g"}
	body, err := buildTimerEnvelope(tr, timerInfo{Schedule: timerScheduleJSON{AdjustForDST: true}, ScheduleStatus: &st}, sys, at("2025-03-01 11:00:00").Add(12*time.Millisecond))
	require.NoError(t, err)
	require.JSONEq(t, `{"Data":{"myTimer":{"Schedule":{"AdjustForDST":true},
		"ScheduleStatus":{"Last":"2025-03-01T10:00:00+00:00","Next":"2025-03-01T11:00:00+00:00","LastUpdated":"2025-03-01T10:00:00+00:00"},
		"IsPastDue":false}},
		"Metadata":{"TimerTrigger":"\"3/1/2025 11:00:00 AM\"","sys":{"MethodName":"Tick","UtcNow":"2025-03-01T11:00:00.0123Z","RandGuid":"g"}}}`, string(body))

	// Unmonitored: ScheduleStatus is null.
	body, err = buildTimerEnvelope(tr, timerInfo{IsPastDue: true}, sys, at("2025-03-01 23:05:00"))
	require.NoError(t, err)
	var env struct {
		Data     map[string]map[string]json.RawMessage
		Metadata map[string]json.RawMessage
	}
	require.NoError(t, json.Unmarshal(body, &env))
	require.JSONEq(t, `null`, string(env.Data["myTimer"]["ScheduleStatus"]))
	require.JSONEq(t, `true`, string(env.Data["myTimer"]["IsPastDue"]))
	require.JSONEq(t, `"\"3/1/2025 11:05:00 PM\""`, string(env.Metadata["TimerTrigger"]))
}

// recordedInvocation is one invocation a listener made.
type recordedInvocation struct {
	at   time.Time
	info timerInfo
}

func (r recordedInvocation) String() string { return r.at.Format(time.TimeOnly) }

// runListener runs a listener of fn under synctest's clock until stop
// returns true for the invocations so far; each invocation takes work.
func runListener(t *testing.T, fn *function, monitor *scheduleMonitor, work time.Duration, stop func([]recordedInvocation) bool) []recordedInvocation {
	t.Helper()
	var mu sync.Mutex
	var got []recordedInvocation
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	l := &timerListener{fn: fn, monitor: monitor, clock: realClock{}, logger: newLogRecorder(t).logger()}
	l.invoke = func(ctx context.Context, body []byte) error {
		var env struct{ Data map[string]timerInfo }
		if err := json.Unmarshal(body, &env); err != nil {
			return err
		}
		mu.Lock()
		got = append(got, recordedInvocation{at: time.Now().UTC(), info: env.Data[fn.timer.binding]})
		done := stop(got)
		mu.Unlock()
		if done {
			cancel()
		}
		time.Sleep(work)
		return nil
	}
	l.run(ctx)
	return got
}

// synctest's clock starts at 2000-01-01 00:00:00 UTC.
func TestTimerListenerRunsOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := newTimerTrigger(binding{Name: "myTimer", Schedule: "*/10 * * * * *"}, nil)
		require.NoError(t, err)
		fn := &function{name: "Tick", timer: tr}
		time.Sleep(3 * time.Second) // start at :03
		got := runListener(t, fn, nil, 0, func(r []recordedInvocation) bool { return len(r) == 3 })
		require.Equal(t, []string{"00:00:10", "00:00:20", "00:00:30"}, stringsOf(got))
		for _, r := range got {
			require.False(t, r.info.IsPastDue)
			require.Nil(t, r.info.ScheduleStatus, "a sub-minute schedule is not monitored")
			require.True(t, r.info.Schedule.AdjustForDST)
		}
	})
}

func stringsOf(r []recordedInvocation) []string {
	out := make([]string, len(r))
	for i, v := range r {
		out[i] = v.String()
	}
	return out
}

// A slow invocation delays the next occurrence; invocations never overlap
// and missed occurrences are not replayed one by one.
func TestTimerListenerNeverOverlaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := newTimerTrigger(binding{Name: "myTimer", Schedule: "*/10 * * * * *"}, nil)
		require.NoError(t, err)
		got := runListener(t, &function{name: "Tick", timer: tr}, nil, 25*time.Second, func(r []recordedInvocation) bool { return len(r) == 3 })
		require.Equal(t, []string{"00:00:10", "00:00:35", "00:01:00"}, stringsOf(got))
	})
}

func TestTimerListenerRunOnStartup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := newTimerTrigger(binding{Name: "myTimer", Schedule: "0 0 * * * *", RunOnStartup: true}, nil)
		require.NoError(t, err)
		time.Sleep(90 * time.Second)
		got := runListener(t, &function{name: "Tick", timer: tr}, nil, 0, func(r []recordedInvocation) bool { return len(r) == 2 })
		require.Equal(t, []string{"00:01:30", "01:00:00"}, stringsOf(got), "at once, then on schedule")
		require.False(t, got[0].info.IsPastDue)
	})
}

// With a monitor, the status survives a restart: an occurrence missed
// while the host was down runs at start with IsPastDue, and every
// invocation carries the status the schedule was computed from.
func TestTimerListenerPastDueAfterRestart(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		tr, err := newTimerTrigger(binding{Name: "myTimer", Schedule: "0 */5 * * * *"}, nil)
		require.NoError(t, err)
		require.True(t, tr.useMonitor)
		fn := &function{name: "Tick", timer: tr}
		m := &scheduleMonitor{dir: dir}

		// First run: two occurrences, then the host stops at 00:10.
		got := runListener(t, fn, m, 0, func(r []recordedInvocation) bool { return len(r) == 2 })
		require.Equal(t, []string{"00:05:00", "00:10:00"}, stringsOf(got))
		require.Equal(t, &scheduleStatus{Next: at("2000-01-01 00:05:00"), LastUpdated: at("2000-01-01 00:00:00")}, got[0].info.ScheduleStatus)
		require.Equal(t, &scheduleStatus{Last: at("2000-01-01 00:05:00"), Next: at("2000-01-01 00:10:00"), LastUpdated: at("2000-01-01 00:05:00")}, got[1].info.ScheduleStatus)
		st := m.get("Tick", newLogRecorder(t).logger())
		require.Equal(t, &scheduleStatus{Last: at("2000-01-01 00:10:00"), Next: at("2000-01-01 00:15:00"), LastUpdated: at("2000-01-01 00:10:00")}, st)
		b, err := os.ReadFile(filepath.Join(dir, "timers", "localhost", "Host.Functions.Tick", "status"))
		require.NoError(t, err)
		require.JSONEq(t, `{"Last":"2000-01-01T00:10:00+00:00","Next":"2000-01-01T00:15:00+00:00","LastUpdated":"2000-01-01T00:10:00+00:00"}`, string(b))

		// Down until 00:22: the 00:15 and 00:20 occurrences were missed.
		time.Sleep(12 * time.Minute)
		got = runListener(t, fn, m, 0, func(r []recordedInvocation) bool { return len(r) == 2 })
		require.Equal(t, []string{"00:22:00", "00:25:00"}, stringsOf(got), "one past-due invocation at start, then the schedule")
		require.True(t, got[0].info.IsPastDue)
		require.Equal(t, at("2000-01-01 00:15:00"), got[0].info.ScheduleStatus.Next)
		require.False(t, got[1].info.IsPastDue)
		require.Equal(t, at("2000-01-01 00:22:00"), got[1].info.ScheduleStatus.Last)
	})
}

// TestTimerTriggerUnderTheHost: the host indexes a timerTrigger function,
// runs it on its schedule with the envelope a custom handler gets, keeps
// its status under the data dir, and runs a missed occurrence at the next
// start.
func TestTimerTriggerUnderTheHost(t *testing.T) {
	dataDir := t.TempDir()
	root := newTimerApp(t, map[string]string{
		"Tick":   timerFunction(`,"runOnStartup":true`),
		"Hourly": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"hourly","schedule":"0 0 * * * *"}]}`,
		"Off":    timerFunction(""),
	})
	settings := map[string]string{"TICK_SCHEDULE": "*/1 * * * * *", "AzureWebJobs.Off.Disabled": "true"}
	logs := newLogRecorder(t)
	h := startHost(t, timerHostOptions(t, root, Options{Settings: settings, DataDir: dataDir, Logger: logs.logger()}))

	invocations := logs.awaitN(t, "three invocations of Tick", 3, containsAll("timerworker: invocation Tick "))
	first := timerEnvelopeOf(t, invocations[0], "Tick")
	require.False(t, first.IsPastDue)
	require.Nil(t, first.ScheduleStatus, "a sub-minute schedule is not monitored")
	logs.await(t, "the startup reason", containsAll("timer invocation outside the schedule", "function=Tick", "reason=RunOnStartup"))
	logs.await(t, "a succeeded invocation", containsAll("Executed 'Functions.Tick' (Succeeded)"))
	logs.await(t, "the schedule line", containsAll("timer schedule", "function=Hourly", "useMonitor=true", "Cron: '0 0 * * * *'"))
	require.Zero(t, logs.count(containsAll("invocation Off ")), "a disabled timer does not run")
	require.Zero(t, logs.count(containsAll("invocation Hourly ")))
	require.NoError(t, h.Close())

	// Hourly's status was recorded at its first start; pretend the host
	// was down over an occurrence.
	path := filepath.Join(dataDir, "timers", "localhost", "Host.Functions.Hourly", "status")
	b, err := os.ReadFile(path)
	require.NoError(t, err, "the status of a monitored timer is written at start")
	var st scheduleStatus
	require.NoError(t, json.Unmarshal(b, &st))
	require.True(t, st.Last.IsZero())
	hourAgo := time.Now().UTC().Add(-time.Hour).Truncate(time.Hour)
	missed := scheduleStatus{Last: hourAgo.Add(-time.Hour), Next: hourAgo, LastUpdated: hourAgo.Add(-time.Hour)}
	b, err = json.Marshal(missed)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))

	logs2 := newLogRecorder(t)
	startHost(t, timerHostOptions(t, root, Options{Settings: settings, DataDir: dataDir, Logger: logs2.logger()}))
	line := logs2.await(t, "the past-due invocation of Hourly", containsAll("timerworker: invocation Hourly "))
	info := timerEnvelopeOf(t, line, "Hourly")
	require.True(t, info.IsPastDue)
	require.NotNil(t, info.ScheduleStatus)
	require.Equal(t, hourAgo, info.ScheduleStatus.Next)
	logs2.await(t, "the reason", containsAll("reason=IsPastDue", "function=Hourly"))
}

// timerEnvelopeOf decodes the envelope on a timerworker line and checks
// its Metadata.
func timerEnvelopeOf(t *testing.T, line, function string) timerInfo {
	t.Helper()
	_, js, ok := strings.Cut(line, "invocation "+function+" ")
	require.True(t, ok, line)
	js, _, ok = strings.Cut(js, " |end")
	require.True(t, ok, line)
	var env struct {
		Data     map[string]timerInfo
		Metadata struct {
			TimerTrigger string
			Sys          sysData `json:"sys"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(js), &env), js)
	require.Len(t, env.Data, 1)
	var trig string
	require.NoError(t, json.Unmarshal([]byte(env.Metadata.TimerTrigger), &trig), "TimerTrigger is JSON-encoded twice")
	_, err := time.Parse(timerTriggerLayout, trig)
	require.NoError(t, err)
	require.Equal(t, function, env.Metadata.Sys.MethodName)
	for _, v := range env.Data {
		return v
	}
	return timerInfo{}
}

// newTimerApp makes a script root of the timer worker and functions.
func newTimerApp(t *testing.T, functions map[string]string) string {
	t.Helper()
	root := t.TempDir()
	funchosttest.Build(t, funchosttest.RepoRoot(t), "./funchost/testdata/timerworker", filepath.Join(root, "timerworker"))
	write(t, filepath.Join(root, "host.json"), `{"version":"2.0","functionTimeout":"00:01:00",
		"customHandler":{"description":{"defaultExecutablePath":"timerworker"}}}`)
	for name, fj := range functions {
		write(t, filepath.Join(root, name, "function.json"), fj)
	}
	return root
}

// timerHostOptions gives the worker a socket bound here (see
// fakeApp.options).
func timerHostOptions(t *testing.T, root string, opts Options) Options {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	opts.ScriptRoot = root
	opts.handlerListener = ln.(*net.TCPListener)
	opts.Settings["TIMERWORKER_LISTEN_FD"] = "3"
	return opts
}
