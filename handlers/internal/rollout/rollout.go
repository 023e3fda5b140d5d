// Package rollout is the staged rollout behind a fleet reboot, free of any
// I/O: the plan of waves, the record kept in IoT Hub, how a device's part
// in a wave's job counts, and the abort rule. The handlers read and write
// IoT Hub; this package decides.
//
// The model is AWS IoT Jobs' rollout and abort configuration
// (job-configurations-api: maximumPerMinute, exponentialRate with an
// incrementFactor of 1.1 to 5, abortConfig criteria of a failure
// threshold in percent after a minimum number of executed things), mapped
// onto IoT Hub's scheduled jobs: each wave is one scheduleDeviceMethod job
// over the devices tagged with the wave's number.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Limits of a plan.
const (
	// MaxWaves bounds a rollout: the record holds each wave's size and
	// results in the head device's tags, which IoT Hub caps at 8 KB.
	MaxWaves = 50
	// MinGrowthFactor and MaxGrowthFactor are AWS IoT Jobs' bounds for an
	// exponential rollout's incrementFactor.
	MinGrowthFactor = 1.1
	MaxGrowthFactor = 5
	// MaxDevicesPerMinute is AWS IoT Jobs' bound for maximumPerMinute.
	MaxDevicesPerMinute = 1000
)

// Waves says how devices are split into waves: a fixed size, a share of
// the selected devices, or a rate (that many devices a minute, a wave a
// minute). GrowthFactor, when above 1, multiplies each wave's size by it
// (an exponential ramp-up: 10, 20, 40, ... with 2).
type Waves struct {
	Size             int
	Percent          int
	DevicesPerMinute int
	GrowthFactor     float64
}

// Interval is the least time between two waves' starts: a minute for a
// rate, none otherwise.
func (w Waves) Interval() time.Duration {
	if w.DevicesPerMinute > 0 {
		return time.Minute
	}
	return 0
}

// Sizes splits n devices into waves: the first wave has the base size
// (Size, Percent of n rounded up, or DevicesPerMinute), each next one the
// previous times GrowthFactor (rounded up), and the last wave takes what
// remains. It fails when that makes more than MaxWaves waves.
func (w Waves) Sizes(n int) ([]int, error) {
	if n <= 0 {
		return nil, errors.New("no devices to split into waves")
	}
	base := w.Size
	switch {
	case w.Percent > 0:
		base = int(math.Ceil(float64(n) * float64(w.Percent) / 100))
	case w.DevicesPerMinute > 0:
		base = w.DevicesPerMinute
	}
	if base <= 0 {
		return nil, errors.New("the wave size is not set")
	}
	growth := w.GrowthFactor
	if growth < 1 {
		growth = 1
	}
	var sizes []int
	size := float64(base)
	for left := n; left > 0; {
		if len(sizes) == MaxWaves {
			return nil, fmt.Errorf("%d devices in waves of this size make more than %d waves; use larger waves or a growthFactor", n, MaxWaves)
		}
		s := min(left, ceilSize(size))
		sizes = append(sizes, s)
		left -= s
		size = math.Min(size*growth, float64(n)) // bounded, never +Inf
	}
	return sizes, nil
}

// ceilSize rounds a planned wave size up, forgiving the binary error of
// the products that make it: 100 × 1.1 is 110.00000000000001 in float64,
// and a wave of 110 must not become 111. The error stays below 1e-8 for
// sizes up to a million after 50 products; a real fraction that small
// rounds down, which no caller can tell apart.
func ceilSize(size float64) int { return int(math.Ceil(size - 1e-6)) }

// WaveFor picks the wave of the next device tagged: the first wave not yet
// full, given how many devices each wave has (counts, by wave number from
// 1) and the planned sizes; the last wave takes devices beyond the plan
// (devices that joined the selection after the count).
func WaveFor(counts map[int]int, sizes []int) int {
	for i, s := range sizes {
		if counts[i+1] < s {
			return i + 1
		}
	}
	return len(sizes)
}

// Abort is the abort rule: stop starting waves once more than
// MaxFailedPercent of the devices with an outcome failed, counting only
// once at least MinDevices devices have an outcome.
type Abort struct {
	MaxFailedPercent float64
	MinDevices       int
}

// Triggered applies the rule to the outcomes so far.
func (a Abort) Triggered(total Counts) bool {
	outcomes := total.Outcomes()
	if outcomes == 0 || outcomes < a.MinDevices {
		return false
	}
	return float64(total.Failures())*100 > a.MaxFailedPercent*float64(outcomes)
}

// Counts are a wave's devices by outcome. In JSON they are one string,
// "devices,pending,running,succeeded,failed,notOnline,timedOut,cancelled":
// the record holds one per wave in the head device's 8 KB of tags, where
// IoT Hub counts every number as 8 bytes and every key by its length.
type Counts struct {
	Devices   int
	Pending   int
	Running   int
	Succeeded int
	Failed    int
	NotOnline int
	TimedOut  int
	Cancelled int
}

// MarshalJSON renders the counts as one string.
func (c Counts) MarshalJSON() ([]byte, error) {
	var b []byte
	b = append(b, '"')
	for i, f := range c.fieldPtrs() {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(*f), 10)
	}
	return append(b, '"'), nil
}

// UnmarshalJSON reads the string MarshalJSON writes: eight whole numbers
// from 0, comma-separated.
func (c *Counts) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("counts: %w", err)
	}
	parts := strings.Split(s, ",")
	var out Counts
	fields := out.fieldPtrs()
	if len(parts) != len(fields) {
		return fmt.Errorf("counts: %q has %d numbers, want %d", s, len(parts), len(fields))
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > maxCount {
			return fmt.Errorf("counts: %q is not a count", p)
		}
		*fields[i] = n
	}
	*c = out
	return nil
}

// maxCount bounds a count read back: more devices than any hub holds.
const maxCount = 1 << 40

func (c *Counts) fieldPtrs() []*int {
	return []*int{&c.Devices, &c.Pending, &c.Running, &c.Succeeded, &c.Failed, &c.NotOnline, &c.TimedOut, &c.Cancelled}
}

// Outcomes counts the devices whose part is over, successfully or not.
func (c Counts) Outcomes() int { return c.Succeeded + c.Failures() }

// Failures counts every unsuccessful outcome: refused, failed, not online,
// timed out.
func (c Counts) Failures() int { return c.Failed + c.NotOnline + c.TimedOut }

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Devices += o.Devices
	c.Pending += o.Pending
	c.Running += o.Running
	c.Succeeded += o.Succeeded
	c.Failed += o.Failed
	c.NotOnline += o.NotOnline
	c.TimedOut += o.TimedOut
	c.Cancelled += o.Cancelled
}

// Count adds one device with outcome o.
func (c *Counts) Count(o Outcome) {
	c.Devices++
	switch o {
	case OutcomePending:
		c.Pending++
	case OutcomeRunning:
		c.Running++
	case OutcomeSucceeded:
		c.Succeeded++
	case OutcomeNotOnline:
		c.NotOnline++
	case OutcomeTimedOut:
		c.TimedOut++
	case OutcomeCancelled:
		c.Cancelled++
	default:
		c.Failed++
	}
}

// CancelRest counts the devices of a wave of size devices that its job
// never reached as cancelled: a job cancelled before it started, or never
// created, lists none of them in devices.jobs.
func (c *Counts) CancelRest(size int) {
	if rest := size - c.Devices; rest > 0 {
		c.Devices += rest
		c.Cancelled += rest
	}
}

// WaveKey is a wave's key in the record's maps (twin keys are strings).
func WaveKey(wave int) string { return strconv.Itoa(wave) }
