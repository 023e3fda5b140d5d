package mqttgw

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
)

// maxCallsPerDevice bounds the InvokeMethod calls in progress for one
// device, waiting for it to connect or for its answer. Each holds its
// request (up to 128 KB) until it ends, so without a bound a caller
// hammering one silent device could grow the hub's memory for as long as
// its timeouts (up to 600 s) last.
const maxCallsPerDevice = 64

// InvokeMethod sends a direct-method request to the device on
// $iothub/methods/POST/{method}/?$rid={rid} at QoS 0 and waits for its reply.
// payload is sent as the MQTT body, as it is (nil or empty: empty body).
// When the device is not connected and subscribed to $iothub/methods/POST/#,
// it waits up to connectTimeout for it to be, else ErrDeviceNotOnline. Then
// it waits up to responseTimeout for $iothub/methods/res/{status}/?$rid={rid},
// else ErrTimeout, whatever the device's connection does meanwhile: the
// request is queued (outbox.go), never written on the caller's time. A
// request dropped unwritten because the connection ended ends the call with
// ErrDeviceNotOnline. ctx cancels the wait.
//
// A payload over directmethod.MaxPayload is ErrPayloadTooLarge; a method
// name that cannot be a topic level is ErrInvalidMethodName; a device with
// maxCallsPerDevice calls in progress is ErrTooManyCalls. A device reply
// over MaxPayload is discarded, so the call ends in ErrTimeout. Request ids
// are decimal: older Go devices parse them with strconv.Atoi, newer ones
// echo them as strings.
func (g *Gateway) InvokeMethod(ctx context.Context, deviceID, method string, payload []byte, responseTimeout, connectTimeout time.Duration) (status int, response []byte, err error) {
	if len(payload) > directmethod.MaxPayload {
		return 0, nil, directmethod.ErrPayloadTooLarge
	}
	if !validMethodName(method) {
		return 0, nil, fmt.Errorf("%w: %q", directmethod.ErrInvalidMethodName, method)
	}
	d, s, err := g.awaitMethodSubscriber(ctx, deviceID, connectTimeout)
	if err != nil {
		return 0, nil, err
	}
	defer g.releaseCall(deviceID, d)

	timeout := time.NewTimer(responseTimeout)
	defer timeout.Stop()
	rid := g.nextRID.Add(1)
	reply := g.calls.add(rid, deviceID)
	defer g.calls.remove(rid)
	if err := g.send(s, outPacket{topic: methodRequestTopic(method, rid), payload: payload, rid: rid}); err != nil {
		return 0, nil, fmt.Errorf("%w: %v", directmethod.ErrDeviceNotOnline, err)
	}

	// A device that disconnects now may still reconnect and answer: IoT
	// Hub keeps waiting until the response timeout.
	select {
	case r := <-reply:
		return r.status, r.body, r.err
	case <-timeout.C:
		return 0, nil, directmethod.ErrTimeout
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-g.done:
		return 0, nil, directmethod.ErrClosed
	}
}

// releaseCall counts a call admitted by awaitMethodSubscriber out. It
// takes g.mu only when the device has neither calls nor a session left, so
// calls to connected devices contend on g.mu once.
func (g *Gateway) releaseCall(deviceID string, d *device) {
	if d.calls.Add(-1) > 0 || d.live.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.devices[deviceID] == d {
		g.forgetLocked(deviceID, d)
	}
}

// callsInProgress is how many calls deviceID has in progress, for tests.
func (g *Gateway) callsInProgress(deviceID string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.devices[deviceID]; d != nil {
		return int(d.calls.Load())
	}
	return 0
}

