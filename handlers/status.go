package handlers

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/iothub-reboot/devmgmt/shared/deviceid"
)

// maxRequestIDLength bounds the request id in status URLs (ours are 36).
const maxRequestIDLength = 128

// statusResponse is RebootStatus's body.
type statusResponse struct {
	DeviceID    string `json:"deviceId"`
	RequestID   string `json:"requestId"`
	State       string `json:"state"`
	RequestedAt string `json:"requestedAt"`
	Deadline    string `json:"deadline"`
	LastReboot  string `json:"lastReboot,omitempty"`
	// DeviceStatus is the device's reported iothubDM.reboot.status.
	DeviceStatus string `json:"deviceStatus,omitempty"`
	Reason       string `json:"reason,omitempty"`
	MatchedBy    string `json:"matchedBy,omitempty"`
}

// handleRebootStatus serves GET /api/reboots/{deviceId}/{requestId}
// ?requestedAt=…: 202 + Retry-After while the reboot is pending, 200 once
// it completed, failed or timed out. Stateless: the URL and the twin hold
// everything.
func handleRebootStatus(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deviceID, requestID := r.PathValue("deviceId"), r.PathValue("requestId")
		if err := deviceid.Validate(deviceID); err != nil {
			writeProblem(w, r, badRequest(codeInvalidDeviceID, "Invalid device id: "+err.Error()+"."))
			return
		}
		if requestID == "" || len(requestID) > maxRequestIDLength {
			writeProblem(w, r, badRequest(codeInvalidArgument, "requestId must be 1.."+strconv.Itoa(maxRequestIDLength)+" characters."))
			return
		}
		requestedAt, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("requestedAt"))
		if err != nil {
			writeProblem(w, r, badRequest(codeInvalidArgument, "requestedAt must be an RFC 3339 time; use the statusUrl RebootDevice returned."))
			return
		}

		twin, err := d.Hub.GetTwin(r.Context(), deviceID, nil)
		if err != nil {
			if r.Context().Err() != nil {
				return
			}
			d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "reading twin failed",
				append([]slog.Attr{slog.String("deviceId", deviceID)}, hubErrorAttrs(err)...)...)
			writeProblem(w, r, hubProblem(r.Context(), err, deviceID))
			return
		}

		rep := rebootReportFromTwin(twin.Properties.Reported)
		outcome := judgeReboot(rep, requestID, requestedAt, d.Now(), d.StatusDeadline)
		body := statusResponse{
			DeviceID:     deviceID,
			RequestID:    requestID,
			State:        outcome.State,
			RequestedAt:  requestedAt.UTC().Format(requestedAtLayout),
			Deadline:     requestedAt.Add(d.StatusDeadline).UTC().Format(requestedAtLayout),
			LastReboot:   rep.LastReboot,
			DeviceStatus: rep.Status,
			MatchedBy:    outcome.MatchedBy,
		}
		if outcome.State == stateFailed {
			body.Reason = rep.Reason
		}
		if outcome.State == statePending {
			// Logic Apps keep polling Location while they get 202.
			w.Header().Set("Location", selfURL(r))
			w.Header().Set("Retry-After", strconv.Itoa(statusRetryAfter))
			writeJSON(w, http.StatusAccepted, body)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
}
