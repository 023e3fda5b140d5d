package rest

import (
	"math"
	"net/http"
	"sync"
	"time"
)

// Quotas are the rates, per second, at which the hub serves each class of
// service operation before it answers 429 ThrottlingException (429001), as
// IoT Hub does once a unit's quota is used (reference §6). A zero rate is
// unlimited, which is the default: throttling is a fault to inject when
// testing how callers handle 429, not something a development hub needs.
//
// Each class allows a burst of one second's quota. IoT Hub first queues a
// burst and answers 429 only when its queue is full; the local hub answers
// at once, so that tests see the 429 deterministically.
type Quotas struct {
	// RegistryOperations: device create, get, list and delete.
	RegistryOperations float64
	// TwinReads: GET /twins/{id}.
	TwinReads float64
	// TwinUpdates: PATCH and PUT /twins/{id}.
	TwinUpdates float64
	// DirectMethods: calls, metered as IoT Hub does in 4 KB units of the
	// request, so a 10 KB call counts three.
	DirectMethods float64
	// Queries: POST /devices/query, one per page.
	Queries float64
	// Jobs: jobs operations (create, get, cancel, and each page of the
	// jobs query).
	Jobs float64
	// JobDeviceOperations paces the device operations of all jobs (each
	// method call or twin update a job makes). Unlike the others it does
	// not answer 429: a job's devices wait their turn, as IoT Hub
	// processes a throttled backlog "at the limit rate".
	JobDeviceOperations float64
	// ConcurrentJobs is how many jobs may be queued, scheduled or running
	// at once; creating one more answers 429
	// ThrottlingMaxActiveJobCountExceeded. Zero leaves the hub's own bound
	// (jobs.DefaultMaxActiveJobs).
	ConcurrentJobs int
}

// S1Quotas are the quotas of one S1 unit (reference §6;
// iot-hub-devguide-quotas-throttling): registry operations 100/min, twin
// reads 100/s, twin updates 50/s, direct methods 160 KB/s (40 calls of up
// to 4 KB), queries 20/min, jobs operations 100/min, jobs device
// operations 10/s, one concurrent job.
func S1Quotas() Quotas {
	return Quotas{
		RegistryOperations:  100.0 / 60,
		TwinReads:           100,
		TwinUpdates:         50,
		DirectMethods:       40,
		Queries:             20.0 / 60,
		Jobs:                100.0 / 60,
		JobDeviceOperations: 10,
		ConcurrentJobs:      1,
	}
}

// meter names the quota an operation draws on.
type meter int

const (
	unmetered meter = iota
	registryOps
	twinReads
	twinUpdates
	directMethods
	queries
	jobOps
)

// methodMeterUnit is the direct-method meter's size.
const methodMeterUnit = 4 * 1024

// limits holds one token bucket per metered class; a nil bucket is
// unlimited.
type limits struct {
	buckets map[meter]*bucket
	now     func() time.Time
}

func newLimits(q Quotas, now func() time.Time) *limits {
	l := &limits{buckets: make(map[meter]*bucket), now: now}
	for m, rate := range map[meter]float64{
		registryOps:   q.RegistryOperations,
		twinReads:     q.TwinReads,
		twinUpdates:   q.TwinUpdates,
		directMethods: q.DirectMethods,
		queries:       q.Queries,
		jobOps:        q.Jobs,
	} {
		if rate > 0 {
			l.buckets[m] = newBucket(rate, now())
		}
	}
	return l
}

// throttle answers 429 when the operation's quota is used up. It runs
// after authorization, so rejected callers do not use the quota.
func throttle(d Deps, l *limits, m meter, form envelope) func(http.Handler) http.Handler {
	b := l.buckets[m]
	if b == nil {
		return func(next http.Handler) http.Handler { return next }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cost := 1.0
			if m == directMethods && r.ContentLength > methodMeterUnit {
				cost = math.Ceil(float64(r.ContentLength) / methodMeterUnit)
			}
			if !b.take(l.now(), cost) {
				writeError(w, d.Now(), form, errThrottled())
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// bucket is a token bucket holding at most one second's quota.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, now time.Time) *bucket {
	burst := math.Max(1, rate)
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take removes n tokens if the bucket holds them. A call costing more than
// the burst is let through when the bucket is full, or it could never pass.
func (b *bucket) take(now time.Time, n float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = math.Min(b.burst, b.tokens+elapsed*b.rate)
		b.last = now
	}
	// The epsilon absorbs rounding: 3 s at 20/min must refill one call.
	if b.tokens+1e-9 >= n || b.tokens == b.burst {
		b.tokens -= n
		return true
	}
	return false
}
