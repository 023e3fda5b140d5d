package amqp

import (
	"context"
	"errors"

	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/codec"
	"github.com/iothub-reboot/devmgmt/localhub/internal/amqp/frame"
)

// A request/response node ($cbs, $management, ...) is, on the wire, a
// pair of links on one connection: the client sends requests on a link
// whose target is the node, and attaches a receiving link whose source is
// the node and whose target is a private address it names in each
// request's reply-to. ServeRequests turns the first link into a loop over
// a handler; replies go to the second.

// RequestHandler answers one request. The response's correlation-id is
// set to the request's message-id (same type, as clients require) unless
// the handler set one.
type RequestHandler func(ctx context.Context, req *codec.Message) *codec.Message

// ServeRequests receives requests on l (a link on which the peer sends)
// until l ends, calls handle for each, settles the request as accepted and
// sends the response to the reply link. A request that does not decode is
// rejected with amqp:decode-error. It returns l's error.
func ServeRequests(ctx context.Context, l *Link, handle RequestHandler) error {
	for {
		d, err := l.Receive(ctx)
		if err != nil {
			return err
		}
		req, err := d.Message()
		if err != nil {
			d.Reject(Errorf(frame.CondDecodeError, "request: %v", err))
			continue
		}
		resp := handle(ctx, req)
		d.Accept()
		if resp == nil {
			continue
		}
		if resp.Properties == nil {
			resp.Properties = &codec.Properties{}
		}
		var replyTo string
		if req.Properties != nil {
			replyTo = req.Properties.ReplyTo
			if resp.Properties.CorrelationID == nil {
				resp.Properties.CorrelationID = req.Properties.MessageID
			}
		}
		rl := ReplyLinkFor(l, replyTo)
		if rl == nil {
			l.c.log.Info("amqp: no link to send a response to; dropping it", "node", l.Address(), "reply-to", replyTo)
			continue
		}
		if err := rl.SendMessage(ctx, resp); err != nil {
			var le *LinkError
			if errors.As(err, &le) || errors.Is(err, context.Canceled) {
				continue // the reply link went away; later requests may name another
			}
			return err
		}
	}
}

// ReplyLinkFor finds where the response to a request received on l goes:
// the link on l's connection whose target is replyTo or, failing that,
// the link on l's session on which we send from the node l receives for
// (some clients leave reply-to out).
func ReplyLinkFor(l *Link, replyTo string) *Link {
	if replyTo != "" {
		if rl := l.c.ReplyLink(replyTo); rl != nil {
			return rl
		}
	}
	node := l.Address()
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	for o := range l.c.links {
		if o.role == frame.RoleSender && o.sess == l.sess && o.peer.Source != nil && o.peer.Source.Address == node {
			return o
		}
	}
	return nil
}
