package funchost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Timer triggers, as the timers extension runs them
// (Azure/azure-webjobs-sdk-extensions, src/WebJobs.Extensions/Extensions/
// Timers: TimerListener, TimerSchedule, CronSchedule, ScheduleMonitor,
// TimerInfo; docs/local-host.md has the details and what differs):
//
//   - the schedule is an NCRONTAB expression (ncrontab.go) or, failing
//     that, a TimeSpan, a constant interval (ConstantSchedule); %SETTING%
//     expressions are resolved first;
//   - runOnStartup invokes once when the listener starts;
//   - useMonitor (default true, but off for schedules that fire more than
//     once a minute) keeps the schedule status (Last, Next, LastUpdated)
//     across restarts: an occurrence missed while the host was down is
//     run at start with IsPastDue set. Azure keeps it in the host storage
//     account's blob azure-webjobs-hosts/timers/{hostId}/{timerName}/status;
//     the local host keeps the same JSON in a file under Options.DataDir;
//   - one invocation at a time: the next occurrence is computed when an
//     invocation ends, so a slow invocation delays the next one instead of
//     overlapping it.
//
// All times are UTC, as in Azure unless WEBSITE_TIME_ZONE is set.

const typeTimerTrigger = "timertrigger"

// timerSchedule is a CronSchedule or a ConstantSchedule.
type timerSchedule interface {
	// next is the first occurrence after t; false when there is none.
	next(t time.Time) (time.Time, bool)
	// adjustForDST is TimerSchedule.AdjustForDST, which the host puts in
	// the invocation's Schedule object.
	adjustForDST() bool
	String() string
}

func (cronSchedule) adjustForDST() bool { return true }

// constantSchedule is a TimeSpan schedule: every interval from the last
// occurrence.
type constantSchedule struct{ interval time.Duration }

func (c constantSchedule) next(t time.Time) (time.Time, bool) { return t.Add(c.interval), true }
func (constantSchedule) adjustForDST() bool                   { return false }
func (c constantSchedule) String() string                     { return "Constant: " + formatTimeSpan(c.interval) }

// timerTrigger is a timerTrigger binding, resolved.
type timerTrigger struct {
	binding      string
	expression   string // as resolved
	schedule     timerSchedule
	runOnStartup bool
	useMonitor   bool
	// constant is set for TimeSpan schedules, which Azure runs only on
	// App Service plans.
	constant bool
}

// newTimerTrigger resolves a timerTrigger binding as
// TimerSchedule.Create does: NCRONTAB first, then TimeSpan.
func newTimerTrigger(b binding, s settings) (*timerTrigger, error) {
	if strings.TrimSpace(b.Schedule) == "" {
		return nil, errors.New("timerTrigger: schedule is required")
	}
	expr, err := resolveBindingExpression(b.Schedule, s)
	if err != nil {
		return nil, fmt.Errorf("timerTrigger schedule: %w", err)
	}
	t := &timerTrigger{binding: b.Name, expression: expr, runOnStartup: bool(b.RunOnStartup), useMonitor: true}
	if b.UseMonitor != nil {
		t.useMonitor = bool(*b.UseMonitor)
	}
	if cron, cronErr := parseNCrontab(expr); cronErr == nil {
		t.schedule = cron
		if cron.subMinute() {
			t.useMonitor = false
		}
		return t, nil
	} else if d, spanErr := parseTimeSpan(expr); spanErr == nil && d > 0 {
		t.schedule, t.constant = constantSchedule{d}, true
		if d < time.Minute {
			t.useMonitor = false
		}
		return t, nil
	} else if strings.Contains(expr, " ") {
		return nil, fmt.Errorf("the schedule expression '%s' was not recognized as a valid cron expression or timespan string: %w", expr, cronErr)
	}
	return nil, fmt.Errorf("the schedule expression '%s' was not recognized as a valid cron expression or timespan string", expr)
}

// scheduleStatus is ScheduleStatus: the last occurrence, the expected
// next one, and when the record was last written. The zero time is .NET's
// DateTime.MinValue, which the host writes for "never".
type scheduleStatus struct {
	Last        time.Time
	Next        time.Time
	LastUpdated time.Time
}

