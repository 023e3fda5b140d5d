package rest

import (
	"net/http"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// addRoutes is the whole service API surface. Each route names the
// operation (for logs and authorization messages) and the shared access
// right it needs (reference §1.4).
func addRoutes(mux *http.ServeMux, d Deps, t Timeouts) {
	l := newLimits(d.Quotas, d.Now)
	route := func(pattern, op string, need registry.Rights, m meter, h http.Handler) {
		form := classic
		if m == directMethods {
			form = nested
		}
		h = throttle(d, l, m, form)(h)
		write := t.Write
		if m == directMethods {
			write = methodWriteDeadline(t)
		}
		mux.Handle(pattern, withResponseDeadline(write)(withRequest(d, op, need, h)))
	}

	// Identity registry. Node lists devices with a trailing slash.
	route("GET /devices", "ListDevices", registry.RegistryRead, registryOps, handleListDevices(d))
	route("GET /devices/{$}", "ListDevices", registry.RegistryRead, registryOps, handleListDevices(d))
	route("GET /devices/{id}", "GetDevice", registry.RegistryRead, registryOps, handleGetDevice(d))
	route("PUT /devices/{id}", "PutDevice", registry.RegistryWrite, registryOps, handlePutDevice(d))
	route("DELETE /devices/{id}", "DeleteDevice", registry.RegistryWrite, registryOps, handleDeleteDevice(d))
	route("GET /statistics/devices", "GetDeviceStatistics", registry.RegistryRead, unmetered, handleDeviceStatistics(d))

	// Twins, queries and direct methods are service operations.
	route("GET /twins/{id}", "GetTwin", registry.ServiceConnect, twinReads, handleGetTwin(d))
	route("PATCH /twins/{id}", "UpdateTwin", registry.ServiceConnect, twinUpdates, handleUpdateTwin(d, patchTwin))
	route("PUT /twins/{id}", "ReplaceTwin", registry.ServiceConnect, twinUpdates, handleUpdateTwin(d, replaceTwin))
	route("POST /twins/{id}/methods", "InvokeDeviceMethod", registry.ServiceConnect, directMethods, handleInvokeMethod(d))
	route("POST /devices/query", "QueryTwins", registry.ServiceConnect, queries, handleQuery(d))
	route("GET /statistics/service", "GetServiceStatistics", registry.ServiceConnect, unmetered, handleServiceStatistics(d))

	// Scheduled jobs need the registry rights, not ServiceConnect: "your
	// service needs the registry read and registry write permissions"
	// (iot-hub-howto-schedule-jobs-shared-access-policy-text). Reading and
	// listing jobs reads; creating and cancelling writes.
	route("PUT /jobs/v2/{id}", "CreateJob", registry.RegistryWrite, jobOps, withJobs(d, handleCreateJob(d)))
	route("GET /jobs/v2/{id}", "GetJob", registry.RegistryRead, jobOps, withJobs(d, handleGetJob(d)))
	route("POST /jobs/v2/{id}/cancel", "CancelJob", registry.RegistryWrite, jobOps, withJobs(d, handleCancelJob(d)))
	route("GET /jobs/v2/query", "QueryJobs", registry.RegistryRead, jobOps, withJobs(d, handleQueryJobs(d)))

	// Anything else: IoT Hub's JSON envelope, not ServeMux's plain text.
	route("/", "Unknown", 0, unmetered, handleNoRoute(d, mux))
}

// withRequest is the middleware every route runs: request logging, then
// authentication and authorization, then the api-version check, then the
// route's own (throttling).
func withRequest(d Deps, op string, need registry.Rights, h http.Handler) http.Handler {
	h = requireAPIVersion(d)(h)
	h = authorize(d, op, need)(h)
	return logRequest(d, op)(h)
}

// withJobs answers 503 when the hub runs no job engine.
func withJobs(d Deps, h http.Handler) http.Handler {
	if d.Jobs != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, d.Now(), classic, errServiceUnavailable("This hub does not run jobs."))
	})
}
