package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/iothub-reboot/devmgmt/localhub/internal/query"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/jobid"
)

// MethodInvoker is the device side: the hub's device endpoint. Its errors
// other than the context's are package directmethod's.
type MethodInvoker interface {
	InvokeMethod(ctx context.Context, deviceID, method string, payload []byte, responseTimeout, connectTimeout time.Duration) (status int, response []byte, err error)
}

// Options configure Start.
type Options struct {
	Store   *registry.Store
	Devices MethodInvoker
	// SelectDevices returns the ids of the devices a twin query selects,
	// as the service API's query would (query documents are the service
	// API's twins, which package rest owns).
	SelectDevices func(*query.Query) ([]string, error)
	Logger        *slog.Logger
	// Now is the clock jobs are stamped and scheduled with.
	Now func() time.Time

	// MaxActiveJobs bounds the jobs queued, scheduled or running at once;
	// creating one more fails with ErrTooManyActive. IoT Hub allows one on
	// Free and S1, five on S2 and ten on S3. 0 is DefaultMaxActiveJobs.
	MaxActiveJobs int
	// DeviceOperationsPerSecond paces the device operations (method calls,
	// twin updates) of all jobs together, as IoT Hub's "jobs device
	// operations" throttle does (10/s on S1). 0 does not pace.
	DeviceOperationsPerSecond float64
	// Concurrency bounds one job's device operations in flight; 0 is
	// DefaultConcurrency.
	Concurrency int
	// MaxRunningJobs bounds the jobs running at once; 0 is
	// DefaultMaxRunningJobs.
	MaxRunningJobs int
	// Retention is how long finished jobs are kept; 0 is DefaultRetention.
	Retention time.Duration
}

// Engine schedules and runs jobs. Safe for concurrent use.
type Engine struct {
	store       *registry.Store
	devices     MethodInvoker
	selectFn    func(*query.Query) ([]string, error)
	logger      *slog.Logger
	now         func() time.Time
	pace        *rate.Limiter // nil: unpaced
	maxActive   int
	maxRunning  int
	concurrency int
	retention   time.Duration

	ctx    context.Context // cancelled by Close: stops everything
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}

	mu      sync.Mutex
	closed  bool
	active  map[string]*jobState // queued, scheduled and running jobs
	running int
}

// jobState is an active job. Its fields are guarded by Engine.mu.
type jobState struct {
	job      Job
	query    *query.Query
	starting bool // the scheduler has handed it to a runner
}

