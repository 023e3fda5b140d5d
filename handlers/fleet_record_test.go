package handlers_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
	"github.com/iothub-reboot/devmgmt/handlers/internal/rollout"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// TestLargestRecordFitsInTags: the largest record a request can make (50
// waves with every count set, the longest selection, every field) fits in
// a twin's 8 KB of tags next to the membership tag and a full set of
// Idempotency-Key claims, by IoT Hub's own count.
func TestLargestRecordFitsInTags(t *testing.T) {
	hub := localhubtest.New(t, nil)
	_, err := hub.CreateDevice("big")
	require.NoError(t, err)
	rec := rollout.Record{
		ID: "0f8fad5b-d9cb-469f-a165-70867728950e", State: rollout.StateCancelled,
		CreatedAt: "2025-01-31T08:00:00.000Z", Selection: strings.Repeat("x", rollout.MaxCondition), ByDeviceIDs: 100,
		Selected: 999999, Excluded: 999999, Sizes: map[string]int{}, IntervalSeconds: 60,
		Abort:                  &rollout.Abort{MaxFailedPercent: 12.5, MinDevices: 999999},
		ResponseTimeoutSeconds: 300, ConnectTimeoutSeconds: 300, DelaySeconds: 86400,
		Wave: rollout.MaxWaves, WaveStartedAt: "2025-01-31T08:00:00.000Z", Results: map[string]rollout.Counts{},
		CancelRequestedAt: "2025-01-31T08:00:00.000Z", EndedAt: "2025-01-31T08:00:00.000Z", TaggingUntil: "2025-01-31T08:00:00.000Z",
		Reason: "9999 of 99999 devices with an outcome failed (10.0%), above the abort threshold of 12.5%",
	}
	for w := 1; w <= rollout.MaxWaves; w++ {
		rec.Sizes[rollout.WaveKey(w)] = 999999
		rec.Results[rollout.WaveKey(w)] = rollout.Counts{Devices: 999999, Pending: 1, Running: 1, Succeeded: 999999, Failed: 999999, NotOnline: 999999, TimedOut: 999999, Cancelled: 999999}
	}
	patch, err := handlers.RecordPatch(rec)
	require.NoError(t, err)
	patch["fleetReboot"] = map[string]any{"id": rec.ID, "wave": rollout.MaxWaves}
	claims := map[string]any{}
	for i := range 16 { // maxClaims
		claims[strings.Repeat("c", 35)+string(rune('a'+i))] = "2025-01-31T08:00:00.000Z"
	}
	patch["rebootRequests"] = claims
	_, err = hubClient(t, hub).UpdateTwin(t.Context(), "big", iothub.TwinPatch{Tags: patch}, nil)
	require.NoError(t, err, "the largest record does not fit in a twin's tags")
}
