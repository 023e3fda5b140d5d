// Package handlers is the function app's Azure Functions custom handler:
// plain net/http handlers for the HTTP functions (RebootDevice,
// RebootStatus, RebootReport, OpenAPI) and the Event Hubs invocation handler
// for TwinChangeProcessor, over the IoT Hub service client in shared/iothub.
//
// The host forwards HTTP requests unchanged to /api/... when host.json sets
// enableForwardingHttpRequest; with forwarding off it POSTs invocation
// envelopes to /<FunctionName> instead. Both are served, by the same
// handlers, so the app works under either setting (see routes.go).
//
// cmd/handler is the executable the host starts; it only calls [Run].
package handlers
