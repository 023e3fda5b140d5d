package device

import "context"

// Transport opens connections to the hub for one device. Each Connect is a
// fresh connection, as after a power cycle: nothing carries over from the
// previous session but what the device itself re-reports.
type Transport interface {
	// Connect dials the hub and subscribes to direct methods. Calls arrive
	// on onMethod until the session ends. onLost is called, from any
	// goroutine, once the connection drops without Close being called,
	// after Lost is closed. ctx bounds the dial and is the parent of
	// everything the session does.
	Connect(ctx context.Context, onMethod MethodHandler, onLost func()) (Session, error)
}

// MethodHandler answers one direct-method call with a status and a JSON
// reply. It runs on the transport's receive path, so it must never wait for
// the session (a reported-property round trip would wait behind it).
type MethodHandler func(ctx context.Context, name string, payload []byte) (status int, reply []byte)

// Session is one live connection.
type Session interface {
	// ReportProperties sends a reported-properties patch (a JSON object)
	// and waits for the hub to accept it.
	ReportProperties(ctx context.Context, patch []byte) error
	// Lost is closed when the connection drops without Close being called.
	Lost() <-chan struct{}
	// Close disconnects. It is safe to call more than once.
	Close() error
}
