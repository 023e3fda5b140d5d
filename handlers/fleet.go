package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/iothub-reboot/devmgmt/handlers/internal/rollout"
)

// Fleet reboots: POST /api/reboots reboots the devices a twin query (or a
// list of ids) selects, in waves, each wave an IoT Hub scheduled job, and
// stops when too many fail. IoT Hub is the system of record
// (docs/architecture.md, "Fleet reboots"):
//
//   - each selected device carries tags.fleetReboot = {id, wave};
//   - one of them, the head, also carries the fleet reboot's record
//     (tags.fleetRebootRecord: the selection, the plan, the abort rule,
//     the state, each finished wave's counts);
//   - wave k is job fleetreboot-<id>-w<k>, a scheduleDeviceMethod over
//     "tags.fleetReboot.id = '<id>' AND tags.fleetReboot.wave = k";
//   - each device's outcome is in devices.jobs, and its reboot in its twin.
//
// The app keeps nothing: FleetRebootTimer, a timer function, moves every
// open fleet reboot on from what IoT Hub holds, so any instance, restarted
// at any point, carries on where the last one stopped.

// Tags of the fleet reboot's devices.
const (
	memberTag = "fleetReboot"
	recordTag = "fleetRebootRecord"
)

// Request limits.
const (
	// maxFleetDeviceIDs bounds an explicit list: it becomes the query
	// condition "deviceId IN [...]", kept in the record.
	maxFleetDeviceIDs = 100
	maxWaveSize       = 1_000_000
	maxMinDevices     = 1_000_000
	// fleetRetryAfter is the polling interval suggested while a fleet
	// reboot runs: each status read costs a few twin queries, of which S1
	// allows 20 a minute per unit.
	fleetRetryAfter = 30
)

// fleetRequestJSON is POST /api/reboots's body.
type fleetRequestJSON struct {
	Query     *string  `json:"query"`
	DeviceIDs []string `json:"deviceIds"`
	Waves     *struct {
		Size             *int     `json:"size"`
		Percent          *int     `json:"percent"`
		DevicesPerMinute *int     `json:"devicesPerMinute"`
		GrowthFactor     *float64 `json:"growthFactor"`
	} `json:"waves"`
	Abort *struct {
		MaxFailedPercent *float64 `json:"maxFailedPercent"`
		MinDevices       *int     `json:"minDevices"`
	} `json:"abort"`
	ResponseTimeoutSeconds *int `json:"responseTimeoutSeconds"`
	ConnectTimeoutSeconds  *int `json:"connectTimeoutSeconds"`
	DelaySeconds           *int `json:"delaySeconds"`
}

const fleetRequestFields = "query, deviceIds, waves (size, percent, devicesPerMinute, growthFactor), abort (maxFailedPercent, minDevices), responseTimeoutSeconds, connectTimeoutSeconds and delaySeconds"

// fleetSpec is a validated fleet reboot request.
type fleetSpec struct {
	// condition is the selection as a twin query condition; "" selects
	// every device.
	condition   string
	byDeviceIDs int
	waves       rollout.Waves
	abort       *rollout.Abort
	method      rebootParams
}

// parseFleetRequest reads and validates POST /api/reboots's body.
func parseFleetRequest(w http.ResponseWriter, r *http.Request) (fleetSpec, *problem) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			p := badRequest(codeBodyTooLarge, fmt.Sprintf("The request body exceeds %d bytes.", maxRequestBody))
			return fleetSpec{}, &p
		}
		p := badRequest(codeMalformedJSON, "The request body could not be read.")
		return fleetSpec{}, &p
	}
	if len(bytes.TrimSpace(body)) == 0 {
		p := badRequest(codeMalformedJSON, "The request body must be a JSON object with a query or deviceIds.")
		return fleetSpec{}, &p
	}
	var req fleetRequestJSON
	if p := decodeStrict(body, &req, fleetRequestFields); p != nil {
		return fleetSpec{}, p
	}
	return req.validate()
}

