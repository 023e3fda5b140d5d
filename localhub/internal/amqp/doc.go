// Package amqp is an AMQP 1.0 server: listeners, SASL, and the connection,
// session and link state machines, with real flow control. It knows
// nothing of IoT Hub or Event Hubs; the Event Hubs layer is an
// application on its API. Wire formats live below it: package codec (types
// and messages) and package frame (frames and performatives).
//
// # Using it
//
// NewServer(Options) and Serve(listener) for each listener (plain TCP or a
// tls.Listener). Every link a peer attaches goes to Options.Attach, which
// sees the peer's attach (Link.Role, Source with its filters, Target,
// Properties, DesiredCapabilities, Peer for the rest) and either returns
// LinkOptions (our reply's properties and capabilities, buffering) or an
// error (an *Error such as amqp:not-found), which refuses the link the way
// go-amqp and Microsoft.Azure.Amqp expect: an attach with null termini
// followed by a detach carrying the error.
//
// On a link where we send (Role() == frame.RoleSender: the peer consumes),
// the application calls Link.Send with encoded messages; they go out
// pre-settled as the peer's credit allows. On a link where we receive,
// Link.Receive returns whole messages (reassembled, within
// max-message-size) and Delivery.Accept/Reject/Settle answer unsettled
// ones. Link.Detach(err) ends a link from outside (amqp:link:stolen for an
// epoch takeover); Conn.Close(err) ends a connection. Conn.SASL,
// Conn.PeerOpen and Conn.SetValue carry per-connection state (a CBS layer
// records the tokens a connection has put and checks them on later
// attaches). ServeRequests serves a request/response node ($cbs,
// $management): requests arrive on one link, replies go to the link whose
// target is the request's reply-to (ReplyLinkFor).
//
// # Design
//
// Each connection has two goroutines. A reader reads and decodes frames
// and hands them over; the connection goroutine owns all session and link
// state, handles frames in order, and is the only writer to the socket.
// Application calls never touch that state: they set a field under the
// link's mutex and wake the connection goroutine (Link.Detach,
// Delivery.Settle, a freed receive slot), or go through bounded queues
// (Link.Send, Link.Receive). So no application call can block the
// connection, and a peer can only ever block its own connection. Options.Attach
// is the one callback on the connection goroutine, so its answer precedes
// any later frame of that connection, as the protocol needs.
//
// Flow control follows the spec: the session incoming-window is renewed
// when half used (unless the connection's receive buffer is over half
// full, so a slow application slows the peer before memory grows), link
// credit is granted as the application takes messages, credit toward the
// peer is computed with the spec formula (delivery-count + link-credit -
// our delivery-count), drain spends unused credit, and our transfers
// respect the peer's incoming-window and max-frame-size (split with more
// set). Settle modes a peer asks for are echoed (go-amqp refuses a link
// otherwise); where it asks for none we send pre-settled, which Event Hubs
// clients need.
//
// # Limits, and why
//
// Every byte held on behalf of a peer is bounded, and every write has a
// deadline:
//
//   - MaxFrameSize (64 KiB): the frame size Go and .NET clients use; a
//     larger frame is refused before its body is read
//     (amqp:connection:framing-error).
//   - ReceiveBuffer (4 MiB per connection): bytes of frames read but not
//     yet handled and of messages not yet taken by Receive. Past it the
//     reader stops reading the socket (TCP pushes back); if the
//     application takes nothing for an idle timeout, the connection is
//     closed with amqp:resource-limit-exceeded rather than waited on.
//   - MaxMessageSize (1 MiB, per link): the Event Hubs emulator's limit.
//     An unsettled message over it is rejected with
//     amqp:link:message-size-exceeded and dropped as it arrives; a
//     pre-settled one (which cannot be rejected) detaches the link.
//   - Credit (100 per link): messages waiting for Receive.
//   - SendBuffer (4 MiB per connection) and LinkOptions.SendBuffer
//     (256 KiB per link): messages waiting for credit. Send blocks past
//     them: a consumer that stops granting credit slows its producer, it
//     does not grow memory.
//   - WriteTimeout (10 s) on every write: a peer that stops reading is
//     disconnected, and with it every Send waiting on it fails.
//   - IdleTimeout (60 s; we announce 30 s): a peer silent for longer is
//     closed with amqp:resource-limit-exceeded. We send an empty frame
//     whenever we have been silent for a quarter of the peer's announced
//     idle time-out (at most 15 s).
//   - HandshakeTimeout (10 s) for headers, SASL and open;
//     MaxConnections (1024), MaxSessions (256 channels) and MaxLinks (256
//     per connection) bound the state a peer can create.
//   - Decoding is bounded by codec.MaxDepth and by the bytes present.
//
// So a connection holds at most ReceiveBuffer + SendBuffer plus about
// 100 KB of socket buffers and state, whatever its peer does.
//
// Bad input ends the smallest scope it concerns: undecodable or oversize
// frames close the connection (amqp:decode-error,
// amqp:connection:framing-error); a window violation or a frame for an
// unknown handle ends the session (amqp:session:window-violation,
// amqp:session:unattached-handle); a transfer without credit or an
// oversize pre-settled message detaches the link
// (amqp:link:transfer-limit-exceeded, amqp:link:message-size-exceeded).
// A panic in Options.Attach refuses the link with amqp:internal-error.
//
// Not implemented: transactions, link recovery (resume, unsettled maps
// on attach), dynamic nodes, the AMQP-over-TLS protocol header (TLS is
// direct, as every Event Hubs client uses it), WebSockets.
package amqp