// awaitMethodSubscriber admits a call to the device, unless it has
// maxCallsPerDevice in progress (ErrTooManyCalls), and returns its entry
// and its session once it is connected and subscribed to
// $iothub/methods/POST/#, waiting up to wait for that. The wait is woken
// by connects and subscriptions, not by polling. On success the caller
// ends the call with releaseCall.
func (g *Gateway) awaitMethodSubscriber(ctx context.Context, deviceID string, wait time.Duration) (*device, *session, error) {
	g.mu.Lock()
	d := g.deviceLocked(deviceID)
	if d.calls.Load() >= maxCallsPerDevice {
		g.forgetLocked(deviceID, d)
		g.mu.Unlock()
		return nil, nil, directmethod.ErrTooManyCalls
	}
	d.calls.Add(1)
	g.mu.Unlock()

	var deadline <-chan time.Time
	for {
		g.mu.Lock()
		if s := methodSubscriber(d); s != nil {
			g.mu.Unlock()
			return d, s, nil
		}
		if wait <= 0 {
			d.calls.Add(-1)
			g.forgetLocked(deviceID, d)
			g.mu.Unlock()
			return nil, nil, directmethod.ErrDeviceNotOnline
		}
		if d.changed == nil {
			d.changed = make(chan struct{})
		}
		changed := d.changed
		d.waiters++
		g.mu.Unlock()

		if deadline == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			deadline = t.C
		}
		var err error
		select {
		case <-changed:
		case <-deadline:
			err = directmethod.ErrDeviceNotOnline
		case <-ctx.Done():
			err = ctx.Err()
		case <-g.done:
			err = directmethod.ErrClosed
		}

		g.mu.Lock()
		d.waiters--
		if err != nil {
			d.calls.Add(-1)
		}
		g.forgetLocked(deviceID, d)
		g.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
	}
}

func methodSubscriber(d *device) *session {
	if d == nil || d.sess == nil || d.sess.client.Closed() {
		return nil
	}
	if _, ok := d.sess.client.State.Subscriptions.Get(methodsFilter); !ok {
		return nil
	}
	return d.sess
}

// methodResponse resolves the call a device answered. Replies with an
// unknown request id, or from another device than the one called, are
// ignored.
func (g *Gateway) methodResponse(deviceID string, t Topic, body []byte) {
	if len(body) > directmethod.MaxPayload {
		g.log.Info("direct method response discarded", "deviceId", deviceID, "rid", t.RID,
			"reason", fmt.Sprintf("payload of %d bytes exceeds %d", len(body), directmethod.MaxPayload))
		return
	}
	rid, err := strconv.ParseUint(t.RID, 10, 64)
	if err != nil || !g.calls.resolve(rid, deviceID, methodResult{status: t.Status, body: body}) {
		g.log.Debug("direct method response for no pending call", "deviceId", deviceID, "rid", t.RID)
	}
}

// failCall ends call rid with ErrDeviceNotOnline: its request was dropped
// unwritten. rid 0 is no call.
func (g *Gateway) failCall(rid uint64) {
	if rid != 0 {
		g.calls.fail(rid, directmethod.ErrDeviceNotOnline)
	}
}

type methodResult struct {
	status int
	body   []byte
	err    error
}

type pendingCall struct {
	deviceID string
	reply    chan methodResult
}

// pendingCalls are the InvokeMethod calls waiting for a reply, by rid.
type pendingCalls struct {
	mu sync.Mutex
	m  map[uint64]*pendingCall
}

func (p *pendingCalls) add(rid uint64, deviceID string) <-chan methodResult {
	c := &pendingCall{deviceID: deviceID, reply: make(chan methodResult, 1)}
	p.mu.Lock()
	p.m[rid] = c
	p.mu.Unlock()
	return c.reply
}

func (p *pendingCalls) remove(rid uint64) {
	p.mu.Lock()
	delete(p.m, rid)
	p.mu.Unlock()
}

// resolve hands r to the call rid if deviceID is the device it called.
func (p *pendingCalls) resolve(rid uint64, deviceID string, r methodResult) bool {
	p.mu.Lock()
	c, ok := p.m[rid]
	if ok && c.deviceID == deviceID {
		delete(p.m, rid)
	}
	p.mu.Unlock()
	if !ok || c.deviceID != deviceID {
		return false
	}
	c.reply <- r // buffered; resolved at most once
	return true
}

// fail ends the call rid, if still pending, with err.
func (p *pendingCalls) fail(rid uint64, err error) {
	p.mu.Lock()
	c, ok := p.m[rid]
	delete(p.m, rid)
	p.mu.Unlock()
	if ok {
		c.reply <- methodResult{err: err}
	}
}

// len is how many calls wait for a reply, for tests.
func (p *pendingCalls) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
