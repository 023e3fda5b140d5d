package handlers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/shared/iothub"
)

// rebootMethod is the direct method devices implement (the IoT Hub device
// management reboot pattern).
const rebootMethod = "reboot"

// statusRetryAfter is the polling interval suggested in Retry-After (in
// seconds) while a reboot is in progress.
const statusRetryAfter = 10

// rebootPayload is what the device receives. Always a JSON object: device
// SDK method muxes (amenzhinsky's) reject an empty body.
type rebootPayload struct {
	RequestID    string `json:"requestId"`
	DelaySeconds int    `json:"delaySeconds"`
}

// rebootResponse is RebootDevice's 200 and 202 body.
type rebootResponse struct {
	DeviceID    string `json:"deviceId"`
	RequestID   string `json:"requestId"`
	RequestedAt string `json:"requestedAt"`
	// Status and Payload are the device's answer to the method; a replay
	// (Replayed) has none: the device answered the first request.
	Status    *int            `json:"status,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	StatusURL string          `json:"statusUrl"`
	Replayed  bool            `json:"replayed,omitempty"`
}

// handleRebootDevice serves POST /api/devices/{deviceId}/reboot: it calls
// the device's reboot method and answers 200 with the device's reply, or
// 202 + Location for callers that prefer the asynchronous pattern (Logic
// Apps then poll RebootStatus until the twin shows the reboot done). With
// an Idempotency-Key a retried request is answered from the twin's record
// of the first one instead of invoking the device again (idempotency.go).
func handleRebootDevice(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deviceID := r.PathValue("deviceId")
		if err := validateDeviceID(deviceID); err != nil {
			writeProblem(w, r, badRequest(codeInvalidDeviceID, "Invalid device id: "+err.Error()+"."))
			return
		}
		key, idempotent, p := parseIdempotencyKey(r)
		if p != nil {
			writeProblem(w, r, *p)
			return
		}
		params, p := parseRebootRequest(w, r)
		if p != nil {
			writeProblem(w, r, *p)
			return
		}

		requestID := d.NewRequestID()
		requestedAt := d.Now().UTC().Truncate(time.Millisecond)
		if idempotent {
			requestID = requestIDForKey(deviceID, key)
			at, made, call, err := claimRequest(r.Context(), d.Hub, deviceID, requestID, requestedAt)
			if err != nil {
				if call == callClaim && !notDelivered(err) {
					// The claim may have been written: withdraw it, as
					// nothing was invoked.
					d.releaseClaim(r, deviceID, requestID)
				}
				if r.Context().Err() != nil {
					return // nothing was invoked
				}
				d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "recording the reboot request failed",
					append([]slog.Attr{slog.String("deviceId", deviceID), slog.String("requestId", requestID)}, hubErrorAttrs(err)...)...)
				writeProblem(w, r, hubProblem(r.Context(), err, call, deviceID))
				return
			}
			if made {
				d.Logger.LogAttrs(r.Context(), slog.LevelInfo, "reboot request replayed",
					slog.String("deviceId", deviceID), slog.String("requestId", requestID))
				w.Header().Set(headerIdempotentReplayed, "true")
				writeAccepted(w, r, rebootResponse{DeviceID: deviceID, RequestID: requestID, Replayed: true}, at)
				return
			}
		}

		payload, _ := json.Marshal(rebootPayload{RequestID: requestID, DelaySeconds: params.DelaySeconds})
		start := time.Now()
		resp, err := d.Hub.InvokeMethod(r.Context(), deviceID, iothub.MethodRequest{
			MethodName:      rebootMethod,
			Payload:         payload,
			ResponseTimeout: params.ResponseTimeout,
			ConnectTimeout:  params.ConnectTimeout,
		}, nil)
		attrs := []slog.Attr{
			slog.String("deviceId", deviceID),
			slog.String("requestId", requestID),
			slog.Duration("duration", time.Since(start)),
		}
		if err != nil {
			if idempotent && notDelivered(err) {
				d.releaseClaim(r, deviceID, requestID)
			}
			if r.Context().Err() != nil {
				// Nobody reads an answer, but the call reached the hub and
				// maybe the device: say so, or the log shows nothing but a
				// request without a status.
				d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "reboot outcome unknown: the caller disconnected during the reboot call; the device may already be rebooting",
					append(attrs, hubErrorAttrs(err)...)...)
				return
			}
			d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "reboot method failed", append(attrs, hubErrorAttrs(err)...)...)
			writeProblem(w, r, hubProblem(r.Context(), err, callReboot, deviceID))
			return
		}
		if resp.Status < 200 || resp.Status > 299 {
			if idempotent {
				// The device refused: no reboot started, so a retry may
				// ask again.
				d.releaseClaim(r, deviceID, requestID)
			}
			d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "device refused reboot",
				append(attrs, slog.Int("deviceStatus", resp.Status))...)
			writeProblem(w, r, problem{
				Status: http.StatusBadGateway, ErrorCode: codeDeviceError,
				Detail: fmt.Sprintf("Device %q refused the reboot: it answered the reboot method with status %d.", deviceID, resp.Status),
				Extra:  map[string]any{"deviceId": deviceID, "requestId": requestID, "deviceStatus": resp.Status, "devicePayload": resp.Payload},
			})
			return
		}
		d.Logger.LogAttrs(r.Context(), slog.LevelInfo, "reboot requested", append(attrs, slog.Int("deviceStatus", resp.Status))...)
		writeAccepted(w, r, rebootResponse{DeviceID: deviceID, RequestID: requestID, Status: &resp.Status, Payload: resp.Payload}, requestedAt)
	})
}

// writeAccepted completes body with requestedAt and the status URL and
// answers 200, or 202 + Location when the caller prefers async.
func writeAccepted(w http.ResponseWriter, r *http.Request, body rebootResponse, requestedAt time.Time) {
	body.RequestedAt = requestedAt.UTC().Format(requestedAtLayout)
	body.StatusURL = statusURL(r, body.DeviceID, body.RequestID, requestedAt)
	if prefersAsync(r) {
		w.Header().Set("Location", body.StatusURL)
		w.Header().Set("Retry-After", strconv.Itoa(statusRetryAfter))
		w.Header().Set("Preference-Applied", "respond-async")
		writeJSON(w, http.StatusAccepted, body)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// releaseClaim withdraws an Idempotency-Key claim, logging a failure: the
// next retry then finds the claim and reports the reboot through its
// status URL instead of invoking again.
func (d Deps) releaseClaim(r *http.Request, deviceID, requestID string) {
	if err := releaseClaim(r.Context(), d.Hub, deviceID, requestID); err != nil {
		d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "withdrawing the reboot request's claim failed; a retry with the same Idempotency-Key will not invoke the device",
			append([]slog.Attr{slog.String("deviceId", deviceID), slog.String("requestId", requestID)}, hubErrorAttrs(err)...)...)
	}
}

// prefersAsync reports whether the request carries Prefer: respond-async
// (RFC 7240; several preferences may share the header).
func prefersAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for pref := range strings.SplitSeq(v, ",") {
			token, _, _ := strings.Cut(pref, ";")
			token, _, _ = strings.Cut(token, "=")
			if strings.EqualFold(strings.TrimSpace(token), "respond-async") {
				return true
			}
		}
	}
	return false
}
