package handlers_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/handlers"
	"github.com/iothub-reboot/devmgmt/localhub"
	"github.com/iothub-reboot/devmgmt/localhub/localhubtest"
	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// requireNoCall checks that the device received no (further) method call.
// The app answers RebootDevice only after the hub relayed the device's
// reply (or timed out), and the test device records a call before it
// replies, so once the answer is in, any invocation is already recorded.
func requireNoCall(t *testing.T, dev *localhubtest.Device) {
	t.Helper()
	select {
	case call := <-dev.Calls:
		t.Fatalf("the device was invoked again: %s %s", call.Name, call.Payload)
	default:
	}
}

func payloadRequestID(t *testing.T, call localhubtest.MethodCall) string {
	t.Helper()
	var p struct{ RequestID string }
	require.NoError(t, json.Unmarshal(call.Payload, &p))
	return p.RequestID
}

func hubClient(t *testing.T, hub *localhub.Hub) *iothub.Client {
	t.Helper()
	cs, err := hub.ServiceConnectionString("serviceAndRegistryRead")
	require.NoError(t, err)
	c, err := handlers.NewHubClient(handlers.Config{ConnectionString: cs, Endpoint: hub.HTTPSURL()},
		&iothub.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hub.HTTPClient()}})
	require.NoError(t, err)
	return c
}

// A retry after a 200 whose answer was lost, and after a 504 (outcome
// unknown), must not invoke the device a second time: same requestId, the
// first request's requestedAt, and a status URL to follow.
func TestIdempotencyKeyRetryInvokesOnce(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})

	t.Run("after a 200", func(t *testing.T) {
		t.Parallel()
		dev := localhubtest.NewDevice(t, hub, "idem-ok", localhubtest.Reply(200, `{"result":"Reboot started"}`))
		key := map[string]string{"Idempotency-Key": "08585112233445566778899001122CU00"}
		resp, body := app.do(t, http.MethodPost, "/api/devices/idem-ok/reboot", `{"delaySeconds":1}`, key)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		first := decodeJSON(t, body)
		require.Empty(t, resp.Header.Get("Idempotent-Replayed"))
		require.Equal(t, first["requestId"], payloadRequestID(t, dev.NextCall(t)))

		for range 2 {
			resp, body = app.do(t, http.MethodPost, "/api/devices/idem-ok/reboot", `{"delaySeconds":1}`, key)
			require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
			require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
			require.Equal(t, map[string]any{
				"deviceId":    "idem-ok",
				"requestId":   first["requestId"],
				"requestedAt": first["requestedAt"],
				"statusUrl":   first["statusUrl"],
				"replayed":    true,
			}, decodeJSON(t, body))
			requireNoCall(t, dev)
		}

		// The async form of a retry answers 202 + Location like the first.
		key["Prefer"] = "respond-async"
		resp, body = app.do(t, http.MethodPost, "/api/devices/idem-ok/reboot", "", key)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "body: %s", body)
		require.Equal(t, first["statusUrl"], resp.Header.Get("Location"))
		requireNoCall(t, dev)
	})

	t.Run("after a 504", func(t *testing.T) {
		t.Parallel()
		dev := localhubtest.NewDevice(t, hub, "idem-slow", localhubtest.Silent)
		key := map[string]string{"Idempotency-Key": `"run-2"`} // the draft's structured-field form
		resp, body := app.do(t, http.MethodPost, "/api/devices/idem-slow/reboot", `{"responseTimeoutSeconds":5}`, key)
		requireProblem(t, resp, body, http.StatusGatewayTimeout, "DeviceTimeout")
		requestID := payloadRequestID(t, dev.NextCall(t))

		// The device never reported anything: the twin's claim alone
		// stops the second call.
		resp, body = app.do(t, http.MethodPost, "/api/devices/idem-slow/reboot", `{"responseTimeoutSeconds":5}`, map[string]string{"Idempotency-Key": "run-2"})
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		got := decodeJSON(t, body)
		require.Equal(t, requestID, got["requestId"])
		require.Equal(t, true, got["replayed"])
		requireNoCall(t, dev)
	})

	t.Run("the same key on another device is another reboot", func(t *testing.T) {
		t.Parallel()
		a := localhubtest.NewDevice(t, hub, "idem-a", localhubtest.Reply(200, `{}`))
		b := localhubtest.NewDevice(t, hub, "idem-b", localhubtest.Reply(200, `{}`))
		key := map[string]string{"Idempotency-Key": "shared"}
		_, bodyA := app.do(t, http.MethodPost, "/api/devices/idem-a/reboot", "", key)
		_, bodyB := app.do(t, http.MethodPost, "/api/devices/idem-b/reboot", "", key)
		idA, idB := payloadRequestID(t, a.NextCall(t)), payloadRequestID(t, b.NextCall(t))
		require.NotEqual(t, idA, idB)
		require.Equal(t, idA, decodeJSON(t, bodyA)["requestId"])
		require.Equal(t, idB, decodeJSON(t, bodyB)["requestId"])
	})

	t.Run("concurrent duplicates invoke once", func(t *testing.T) {
		t.Parallel()
		dev := localhubtest.NewDevice(t, hub, "idem-race", localhubtest.Reply(200, `{}`))
		key := map[string]string{"Idempotency-Key": "race"}
		var wg sync.WaitGroup
		statuses := make([]int, 4)
		replays := make([]string, 4)
		for i := range statuses {
			wg.Go(func() {
				resp, _ := app.do(t, http.MethodPost, "/api/devices/idem-race/reboot", "", key)
				statuses[i], replays[i] = resp.StatusCode, resp.Header.Get("Idempotent-Replayed")
			})
		}
		wg.Wait()
		require.Equal(t, []int{200, 200, 200, 200}, statuses)
		require.ElementsMatch(t, []string{"", "true", "true", "true"}, replays)
		dev.NextCall(t)
		requireNoCall(t, dev)
	})

	t.Run("a device that reports the requestId is recognised without the claim", func(t *testing.T) {
		t.Parallel()
		dev := localhubtest.NewDevice(t, hub, "idem-echo", localhubtest.Reply(200, `{}`))
		key := map[string]string{"Idempotency-Key": "echo"}
		resp, body := app.do(t, http.MethodPost, "/api/devices/idem-echo/reboot", "", key)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		requestID := payloadRequestID(t, dev.NextCall(t))
		reportReboot(t, dev, map[string]any{"status": "rebooting", "requestId": requestID})
		_, err := hubClient(t, hub).UpdateTwin(t.Context(), "idem-echo", iothub.TwinPatch{Tags: map[string]any{"rebootRequests": nil}}, nil)
		require.NoError(t, err)

		resp, body = app.do(t, http.MethodPost, "/api/devices/idem-echo/reboot", "", key)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
		require.Equal(t, requestID, decodeJSON(t, body)["requestId"])
		requireNoCall(t, dev)
	})
}

