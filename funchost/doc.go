// Package funchost is a local stand-in for the Azure Functions host running
// a custom handler: what `func start` does for this repository's function
// app, without Core Tools or .NET. It reads host.json and every
// <function>/function.json of a script root, starts the handler executable
// the way the host does (environment, readiness check, restarts), serves
// the HTTP triggers on /{routePrefix}/{route} (forwarded as-is when
// customHandler.enableForwardingHttpRequest applies, else as the invocation
// envelope), feeds every eventHubTrigger from an EventSource, in process,
// with the host's batch envelope, retry policy and checkpointing, and runs
// every timerTrigger on its NCRONTAB or TimeSpan schedule (timer.go).
//
// The wire contract it follows is functions-custom-handler.md (§1-§3 and
// the stand-in checklist, §8); section numbers in comments refer to it.
// Where it knowingly differs from Azure (no function keys, in-memory
// checkpoints, output bindings other than http ignored), it says so in a
// log line at start or in the doc comment of the code concerned.
//
// Tests and cmd/localdev use it in-process:
//
//	h, err := funchost.Start(ctx, funchost.Options{ScriptRoot: "dist/local", Events: hub.Events()})
//	defer h.Close()
//	resp, err := http.Post(h.URL()+"/api/devices/dev-1/reboot", "", nil)
package funchost