func (req fleetRequestJSON) validate() (fleetSpec, *problem) {
	bad := func(format string, args ...any) (fleetSpec, *problem) {
		p := badRequest(codeInvalidArgument, fmt.Sprintf(format, args...))
		return fleetSpec{}, &p
	}
	var spec fleetSpec
	switch {
	case req.Query != nil && req.DeviceIDs != nil:
		return bad("Select devices with either query or deviceIds, not both.")
	case req.Query == nil && req.DeviceIDs == nil:
		return bad("Select devices with query (a twin query condition such as \"tags.site = 'plant-7'\", or \"*\" for every device) or deviceIds.")
	case req.Query != nil:
		q := strings.TrimSpace(*req.Query)
		if q != "*" {
			if fromOrSelect.MatchString(q) {
				return bad("query is the condition of a twin query, without SELECT or FROM: for example tags.site = 'plant-7'.")
			}
			if err := rollout.CheckCondition(q); err != nil {
				return bad("query is not one self-contained condition: %v.", err)
			}
			spec.condition = q
		}
	default:
		if len(req.DeviceIDs) == 0 || len(req.DeviceIDs) > maxFleetDeviceIDs {
			return bad("deviceIds must list 1 to %d devices; select more with a query on a tag.", maxFleetDeviceIDs)
		}
		seen := make(map[string]bool, len(req.DeviceIDs))
		for _, id := range req.DeviceIDs {
			if err := validateDeviceID(id); err != nil {
				p := badRequest(codeInvalidDeviceID, fmt.Sprintf("deviceIds: %v.", err))
				return fleetSpec{}, &p
			}
			if seen[id] {
				return bad("deviceIds lists %q twice.", id)
			}
			seen[id] = true
		}
		spec.condition = "deviceId IN " + literalList(req.DeviceIDs)
		spec.byDeviceIDs = len(req.DeviceIDs)
		if len(spec.condition) > rollout.MaxCondition {
			return bad("deviceIds make a query condition of %d characters, above %d; select the devices with a query on a tag.", len(spec.condition), rollout.MaxCondition)
		}
	}

	spec.waves = rollout.Waves{Size: maxWaveSize} // no waves given: one wave
	if wv := req.Waves; wv != nil {
		set := 0
		for _, v := range []*int{wv.Size, wv.Percent, wv.DevicesPerMinute} {
			if v != nil {
				set++
			}
		}
		if set != 1 {
			return bad("waves takes one of size, percent or devicesPerMinute.")
		}
		switch {
		case wv.Size != nil && (*wv.Size < 1 || *wv.Size > maxWaveSize):
			return bad("waves.size must be within 1..%d.", maxWaveSize)
		case wv.Percent != nil && (*wv.Percent < 1 || *wv.Percent > 100):
			return bad("waves.percent must be within 1..100.")
		case wv.DevicesPerMinute != nil && (*wv.DevicesPerMinute < 1 || *wv.DevicesPerMinute > rollout.MaxDevicesPerMinute):
			return bad("waves.devicesPerMinute must be within 1..%d.", rollout.MaxDevicesPerMinute)
		case wv.GrowthFactor != nil && (*wv.GrowthFactor < rollout.MinGrowthFactor || *wv.GrowthFactor > rollout.MaxGrowthFactor):
			return bad("waves.growthFactor must be within %g..%g.", rollout.MinGrowthFactor, float64(rollout.MaxGrowthFactor))
		}
		spec.waves = rollout.Waves{Size: deref(wv.Size), Percent: deref(wv.Percent), DevicesPerMinute: deref(wv.DevicesPerMinute)}
		if wv.GrowthFactor != nil {
			spec.waves.GrowthFactor = *wv.GrowthFactor
		}
	}

	if a := req.Abort; a != nil {
		switch {
		case a.MaxFailedPercent == nil:
			return bad("abort.maxFailedPercent is required: the share of devices with an outcome that may fail, 0..100.")
		case *a.MaxFailedPercent < 0 || *a.MaxFailedPercent > 100:
			return bad("abort.maxFailedPercent must be within 0..100.")
		case a.MinDevices != nil && (*a.MinDevices < 1 || *a.MinDevices > maxMinDevices):
			return bad("abort.minDevices must be within 1..%d.", maxMinDevices)
		}
		spec.abort = &rollout.Abort{MaxFailedPercent: *a.MaxFailedPercent, MinDevices: 1}
		if a.MinDevices != nil {
			spec.abort.MinDevices = *a.MinDevices
		}
	}

	method, p := rebootRequest{
		ResponseTimeoutSeconds: req.ResponseTimeoutSeconds,
		ConnectTimeoutSeconds:  req.ConnectTimeoutSeconds,
		DelaySeconds:           req.DelaySeconds,
	}.validate()
	if p != nil {
		return fleetSpec{}, p
	}
	spec.method = method
	return spec, nil
}

var fromOrSelect = regexp.MustCompile(`(?i)^\s*(select|from)\b`)

func deref(v *int) int {
	if v == nil {
		return 0
	}
	return *v
}

// fleetIDNamespace is the UUID namespace of key-derived fleet ids.
var fleetIDNamespace = [16]byte{0x8b, 0x52, 0x0e, 0x61, 0x3f, 0xd4, 0x4a, 0x17, 0x9c, 0x2e, 0x55, 0x10, 0xa7, 0x6d, 0xe3, 0x09}

// fleetIDForKey derives a fleet reboot's id from an Idempotency-Key (a
// name-based UUID), so every retry of the request names the same one.
func fleetIDForKey(key string) string { return nameUUID(fleetIDNamespace, key) }

var fleetIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// validFleetID reports whether id is one the app could have made.
func validFleetID(id string) bool { return fleetIDPattern.MatchString(id) }

// fleetStatusURL is the status URL of a fleet reboot, with the caller's
// own ?code= function key (see statusURL).
func fleetStatusURL(r *http.Request, id string) string {
	u := publicBaseURL(r) + routePrefix + "/reboots/" + id
	if code := r.URL.Query().Get("code"); code != "" {
		u += "?code=" + url.QueryEscape(code)
	}
	return u
}

// methodPayload is what each device of a wave receives: the fleet
// reboot's id is the request id the device echoes in its twin.
func (rec *fleetRecord) methodPayload() []byte {
	b, _ := json.Marshal(rebootPayload{RequestID: rec.ID, DelaySeconds: rec.DelaySeconds})
	return b
}

// fleetRecord is the record with the twin it lives in.
type fleetRecord struct {
	rollout.Record
	// HeadID and ETag are the head device and its twin's etag, for
	// conditional updates.
	HeadID string
	ETag   string
}

// recordTime renders a time for the record.
func recordTime(t time.Time) string { return t.UTC().Format(rollout.TimeLayout) }
