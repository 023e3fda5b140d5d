// Package funchost is a local stand-in for the Azure Functions host running
// a custom handler: what `func start` does for this repository's function
// app, without Core Tools or .NET. It reads host.json and every
// <function>/function.json of a script root, starts the handler executable
// the way the host does (environment, readiness check, restarts), serves
// the HTTP triggers on /{routePrefix}/{route} (forwarded as-is when
// customHandler.enableForwardingHttpRequest applies, else as the invocation
// envelope), runs every eventHubTrigger as the Event Hubs extension
// does: it reads the Event Hub its connection setting names over AMQP with
// azeventhubs (the local hub's built-in endpoint, or a real IoT Hub's: only
// the settings differ), delivers per-partition batches with the host's
// envelope and retry policy, checkpoints after every invocation, and runs every timerTrigger on its
// NCRONTAB or TimeSpan schedule (timer.go).
//
// The wire contract it follows is functions-custom-handler.md (§1-§3 and
// the stand-in checklist, §8); section numbers in comments refer to it.
// What it settled from the host's sources, and where it knowingly differs
// from Azure (no function keys, checkpoints in files rather than blobs,
// output bindings other than http ignored), is in docs/local-host.md and in
// log lines at start.
//
// Tests and cmd/localdev use it in-process:
//
//	h, err := funchost.Start(ctx, funchost.Options{
//		ScriptRoot:    "dist/local",
//		Settings:      map[string]string{"IOTHUB_EVENTHUB_CONNECTION": ehConnectionString /* … */},
//		CheckpointDir: ".localhub/azure-webjobs-eventhub",
//	})
//	defer h.Close()
//	resp, err := http.Post(h.URL()+"/api/devices/dev-1/reboot", "", nil)
package funchost