// dotnetLocal renders a time as Newtonsoft renders a local DateTime with
// IsoDateFormat on a UTC host: up to seven fractional digits, and the
// offset.
const dotnetLocal = "2006-01-02T15:04:05.9999999-07:00"

var dotnetMinValue = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

func (s scheduleStatus) MarshalJSON() ([]byte, error) {
	f := func(t time.Time) string {
		if t.IsZero() {
			t = dotnetMinValue
		}
		return t.UTC().Format(dotnetLocal)
	}
	return json.Marshal(struct{ Last, Next, LastUpdated string }{f(s.Last), f(s.Next), f(s.LastUpdated)})
}

func (s *scheduleStatus) UnmarshalJSON(b []byte) error {
	var raw struct{ Last, Next, LastUpdated string }
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	parse := func(v string) (time.Time, error) {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			// Newtonsoft writes an unspecified-kind DateTime without an
			// offset; the host's are UTC.
			t, err = time.Parse("2006-01-02T15:04:05.9999999", v)
		}
		if err == nil && t.Equal(dotnetMinValue) {
			t = time.Time{}
		}
		return t.UTC(), err
	}
	var err1, err2, err3 error
	s.Last, err1 = parse(raw.Last)
	s.Next, err2 = parse(raw.Next)
	s.LastUpdated, err3 = parse(raw.LastUpdated)
	return errors.Join(err1, err2, err3)
}

// scheduleMonitor keeps each timer's status in
// <dir>/timers/<hostId>/<timerName>/status, the blob path the host's
// StorageScheduleMonitor uses under its container. A nil monitor keeps
// nothing: without a data dir, useMonitor has nothing to persist to.
type scheduleMonitor struct {
	dir string
}

// timerHostID stands for the host id in the status path (Azure derives it
// from the site name).
const timerHostID = "localhost"

// timerName is the timers extension's name for a script function's timer,
// <declaring type>.<method>: Host.Functions.<FunctionName>.
func timerName(function string) string { return "Host.Functions." + function }

func (m *scheduleMonitor) path(function string) string {
	return filepath.Join(m.dir, "timers", timerHostID, timerName(function), "status")
}

// get reads the recorded status; nil when there is none. A record that
// cannot be read is treated as none, with a warning, as a timer must run
// on.
func (m *scheduleMonitor) get(function string, logger *slog.Logger) *scheduleStatus {
	if m == nil {
		return nil
	}
	b, err := os.ReadFile(m.path(function))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			logger.Warn("timer status could not be read; starting afresh", "function", function, "err", err)
		}
		return nil
	}
	var s scheduleStatus
	if err := json.Unmarshal(b, &s); err != nil {
		logger.Warn("timer status file is not a schedule status; starting afresh", "function", function, "err", err)
		return nil
	}
	return &s
}

// update writes the status atomically (a crash leaves the old record or
// the new one). Failures are logged, not returned: the host's monitors
// update "best effort".
func (m *scheduleMonitor) update(function string, s scheduleStatus, logger *slog.Logger) {
	if m == nil {
		return
	}
	path := m.path(function)
	err := func() error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}()
	if err != nil {
		logger.Error("timer status could not be written", "function", function, "err", err)
	}
}

// checkPastDue is ScheduleMonitor.CheckPastDueAsync: it brings a recorded
// status in line with the current schedule (a changed schedule whose next
// occurrence has passed is not past due) and reports how long past due
// the recorded next occurrence is. It returns the status to start from.
func checkPastDue(now time.Time, sched timerSchedule, last *scheduleStatus) (status scheduleStatus, pastDue time.Duration, changed bool) {
	nextFrom := func(t time.Time) time.Time {
		n, _ := sched.next(t)
		return n
	}
	if last == nil {
		status = scheduleStatus{Next: nextFrom(now), LastUpdated: now}
		return status, 0, true
	}
	status = *last
	var expected, from time.Time
	switch {
	case !last.Last.IsZero():
		expected, from = nextFrom(last.Last), last.Last
	case !last.LastUpdated.IsZero():
		expected, from = nextFrom(last.LastUpdated), last.LastUpdated
	default:
		expected, from = nextFrom(now), now
	}
	if !last.Next.Equal(expected) {
		if now.After(expected) {
			expected, from = nextFrom(now), now
		}
		status = scheduleStatus{Next: expected, LastUpdated: from}
		changed = true
	}
	if !status.Next.IsZero() && now.After(status.Next) {
		return status, now.Sub(status.Next), changed
	}
	return status, 0, changed
}

