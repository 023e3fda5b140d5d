package localhub

import "github.com/iothub-reboot/devmgmt/localhub/internal/rest"

// Quotas throttle the service API: past a class's rate the hub answers
// 429 ThrottlingException (429001) in IoT Hub's envelope. The zero value,
// the default, never throttles; set Options.Quotas to test how a caller
// handles 429.
type Quotas = rest.Quotas

// S1Quotas are one S1 unit's quotas, as IoT Hub documents them.
func S1Quotas() Quotas { return rest.S1Quotas() }

// Quotas returns the quotas the hub throttles with (zero: none).
func (h *Hub) Quotas() Quotas { return h.quotas }
