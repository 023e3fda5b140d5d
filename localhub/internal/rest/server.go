// Package rest is the local hub's service REST API: the identity registry,
// device twins, direct methods, twin queries and statistics, speaking IoT
// Hub's paths, status codes, headers and error envelopes so that unmodified
// service SDKs work against it.
package rest

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/directmethod"
	"github.com/iothub-reboot/devmgmt/localhub/internal/jobs"
	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// MethodInvoker is the device side, the hub's device endpoint. None of its
// methods may wait on a device's network connection beyond the timeouts
// it is given.
type MethodInvoker interface {
	// InvokeMethod calls a direct method; errors other than the context's
	// are directmethod's.
	InvokeMethod(ctx context.Context, deviceID, method string, payload []byte, responseTimeout, connectTimeout time.Duration) (status int, response []byte, err error)
	ConnectedCount() int
	// DisconnectDevice closes the device's connection and drops its
	// session (device deleted or disabled), without waiting for it.
	DisconnectDevice(deviceID string)
}

// Deps are everything the REST API needs.
type Deps struct {
	// Hostname is the hub host name, e.g. "localhost". SAS audiences are
	// checked against it (and against the host the request was sent to).
	Hostname string
	Registry *registry.Store
	Devices  MethodInvoker
	// Jobs runs scheduled jobs; nil answers the jobs routes with 503.
	Jobs *jobs.Engine
	// BearerToken, if set, gives "Authorization: Bearer <it>" every
	// data-plane right (a stand-in for Entra ID).
	BearerToken string
	// Quotas, when set, throttle service operations with 429 (none by
	// default).
	Quotas Quotas
	Logger *slog.Logger
	Now    func() time.Time

	// tokens is the server's verified-token cache, set by newServer.
	tokens *tokenCache
}

// NewServer returns the service REST API as a handler, with the default
// response deadlines. Every route, including the JSON 404/405 catch-all,
// authenticates the caller. NewHTTPServer wraps it in a server that also
// bounds headers, bodies and idle connections.
func NewServer(d Deps) http.Handler { return newServer(d, Timeouts{}.withDefaults()) }

func newServer(d Deps, t Timeouts) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Devices == nil {
		d.Devices = offline{}
	}
	d.tokens = newTokenCache()
	mux := http.NewServeMux()
	addRoutes(mux, d, t)
	return mux
}

// offline stands in for a missing device side: no device is ever online.
type offline struct{}

func (offline) InvokeMethod(context.Context, string, string, []byte, time.Duration, time.Duration) (int, []byte, error) {
	return 0, nil, directmethod.ErrDeviceNotOnline
}
func (offline) ConnectedCount() int     { return 0 }
func (offline) DisconnectDevice(string) {}
