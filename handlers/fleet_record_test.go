package handlers_test

import (
	"fmt"
	"net/http"
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

// TestFleetRebootsOpenAtOnceAreBounded: with 50 fleet reboots open (their
// records written as the app writes them), a 51st is refused and nothing
// of it is written: an open one left out of the list the exclusions come
// from would have its devices taken. Once one ends, the next is accepted.
func TestFleetRebootsOpenAtOnceAreBounded(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{policy: fleetAppPolicy})
	svc := hubClient(t, hub)
	const open = 50
	write := func(i int, state rollout.State) {
		id := fmt.Sprintf("cap-%02d", i)
		rec := rollout.Record{ID: fmt.Sprintf("0f8fad5b-d9cb-469f-a165-%012d", i), State: state, CreatedAt: "2025-01-31T08:00:00.000Z",
			Selection: "deviceId = '" + id + "'", Selected: 1, Sizes: map[string]int{"1": 1}, ResponseTimeoutSeconds: 30}
		patch, err := handlers.RecordPatch(rec)
		require.NoError(t, err)
		patch["fleetReboot"] = map[string]any{"id": rec.ID, "wave": 1}
		_, err = svc.UpdateTwin(t.Context(), id, iothub.TwinPatch{Tags: patch}, nil)
		require.NoError(t, err)
	}
	for i := 1; i <= open+1; i++ {
		_, err := hub.CreateDevice(fmt.Sprintf("cap-%02d", i))
		require.NoError(t, err)
	}
	for i := 1; i <= open; i++ {
		write(i, rollout.StateRunning)
	}
	resp, body := app.do(t, http.MethodPost, "/api/reboots", fmt.Sprintf(`{"deviceIds":["cap-%02d"]}`, open+1), nil)
	p := requireProblem(t, resp, body, http.StatusConflict, "TooManyFleetReboots")
	require.Contains(t, p["detail"], "50 fleet reboots have not ended")
	page, err := svc.NewQueryPager("SELECT COUNT() AS n FROM devices WHERE IS_DEFINED(tags.fleetReboot)", nil).NextPage(t.Context())
	require.NoError(t, err)
	require.JSONEq(t, `{"n":50}`, string(page.Items[0]), "nothing of the refused one was written")

	write(1, rollout.StateCompleted)
	resp, body = app.do(t, http.MethodPost, "/api/reboots", fmt.Sprintf(`{"deviceIds":["cap-%02d"]}`, open+1), nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
}