// timerInfo is the trigger value, TimerInfo as JObject.FromObject renders
// it: Schedule carries only AdjustForDST (the schedule's other properties
// are internal); ScheduleStatus is null when the schedule is not
// monitored.
type timerInfo struct {
	Schedule       timerScheduleJSON `json:"Schedule"`
	ScheduleStatus *scheduleStatus   `json:"ScheduleStatus"`
	IsPastDue      bool              `json:"IsPastDue"`
}

type timerScheduleJSON struct {
	AdjustForDST bool `json:"AdjustForDST"`
}

// timerTriggerMetadata renders the TimerTrigger binding data,
// DateTime.Now.ToString() on an en-US host, JSON-encoded a second time
// like every string the host puts in Metadata.
const timerTriggerLayout = "1/2/2006 3:04:05 PM"

// buildTimerEnvelope is the invocation body of a timer function.
func buildTimerEnvelope(t *timerTrigger, info timerInfo, sys sysData, now time.Time) ([]byte, error) {
	trig, err := json.Marshal(now.UTC().Format(timerTriggerLayout))
	if err != nil {
		return nil, err
	}
	return marshal(struct {
		Data     map[string]timerInfo `json:"Data"`
		Metadata map[string]any       `json:"Metadata"`
	}{
		Data:     map[string]timerInfo{t.binding: info},
		Metadata: map[string]any{"TimerTrigger": string(trig), "sys": sys},
	})
}

// timerClock lets the package's tests drive a listener's time.
type timerClock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now().UTC() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// timerListener runs one timer function.
type timerListener struct {
	fn      *function
	monitor *scheduleMonitor // nil: the schedule is not monitored
	clock   timerClock
	logger  *slog.Logger
	// invoke runs one invocation with the envelope body.
	invoke func(ctx context.Context, body []byte) error
}

// nextOccurrences lists the next n occurrences after t, for the log line
// the host writes at start.
func nextOccurrences(s timerSchedule, t time.Time, n int) []string {
	var out []string
	for range n {
		next, ok := s.next(t)
		if !ok {
			break
		}
		out = append(out, next.UTC().Format(time.RFC3339))
		t = next
	}
	return out
}

