package mqttgw

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// InvokeMethod sends a direct-method request to the device on
// $iothub/methods/POST/{method}/?$rid={rid} at QoS 0 and waits for its reply.
// payload is sent as the MQTT body (nil or empty: empty body). When the
// device is not connected and subscribed to $iothub/methods/POST/#, it waits
// up to connectTimeout for it to be, else ErrDeviceNotOnline. Then it waits
// up to responseTimeout for $iothub/methods/res/{status}/?$rid={rid}, else
// ErrTimeout. ctx cancels the wait.
//
// A payload over MaxMethodPayload is ErrPayloadTooLarge; a method name that
// cannot be a topic level is ErrInvalidMethodName. A device reply over
// MaxMethodPayload is discarded, so the call ends in ErrTimeout. Request ids
// are decimal: older Go devices parse them with strconv.Atoi, newer ones
// echo them as strings.
func (g *Gateway) InvokeMethod(ctx context.Context, deviceID, method string, payload []byte, responseTimeout, connectTimeout time.Duration) (status int, response []byte, err error) {
	if len(payload) > MaxMethodPayload {
		return 0, nil, ErrPayloadTooLarge
	}
	if !validMethodName(method) {
		return 0, nil, fmt.Errorf("%w: %q", ErrInvalidMethodName, method)
	}
	cl, err := g.awaitMethodSubscriber(ctx, deviceID, connectTimeout)
	if err != nil {
		return 0, nil, err
	}

	timeout := time.NewTimer(responseTimeout)
	defer timeout.Stop()
	rid := g.nextRID.Add(1)
	reply := g.calls.add(rid, deviceID)
	defer g.calls.remove(rid)
	if err := g.deliver(cl, methodRequestTopic(method, rid), payload, 0); err != nil {
		// The connection ended between the check and the write.
		return 0, nil, fmt.Errorf("%w: %v", ErrDeviceNotOnline, err)
	}

	// A device that disconnects now may still reconnect and answer: IoT
	// Hub keeps waiting until the response timeout.
	select {
	case r := <-reply:
		return r.status, r.body, nil
	case <-timeout.C:
		return 0, nil, ErrTimeout
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	case <-g.done:
		return 0, nil, ErrClosed
	}
}

// awaitMethodSubscriber returns the device's client once it is connected
// and subscribed to $iothub/methods/POST/#, waiting up to wait for that.
// The wait is woken by connects and subscriptions, not by polling.
func (g *Gateway) awaitMethodSubscriber(ctx context.Context, deviceID string, wait time.Duration) (*mqtt.Client, error) {
	var deadline <-chan time.Time
	for {
		g.mu.Lock()
		d := g.devices[deviceID]
		if cl := methodSubscriber(d); cl != nil {
			g.mu.Unlock()
			return cl, nil
		}
		if wait <= 0 {
			g.mu.Unlock()
			return nil, ErrDeviceNotOnline
		}
		if d == nil {
			d = g.deviceLocked(deviceID)
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
			err = ErrDeviceNotOnline
		case <-ctx.Done():
			err = ctx.Err()
		case <-g.done:
			err = ErrClosed
		}

		g.mu.Lock()
		d.waiters--
		g.forgetLocked(deviceID, d)
		g.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

func methodSubscriber(d *device) *mqtt.Client {
	if d == nil || d.sess == nil || d.sess.client.Closed() {
		return nil
	}
	if _, ok := d.sess.client.State.Subscriptions.Get(methodsFilter); !ok {
		return nil
	}
	return d.sess.client
}

// methodResponse resolves the call a device answered. Replies with an
// unknown request id, or from another device than the one called, are
// ignored.
func (g *Gateway) methodResponse(cl *mqtt.Client, t Topic, body []byte) {
	if len(body) > MaxMethodPayload {
		g.log.Info("direct method response discarded", "deviceId", cl.ID, "rid", t.RID,
			"reason", fmt.Sprintf("payload of %d bytes exceeds %d", len(body), MaxMethodPayload))
		return
	}
	rid, err := strconv.ParseUint(t.RID, 10, 64)
	if err != nil || !g.calls.resolve(rid, cl.ID, methodResult{status: t.Status, body: body}) {
		g.log.Debug("direct method response for no pending call", "deviceId", cl.ID, "rid", t.RID)
	}
}

type methodResult struct {
	status int
	body   []byte
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
