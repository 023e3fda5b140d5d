package handlers

import "sync"

// DefaultRebootMemory is how many devices' reboot state the processor
// remembers by default: about 20 MB at the most.
const DefaultRebootMemory = 100_000

// rebootState is what the processor last saw of a device's reboot state.
type rebootState struct {
	LastReboot, Status, RequestID string
	// SequenceNumber and EnqueuedTimeUTC place the event it came from in
	// its partition (all of a device's events are in one), so that an
	// older event, delivered again after a failed invocation, is known as
	// such. Enqueued is empty when the host sent no position.
	SequenceNumber int64
	Enqueued       string
}

// seen reports whether the event at seq, enqueued at enqueued, is not
// newer than the one s came from: a redelivery. Both must agree, so a hub
// whose sequence numbers started over (a restarted local hub) is not
// mistaken for one.
func (s rebootState) seen(seq int64, enqueued string) bool {
	if s.Enqueued == "" || enqueued == "" || seq > s.SequenceNumber {
		return false
	}
	at, ok1 := parseDeviceTime(enqueued)
	last, ok2 := parseDeviceTime(s.Enqueued)
	return ok1 && ok2 && !at.After(last)
}

// rebootMemory remembers the last reboot state of each device, so that a
// device re-reporting what it reported before (as the simulator does on
// every connection) logs nothing, and a reboot is logged once per new
// lastReboot. It is per instance and bounded: two generations of at most
// size/2 devices each; when the young one fills up, the old one is
// dropped, so the devices least recently seen are forgotten first. A
// forgotten or never-seen device's next report is logged as new.
// Concurrent batches share it (IoT Hub sends all of a device's events to
// one partition, so they never race on the same device).
type rebootMemory struct {
	mu       sync.Mutex
	young    map[string]rebootState
	old      map[string]rebootState
	perGroup int
}

func newRebootMemory(size int) *rebootMemory {
	per := max(size/2, 1)
	return &rebootMemory{young: make(map[string]rebootState), perGroup: per}
}

// update remembers decide(prev, ok) for the device, where prev is its
// remembered state (ok false if none), and returns what decide saw. decide
// runs under the lock: keep it to a comparison.
func (m *rebootMemory) update(deviceID string, decide func(prev rebootState, ok bool) rebootState) (rebootState, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, inYoung := m.young[deviceID]
	ok := inYoung
	if !ok {
		prev, ok = m.old[deviceID]
	}
	next := decide(prev, ok)
	if !inYoung && len(m.young) >= m.perGroup {
		m.old, m.young = m.young, make(map[string]rebootState, m.perGroup)
	}
	m.young[deviceID] = next
	return prev, ok
}

// len is how many devices are remembered.
func (m *rebootMemory) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.young) + len(m.old)
}
