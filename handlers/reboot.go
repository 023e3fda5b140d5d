package handlers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
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
	// Status and Payload are the device's answer to the method.
	Status    int             `json:"status"`
	Payload   json.RawMessage `json:"payload"`
	StatusURL string          `json:"statusUrl"`
}

// handleRebootDevice serves POST /api/devices/{deviceId}/reboot: it calls
// the device's reboot method and answers 200 with the device's reply, or
// 202 + Location for callers that prefer the asynchronous pattern (Logic
// Apps then poll RebootStatus until the twin shows the reboot done).
func handleRebootDevice(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deviceID := r.PathValue("deviceId")
		if err := deviceid.Validate(deviceID); err != nil {
			writeProblem(w, r, badRequest(codeInvalidDeviceID, "Invalid device id: "+err.Error()+"."))
			return
		}
		params, p := parseRebootRequest(w, r)
		if p != nil {
			writeProblem(w, r, *p)
			return
		}

		requestID := d.NewRequestID()
		requestedAt := d.Now().UTC().Truncate(time.Millisecond)
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
			if r.Context().Err() != nil {
				return // the caller went away; nobody reads an answer
			}
			d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "reboot method failed", append(attrs, hubErrorAttrs(err)...)...)
			writeProblem(w, r, hubProblem(r.Context(), err, deviceID))
			return
		}
		if resp.Status < 200 || resp.Status > 299 {
			d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "device refused reboot",
				append(attrs, slog.Int("deviceStatus", resp.Status))...)
			writeProblem(w, r, problem{
				Status: http.StatusBadGateway, ErrorCode: codeDeviceError, Title: "The device refused the reboot.",
				Detail: fmt.Sprintf("Device %q answered the reboot method with status %d.", deviceID, resp.Status),
				Extra:  map[string]any{"deviceId": deviceID, "requestId": requestID, "deviceStatus": resp.Status, "devicePayload": resp.Payload},
			})
			return
		}
		d.Logger.LogAttrs(r.Context(), slog.LevelInfo, "reboot requested", append(attrs, slog.Int("deviceStatus", resp.Status))...)

		body := rebootResponse{
			DeviceID:    deviceID,
			RequestID:   requestID,
			RequestedAt: requestedAt.Format(requestedAtLayout),
			Status:      resp.Status,
			Payload:     resp.Payload,
			StatusURL:   statusURL(r, deviceID, requestID, requestedAt),
		}
		if prefersAsync(r) {
			w.Header().Set("Location", body.StatusURL)
			w.Header().Set("Retry-After", strconv.Itoa(statusRetryAfter))
			w.Header().Set("Preference-Applied", "respond-async")
			writeJSON(w, http.StatusAccepted, body)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
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