// Start opens the engine over the jobs already in the store: queued and
// scheduled jobs are scheduled again and running jobs resume (see the
// package documentation for devices whose call was in flight).
func Start(opts Options) (*Engine, error) {
	if opts.Store == nil || opts.Devices == nil || opts.SelectDevices == nil {
		return nil, errors.New("jobs: Store, Devices and SelectDevices are required")
	}
	e := &Engine{
		store:       opts.Store,
		devices:     opts.Devices,
		selectFn:    opts.SelectDevices,
		logger:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:         opts.Now,
		maxActive:   cmp.Or(opts.MaxActiveJobs, DefaultMaxActiveJobs),
		maxRunning:  cmp.Or(opts.MaxRunningJobs, DefaultMaxRunningJobs),
		concurrency: cmp.Or(opts.Concurrency, DefaultConcurrency),
		retention:   cmp.Or(opts.Retention, DefaultRetention),
		wake:        make(chan struct{}, 1),
		active:      make(map[string]*jobState),
	}
	if e.now == nil {
		e.now = time.Now
	}
	if r := opts.DeviceOperationsPerSecond; r > 0 {
		// A burst of one second's operations, as the service API's own
		// throttles allow (rest.Quotas).
		e.pace = rate.NewLimiter(rate.Limit(r), max(1, int(r)))
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.purge(); err != nil {
		return nil, err
	}
	resume, err := e.load()
	if err != nil {
		return nil, err
	}
	for _, js := range resume {
		e.running++
		js.starting = true
		e.wg.Add(1)
		go e.resume(js)
	}
	e.wg.Add(1)
	go e.loop()
	return e, nil
}

// load reads the active jobs into memory and returns the running ones.
func (e *Engine) load() ([]*jobState, error) {
	var jobs []Job
	err := e.store.Jobs(func(id string, rec []byte) error {
		j, err := decodeJob(id, rec)
		if err != nil {
			return err
		}
		if !j.Status.Finished() {
			jobs = append(jobs, j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: load: %w", err)
	}
	var running []*jobState
	for _, j := range jobs {
		q, err := parseCondition(j.QueryCondition)
		if err != nil {
			return nil, fmt.Errorf("jobs: load %q: %w", j.ID, err)
		}
		js := &jobState{job: j, query: q}
		e.active[j.ID] = js
		if j.Status == StatusRunning {
			running = append(running, js)
		}
	}
	return running, nil
}

// Close stops the engine and waits for its goroutines. Device calls in
// flight are abandoned: their devices' records stay "running", which the
// next Start reads as an unknown outcome. Safe to call twice.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.cancel()
	e.wg.Wait()
	return nil
}

// Create validates spec and stores the job, queued. ErrExists,
// ErrTooManyActive, ErrClosed, *InvalidError.
func (e *Engine) Create(spec Spec) (Job, error) {
	q, err := e.validate(&spec)
	if err != nil {
		return Job{}, err
	}
	now := e.clock()
	j := Job{Spec: spec, Status: StatusQueued, CreatedTime: now}
	if j.StartTime.Before(now) {
		j.StartTime = now
	}
	j.StartTime = j.StartTime.UTC().Truncate(100 * time.Nanosecond)
	rec, err := encodeJob(j)
	if err != nil {
		return Job{}, err
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return Job{}, ErrClosed
	}
	// An existing id is answered first, so that a creation retried after
	// its first attempt was accepted learns that, not that its own job
	// takes the last slot.
	if _, err := e.store.Job(j.ID); err == nil {
		return Job{}, ErrExists
	} else if !errors.Is(err, registry.ErrJobNotFound) {
		return Job{}, fmt.Errorf("jobs: create %q: %w", j.ID, err)
	}
	// The active count and the insert are atomic under e.mu, so two
	// concurrent creations cannot both take the last slot.
	if len(e.active) >= e.maxActive {
		return Job{}, ErrTooManyActive
	}
	if err := e.store.WriteJob(registry.JobWrite{ID: j.ID, Record: rec, Create: true}); err != nil {
		if errors.Is(err, registry.ErrJobExists) {
			return Job{}, ErrExists
		}
		return Job{}, fmt.Errorf("jobs: create %q: %w", j.ID, err)
	}
	e.active[j.ID] = &jobState{job: j, query: q}
	e.kick()
	return j, nil
}

// validate checks spec and fills its defaults.
func (e *Engine) validate(spec *Spec) (*query.Query, error) {
	if err := jobid.Validate(spec.ID); err != nil {
		return nil, invalid("%s.", upperFirst(err.Error()))
	}
	switch spec.Type {
	case TypeDeviceMethod:
		if spec.Method == nil || spec.Method.Name == "" {
			return nil, invalid("cloudToDeviceMethod.methodName is null or empty.")
		}
		spec.UpdateTwin = nil
	case TypeUpdateTwin:
		if spec.UpdateTwin == nil {
			return nil, invalid("updateTwin is null.")
		}
		if err := registry.ValidateTwinPatch(spec.UpdateTwin.Patch); err != nil {
			return nil, invalid("updateTwin: %s", err.Error())
		}
		spec.Method = nil
	default:
		return nil, invalid("The job type '%s' is not a scheduled job type; use scheduleDeviceMethod or scheduleUpdateTwin.", spec.Type)
	}
	switch {
	case spec.MaxExecutionTime < 0 || spec.MaxExecutionTime > MaxExecutionTimeLimit:
		return nil, invalid("maxExecutionTimeInSeconds must be within [0; %d].", int64(MaxExecutionTimeLimit/time.Second))
	case spec.MaxExecutionTime == 0:
		spec.MaxExecutionTime = DefaultMaxExecutionTime
	}
	spec.MaxExecutionTime = spec.MaxExecutionTime.Truncate(time.Second)
	return parseCondition(spec.QueryCondition)
}

// parseCondition turns a job's queryCondition into a twin query: a WHERE
// condition, "*" for every device, or "FROM devices WHERE ..." (the form
// IoT Hub also takes, and needs for module jobs). Jobs on module twins
// are not supported locally.
func parseCondition(cond string) (*query.Query, error) {
	cond = strings.TrimSpace(cond)
	var text string
	switch {
	case cond == "":
		return nil, invalid("queryCondition is null or empty.")
	case cond == "*":
		text = "SELECT * FROM devices"
	case len(cond) > 5 && strings.EqualFold(cond[:5], "FROM "):
		text = "SELECT * " + cond
	default:
		text = "SELECT * FROM devices WHERE " + cond
	}
	q, err := query.Parse(text)
	if err != nil {
		var syntax *query.SyntaxError
		if errors.As(err, &syntax) {
			return nil, invalid("queryCondition is not a valid query condition: %s", syntax.Msg)
		}
		return nil, err
	}
	if q.From() != query.CollectionDevices {
		return nil, invalid("queryCondition: jobs on %s are not supported by the local hub; jobs select device twins (FROM devices).", q.From())
	}
	return q, nil
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// Get returns a job. ErrNotFound.
func (e *Engine) Get(id string) (Job, error) {
	e.mu.Lock()
	if js, ok := e.active[id]; ok {
		j := js.job
		e.mu.Unlock()
		return j, nil
	}
	e.mu.Unlock()
	rec, err := e.store.Job(id)
	if errors.Is(err, registry.ErrJobNotFound) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("jobs: get %q: %w", id, err)
	}
	return decodeJob(id, rec)
}

// Cancel cancels a queued or scheduled job. Cancelling a cancelled job
// returns it; any other status is a *StateError. ErrNotFound.
func (e *Engine) Cancel(id string) (Job, error) {
	e.mu.Lock()
	js, ok := e.active[id]
	if !ok {
		e.mu.Unlock()
		j, err := e.Get(id)
		switch {
		case err != nil:
			return Job{}, err
		case j.Status == StatusCancelled:
			return j, nil
		default:
			return Job{}, &StateError{Op: "cancelled", Status: j.Status}
		}
	}
	defer e.mu.Unlock()
	if js.starting || js.job.Status == StatusRunning {
		return Job{}, &StateError{Op: "cancelled", Status: StatusRunning}
	}
	j := js.job
	j.Status = StatusCancelled
	j.EndTime = e.clock()
	rec, err := encodeJob(j)
	if err != nil {
		return Job{}, err
	}
	if err := e.store.WriteJob(registry.JobWrite{ID: id, Record: rec}); err != nil {
		return Job{}, fmt.Errorf("jobs: cancel %q: %w", id, err)
	}
	delete(e.active, id)
	return j, nil
}

// List returns the jobs of type t and status s (empty: any), oldest
// first. Finished jobs are read from the store, active ones are as they
// stand now.
func (e *Engine) List(t Type, s Status) ([]Job, error) {
	var jobs []Job
	err := e.store.Jobs(func(id string, rec []byte) error {
		j, err := decodeJob(id, rec)
		if err != nil {
			return err
		}
		jobs = append(jobs, j)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: list: %w", err)
	}
	e.mu.Lock()
	for i, j := range jobs {
		if js, ok := e.active[j.ID]; ok {
			jobs[i] = js.job
		}
	}
	e.mu.Unlock()
	jobs = slices.DeleteFunc(jobs, func(j Job) bool {
		return t != "" && j.Type != t || s != "" && j.Status != s
	})
	slices.SortStableFunc(jobs, func(a, b Job) int { return a.CreatedTime.Compare(b.CreatedTime) })
	return jobs, nil
}

// DeviceJobs calls fn with every device's part in every job, in job id and
// device id order (the collection devices.jobs).
func (e *Engine) DeviceJobs(fn func(DeviceJob) error) error {
	jobs := map[string]Job{}
	err := e.store.Jobs(func(id string, rec []byte) error {
		j, err := decodeJob(id, rec)
		if err != nil {
			return err
		}
		jobs[id] = j
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: device jobs: %w", err)
	}
	err = e.store.AllJobDevices(func(jobID, deviceID string, rec []byte) error {
		j, ok := jobs[jobID]
		if !ok {
			return nil // created after the first read, or just expired
		}
		d, err := decodeDevice(j, deviceID, rec)
		if err != nil {
			return err
		}
		return fn(d)
	})
	if err != nil {
		return fmt.Errorf("jobs: device jobs: %w", err)
	}
	return nil
}

// clock is the engine's time for stamps: UTC at the 100 ns resolution of
// IoT Hub's (.NET) timestamps, which .NET clients parse (they take at most
// seven fractional digits).
func (e *Engine) clock() time.Time { return e.now().UTC().Truncate(100 * time.Nanosecond) }

// kick wakes the scheduler.
func (e *Engine) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// purgeInterval is how often finished jobs past their retention are
// deleted.
const purgeInterval = time.Hour

// loop starts due jobs and moves queued jobs whose start is ahead to
// scheduled. It sleeps until the next start time, a new job, a job's end
// or the next purge.
func (e *Engine) loop() {
	defer e.wg.Done()
	purge := time.NewTicker(purgeInterval)
	defer purge.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := e.schedule()
		timer.Stop()
		var due <-chan time.Time
		if !next.IsZero() {
			timer.Reset(max(next.Sub(e.now()), 0))
			due = timer.C
		}
		select {
		case <-e.ctx.Done():
			return
		case <-e.wake:
		case <-due:
		case <-purge.C:
			if err := e.purge(); err != nil {
				e.logger.Error("job history not purged", "err", err)
			}
		}
	}
}

// schedule acts on every active job that is not running and returns the
// earliest start still ahead (zero if none).
func (e *Engine) schedule() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return time.Time{}
	}
	waiting := make([]*jobState, 0, len(e.active))
	for _, js := range e.active {
		if !js.starting && js.job.Status != StatusRunning {
			waiting = append(waiting, js)
		}
	}
	slices.SortFunc(waiting, func(a, b *jobState) int {
		return cmp.Or(a.job.CreatedTime.Compare(b.job.CreatedTime), strings.Compare(a.job.ID, b.job.ID))
	})
	now := e.now()
	var next time.Time
	for _, js := range waiting {
		if js.job.StartTime.After(now) {
			if next.IsZero() || js.job.StartTime.Before(next) {
				next = js.job.StartTime
			}
			if js.job.Status == StatusQueued {
				e.setStatusLocked(js, StatusScheduled)
			}
			continue
		}
		if e.running >= e.maxRunning {
			continue // started when a running job ends
		}
		e.running++
		js.starting = true
		e.wg.Add(1)
		go e.start(js)
	}
	return next
}

// setStatusLocked records a waiting job's new status. A failed write
// leaves the old status on disk, which is harmless: it is recomputed from
// the start time on the next Start.
func (e *Engine) setStatusLocked(js *jobState, s Status) {
	j := js.job
	j.Status = s
	rec, err := encodeJob(j)
	if err == nil {
		err = e.store.WriteJob(registry.JobWrite{ID: j.ID, Record: rec})
	}
	if err != nil {
		e.logger.Error("job status not recorded", "jobId", j.ID, "status", s, "err", err)
		return
	}
	js.job = j
}

// purge deletes finished jobs older than the retention.
func (e *Engine) purge() error {
	cutoff := e.now().Add(-e.retention)
	var expired []string
	err := e.store.Jobs(func(id string, rec []byte) error {
		j, err := decodeJob(id, rec)
		if err != nil {
			return err
		}
		if j.Status.Finished() && j.EndTime.Before(cutoff) {
			expired = append(expired, id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: purge: %w", err)
	}
	if err := e.store.DeleteJobs(expired); err != nil {
		return fmt.Errorf("jobs: purge: %w", err)
	}
	return nil
}