// When the hub or the device certainly started no reboot, the claim is
// withdrawn, so a retry with the same key asks again.
func TestIdempotencyKeyRetryAfterNoRebootInvokesAgain(t *testing.T) {
	t.Parallel()
	hub := localhubtest.New(t, nil)
	app := newTestApp(t, hub, appOptions{})
	key := map[string]string{"Idempotency-Key": "later"}

	t.Run("device offline", func(t *testing.T) {
		t.Parallel()
		cs, err := hub.CreateDevice("idem-offline")
		require.NoError(t, err)
		resp, body := app.do(t, http.MethodPost, "/api/devices/idem-offline/reboot", "", key)
		requireProblem(t, resp, body, http.StatusConflict, "DeviceNotOnline")

		dev := localhubtest.ConnectDevice(t, hub, cs, localhubtest.Reply(200, `{}`))
		resp, body = app.do(t, http.MethodPost, "/api/devices/idem-offline/reboot", "", key)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		require.Empty(t, resp.Header.Get("Idempotent-Replayed"))
		require.Equal(t, decodeJSON(t, body)["requestId"], payloadRequestID(t, dev.NextCall(t)))
	})

	t.Run("device refused", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		status := 409
		dev := localhubtest.NewDevice(t, hub, "idem-busy", func(localhubtest.MethodCall) *localhubtest.MethodReply {
			mu.Lock()
			defer mu.Unlock()
			return &localhubtest.MethodReply{Status: status, Payload: []byte(`{"error":"A reboot is already in progress"}`)}
		})
		resp, body := app.do(t, http.MethodPost, "/api/devices/idem-busy/reboot", "", key)
		requireProblem(t, resp, body, http.StatusBadGateway, "DeviceError")
		first := payloadRequestID(t, dev.NextCall(t))

		mu.Lock()
		status = 200
		mu.Unlock()
		resp, body = app.do(t, http.MethodPost, "/api/devices/idem-busy/reboot", "", key)
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
		require.Equal(t, first, payloadRequestID(t, dev.NextCall(t)), "the same request, asked again")
	})
}

func TestIdempotencyKeyValidation(t *testing.T) {
	t.Parallel()
	app := newFakeHubApp(t, &fakeHub{status: http.StatusInternalServerError})
	for _, key := range []string{"", `""`, strings.Repeat("k", 256), `a"b`, `a\b`, "\u00fcn\u00efcode"} {
		resp, body := app.do(t, http.MethodPost, "/api/devices/dev-1/reboot", "", map[string]string{"Idempotency-Key": key})
		got := requireProblem(t, resp, body, http.StatusBadRequest, "InvalidArgument")
		require.Contains(t, got["detail"], "Idempotency-Key")
	}
}

// Without twin write access the app cannot record the request, so it
// invokes nothing and says what access is missing. (No shared access
// policy reads twins without the right to write them, so a fake hub plays
// an Entra ID role with twins/read but not twins/write.)
func TestIdempotencyKeyNeedsTwinWriteAccess(t *testing.T) {
	t.Parallel()
	hub := &fakeHub{header: map[string]string{"Content-Type": "application/json", "iothub-errorcode": "IotHubUnauthorizedAccess"},
		answer: func(method, path string) (int, string) {
			if method == http.MethodGet {
				return http.StatusOK, `{"deviceId":"dev-1","etag":"AAAAAAAAAAE=","properties":{"reported":{}}}`
			}
			return http.StatusForbidden, `{"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized","ExceptionMessage":""}`
		}}
	app := newFakeHubApp(t, hub)
	resp, body := app.do(t, http.MethodPost, "/api/devices/dev-1/reboot", "", map[string]string{"Idempotency-Key": "k"})
	got := requireProblem(t, resp, body, http.StatusInternalServerError, "InternalError")
	require.Contains(t, got["detail"], "failed the twin update recording the request with HTTP 403")
	require.Contains(t, got["detail"], "twins/write")
	var methods []string
	for _, r := range hub.recorded() {
		methods = append(methods, r.Method+" "+r.Path)
	}
	require.Equal(t, []string{"GET /twins/dev-1", "PATCH /twins/dev-1"}, methods, "no method call")
}
