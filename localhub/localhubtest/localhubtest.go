// Package localhubtest starts a local IoT Hub for a test.
package localhubtest

import (
	"testing"

	"github.com/iothub-reboot/devmgmt/localhub"
)

// New starts a hub with opts (nil: zero Options, a temporary data dir) and
// stops it in t.Cleanup.
func New(t testing.TB, opts *localhub.Options) *localhub.Hub {
	t.Helper()
	var o localhub.Options
	if opts != nil {
		o = *opts
	}
	hub, err := localhub.Start(t.Context(), o)
	if err != nil {
		t.Fatalf("localhubtest: start hub: %v", err)
	}
	t.Cleanup(func() {
		if err := hub.Close(); err != nil {
			t.Errorf("localhubtest: close hub: %v", err)
		}
	})
	return hub
}
