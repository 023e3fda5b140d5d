package handlers

import "net/http"

const readinessPattern = "GET /{$}"

// addRoutes is the handler's whole surface.
//
// HTTP functions are served twice by the same handlers: on their public
// paths, which is what the host calls with enableForwardingHttpRequest (or
// enableProxyingHttpRequest), and on /<FunctionName>, where the host POSTs
// the invocation envelope when forwarding is off. TwinChangeProcessor (an
// Event Hubs function) and FleetRebootTimer (a timer) always get the
// envelope.
func addRoutes(mux *http.ServeMux, d Deps) {
	reboot := handleRebootDevice(d)
	status := handleRebootStatus(d)
	report := handleRebootReport(d)
	openapi := handleOpenAPI()
	fleetStart := handleFleetRebootStart(d)
	fleetStatus := handleFleetRebootStatus(d)
	fleetCancel := handleFleetRebootCancel(d)

	// The host's readiness check and health pings: any answer will do.
	mux.Handle(readinessPattern, handleReady())

	mux.Handle("POST "+routePrefix+"/devices/{deviceId}/reboot", reboot)
	mux.Handle("GET "+routePrefix+"/reboots/{deviceId}/{requestId}", status)
	mux.Handle("GET "+routePrefix+"/reboots", report)
	mux.Handle("GET "+routePrefix+"/openapi.json", openapi)
	// Fleet reboots share /reboots with the report and the one-device
	// status, apart by method and by number of segments: POST /reboots,
	// GET /reboots/{fleetId}, POST /reboots/{fleetId}/cancel.
	mux.Handle("POST "+routePrefix+"/reboots", fleetStart)
	mux.Handle("GET "+routePrefix+"/reboots/{fleetId}", fleetStatus)
	mux.Handle("POST "+routePrefix+"/reboots/{fleetId}/cancel", fleetCancel)

	mux.Handle("POST /RebootDevice", fromEnvelope(d, reboot))
	mux.Handle("POST /RebootStatus", fromEnvelope(d, status))
	mux.Handle("POST /RebootReport", fromEnvelope(d, report))
	mux.Handle("POST /OpenAPI", fromEnvelope(d, openapi))
	mux.Handle("POST /FleetRebootStart", fromEnvelope(d, fleetStart))
	mux.Handle("POST /FleetRebootStatus", fromEnvelope(d, fleetStatus))
	mux.Handle("POST /FleetRebootCancel", fromEnvelope(d, fleetCancel))

	// FleetRebootTimer is a timer function: always an envelope.
	mux.Handle("POST /FleetRebootTimer", handleFleetRebootTimer(d))

	mux.Handle("POST /TwinChangeProcessor", newTwinProcessor(d))

	mux.Handle("/", handleNotFound())
}

func handleReady() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

// handleNotFound replaces the mux's plain-text 404 with a problem. Only
// callers that reach the handler directly see it: under the Functions
// host, a method or path no function.json route matches gets the host's
// own empty 404.
func handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, problem{Status: http.StatusNotFound, ErrorCode: codeNotFound,
			Detail: "No function of this app serves " + r.Method + " on this path."})
	})
}