// run is TimerListener: start (past-due check, runOnStartup), then each
// occurrence until ctx ends. An invocation in flight when ctx ends is
// cancelled.
func (l *timerListener) run(ctx context.Context) {
	t := l.fn.timer
	name := l.fn.name
	now := l.clock.Now()
	var status scheduleStatus
	var pastDue time.Duration
	if l.monitor != nil {
		last := l.monitor.get(name, l.logger)
		l.logger.Info("timer initial status", "function", name, "status", statusAttr(last))
		var changed bool
		status, pastDue, changed = checkPastDue(now, t.schedule, last)
		if changed {
			l.monitor.update(name, status, l.logger)
		}
	} else {
		next, _ := t.schedule.next(now)
		status = scheduleStatus{Next: next}
	}
	l.logger.Info("timer schedule", "function", name, "schedule", t.schedule.String(), "timeZone", "UTC",
		"useMonitor", l.monitor != nil, "runOnStartup", t.runOnStartup, "nextOccurrences", strings.Join(nextOccurrences(t.schedule, now, 5), ", "))
	if status.Next.IsZero() {
		l.logger.Error("the timer's schedule has no future occurrence: the function never runs", "function", name, "schedule", t.schedule.String())
		return
	}

	startup := ""
	switch {
	case pastDue > 0:
		startup = "IsPastDue"
	case t.runOnStartup:
		startup = "RunOnStartup"
	}
	for {
		if startup == "" {
			wait := status.Next.Sub(l.clock.Now())
			if wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-l.clock.After(wait):
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		invokedAt := l.clock.Now()
		info := timerInfo{Schedule: timerScheduleJSON{AdjustForDST: t.schedule.adjustForDST()}, IsPastDue: startup == "IsPastDue"}
		if l.monitor != nil {
			s := status
			info.ScheduleStatus = &s
		}
		if startup != "" {
			l.logger.Info("timer invocation outside the schedule", "function", name, "reason", startup)
		}
		// A failed invocation (invoke logs it) does not stop the schedule.
		if body, err := buildTimerEnvelope(t, info, newSys(name, invokedAt), invokedAt); err == nil {
			l.invoke(ctx, body)
		} else {
			l.logger.Error("timer envelope could not be built", "function", name, "err", err)
		}
		// The status is recorded even when the host is stopping, as
		// InvokeJobFunction does once the executor returns. A normal
		// occurrence that fired a little early (clock skew) counts as its
		// scheduled time, so the same Next is never used twice.
		adjusted := invokedAt
		if startup == "" && status.Next.After(invokedAt) {
			adjusted = status.Next
		}
		next, ok := t.schedule.next(adjusted)
		status = scheduleStatus{Last: adjusted, Next: next, LastUpdated: adjusted}
		if l.monitor != nil {
			l.monitor.update(name, status, l.logger)
		}
		if ctx.Err() != nil {
			return
		}
		if !ok {
			l.logger.Error("the timer's schedule has no further occurrence", "function", name)
			return
		}
		startup = ""
	}
}

func statusAttr(s *scheduleStatus) string {
	if s == nil {
		return "none"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

// startTimers starts a listener per enabled timer function; they run
// until ctx ends, and wg is done when they all returned.
func (h *Host) startTimers(ctx context.Context, dataDir string, s settings, wg *sync.WaitGroup) {
	var monitor *scheduleMonitor
	if dataDir != "" {
		monitor = &scheduleMonitor{dir: dataDir}
	}
	if v, ok := s.get("WEBSITE_TIME_ZONE"); ok && strings.TrimSpace(v) != "" {
		h.logger.Warn("WEBSITE_TIME_ZONE is not applied locally: timer schedules run in UTC", "WEBSITE_TIME_ZONE", v)
	}
	for _, fn := range h.fns {
		if fn.timer == nil || fn.disabled {
			continue
		}
		if fn.timer.constant {
			h.logger.Warn("a TimeSpan schedule runs locally, but in Azure only on an App Service plan (not on Consumption or Flex Consumption)", "function", fn.name, "schedule", fn.timer.expression)
		}
		if fn.retry != nil {
			h.logger.Warn("the retry policy of a timer function is not applied locally: a failed invocation waits for the next occurrence", "function", fn.name)
		}
		l := &timerListener{fn: fn, clock: realClock{}, logger: h.logger}
		if fn.timer.useMonitor {
			l.monitor = monitor
			if monitor == nil {
				h.logger.Info("no data dir: the timer's schedule status is not kept across restarts", "function", fn.name)
			}
		}
		l.invoke = func(ctx context.Context, body []byte) error { return h.invokeTimer(ctx, fn, body) }
		wg.Go(func() { l.run(ctx) })
	}
}

// invokeTimer sends one timer invocation and logs it as the host does.
func (h *Host) invokeTimer(ctx context.Context, fn *function, body []byte) error {
	id := newGUID()
	start := time.Now()
	_, err := h.invoker.invoke(ctx, fn, id, body)
	attrs := []slog.Attr{slog.String("function", fn.name), slog.String("invocationId", id), slog.Duration("duration", time.Since(start))}
	if ctx.Err() != nil {
		return err
	}
	if err != nil {
		h.logger.LogAttrs(ctx, slog.LevelError, "Executed 'Functions."+fn.name+"' (Failed)", append(attrs, slog.String("err", err.Error()))...)
		return err
	}
	h.logger.LogAttrs(ctx, slog.LevelInfo, "Executed 'Functions."+fn.name+"' (Succeeded)", attrs...)
	return nil
}

// formatTimeSpan renders d as .NET's TimeSpan.ToString() does: [d.]hh:mm:ss[.fffffff].
func formatTimeSpan(d time.Duration) string {
	days := int64(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	s := fmt.Sprintf("%02d:%02d:%02d", int64(d/time.Hour), int64(d/time.Minute)%60, int64(d/time.Second)%60)
	if frac := int64(d%time.Second) / 100; frac != 0 {
		s += fmt.Sprintf(".%07d", frac)
	}
	if days > 0 {
		s = fmt.Sprintf("%d.%s", days, s)
	}
	return s
}
