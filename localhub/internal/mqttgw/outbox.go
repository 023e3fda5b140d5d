package mqttgw

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
)

// Everything the hub sends a device (method requests, desired-property
// notifications, twin responses) goes through the session's outbox: callers
// queue a packet and return at once, and one writer goroutine, started when
// the queue becomes non-empty and gone when it drains, writes the packets in
// order. So a device that stops reading stalls nothing but its own queue:
// not the registry (desired notifications are queued under its device
// lock), not the REST handler of a method call (which times out on its own
// clock), not the device's own read loop.
//
// A device that cannot keep up is disconnected, as IoT Hub does: when its
// queue would pass maxQueuedPackets or maxQueuedBytes, or when one write
// takes longer than the write timeout (listener.go sets a deadline on every
// write, mochi's own included).
const (
	// maxQueuedPackets bounds the packets waiting for one device (the one
	// being written included). Well above a healthy device's bursts: method
	// calls are bounded per device by maxCallsPerDevice, twin responses by
	// the device's own requests.
	maxQueuedPackets = 256
	// maxQueuedBytes bounds their topics and payloads: sixteen direct
	// method requests of the maximum size.
	maxQueuedBytes = 16 * directmethod.MaxPayload
	// maxInflight bounds the QoS 1 packets a device has not acknowledged
	// (mochi keeps each, payload and all, to resend it); a device that reads
	// but never sends PUBACK is disconnected when it has this many.
	maxInflight = 64
	// defaultWriteTimeout is how long one write may block: a full 128 KB
	// packet still gets through at about 35 kbit/s.
	defaultWriteTimeout = 30 * time.Second
)

var (
	errQueueFull    = errors.New("the device does not read what the hub sends: its outbound queue is full")
	errInflightFull = errors.New("the device does not acknowledge what the hub sends: too many QoS 1 packets in flight")
	errSessionEnded = errors.New("the connection has ended")
)

// outPacket is a PUBLISH waiting to be written.
type outPacket struct {
	topic   string
	payload []byte
	qos     byte
	// rid is the direct-method call the packet carries, ended with
	// ErrDeviceNotOnline if the packet is dropped unwritten; 0 for none.
	rid uint64
}

func (p *outPacket) size() int { return len(p.topic) + len(p.payload) }

// outbox is a session's queue. Its slice exists only while packets wait,
// so an idle device pays for none.
type outbox struct {
	mu sync.Mutex
	// queue[head] is being written while writing is set.
	queue   []outPacket
	head    int
	bytes   int
	writing bool
	closed  bool
}

// send queues p for s's device and starts a writer if none runs. It never
// blocks on the network. When the queue is full the session ends: the
// device is too slow to keep (errQueueFull).
func (g *Gateway) send(s *session, p outPacket) error {
	o := &s.out
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return errSessionEnded
	}
	if n := len(o.queue) - o.head; n > 0 && (n >= maxQueuedPackets || o.bytes+p.size() > maxQueuedBytes) {
		o.mu.Unlock()
		g.endSession(s, errQueueFull)
		return errQueueFull
	}
	o.queue = append(o.queue, p)
	o.bytes += p.size()
	start := !o.writing
	o.writing = true
	o.mu.Unlock()
	if start {
		go g.drain(s)
	}
	return nil
}

// drain writes s's queue until it is empty or a write fails.
func (g *Gateway) drain(s *session) {
	for {
		p, ok := s.out.front()
		if !ok {
			return
		}
		err := g.write(s.client, p)
		s.out.pop(p)
		if err != nil {
			g.failCall(p.rid)
			g.endSession(s, fmt.Errorf("write to the device: %w", err))
			return
		}
	}
}

// front returns the packet to write next, or false (and the writer ends)
// when there is none.
func (o *outbox) front() (outPacket, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.head == len(o.queue) {
		o.writing = false
		return outPacket{}, false
	}
	return o.queue[o.head], true
}

// pop removes the packet front returned, once written.
func (o *outbox) pop(p outPacket) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.bytes -= p.size()
	if o.closed || o.head == len(o.queue) {
		return
	}
	o.queue[o.head] = outPacket{}
	o.head++
	if o.head == len(o.queue) {
		o.queue, o.head = nil, 0
	}
}

// close refuses further packets and returns those not yet being written.
func (o *outbox) close() []outPacket {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	first := o.head
	if o.writing {
		first++ // its writer sees the write fail or succeed
	}
	var dropped []outPacket
	if first < len(o.queue) {
		dropped = o.queue[first:]
	}
	o.queue, o.head = nil, 0
	return dropped
}

// size reports what is queued, for tests.
func (o *outbox) size() (packets, bytes int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue) - o.head, o.bytes
}

// endSession disconnects s's device because of cause. Safe to call more
// than once and from any goroutine; it never blocks on the network.
func (g *Gateway) endSession(s *session, cause error) {
	if !s.client.Closed() {
		g.log.Info("mqtt device disconnected", "deviceId", s.client.ID, "remote", s.client.Net.Remote, "reason", cause.Error())
	}
	g.retire(s)
	s.client.Stop(cause)
}

// retire releases what s holds once its connection is over or being
// closed: the expiry timer and the queue, whose method calls end at once.
func (g *Gateway) retire(s *session) {
	s.out.mu.Lock()
	t := s.expiry
	s.expiry = nil
	s.out.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	for _, p := range s.out.close() {
		g.failCall(p.rid)
	}
}

// write sends one PUBLISH. A broadcast through mochi would reach every
// device subscribed to the same filter, so the gateway writes the packet
// itself; at QoS 1 it registers the packet as in flight the way mochi
// does, so the device's PUBACK (or a resend after a persistent session
// resumes) is handled by mochi.
func (g *Gateway) write(cl *mqtt.Client, p outPacket) error {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: p.qos},
		TopicName:   p.topic,
		Payload:     p.payload,
		Created:     g.now().Unix(),
	}
	if p.qos > 0 {
		if cl.State.Inflight.Len() >= maxInflight {
			return errInflightFull
		}
		id, err := cl.NextPacketID()
		if err != nil {
			return fmt.Errorf("publish %s: %w", p.topic, err)
		}
		pk.PacketID = uint16(id)
		if cl.State.Inflight.Set(pk) {
			atomic.AddInt64(&g.server.Info.Inflight, 1)
			cl.State.Inflight.DecreaseSendQuota()
		}
	}
	if err := cl.WritePacket(pk); err != nil {
		return fmt.Errorf("publish %s: %w", p.topic, err)
	}
	return nil
}

// grantedQoS is the QoS to deliver at on filter: min(granted, 1), or false
// when the client is not subscribed to it.
func grantedQoS(cl *mqtt.Client, filter string) (byte, bool) {
	sub, ok := cl.State.Subscriptions.Get(filter)
	if !ok {
		return 0, false
	}
	return min(sub.Qos, 1), true
}
