// Package invocation holds the Azure Functions host's invocation envelope
// for custom handlers as Go types: the request the host POSTs to
// /<FunctionName> ({"Data":…,"Metadata":…}) and the response it expects
// ({"Outputs":…,"Logs":…,"ReturnValue":…}).
//
// The host's encoding has traps, absorbed here and nowhere else
// (functions-custom-handler.md §0.5, §2.1, §3.1, §3.2):
//   - string and primitive values are JSON-encoded a second time, so a
//     string trigger value arrives as a JSON string holding JSON;
//   - every *Array metadata field of a batch (cardinality many) arrives as a
//     string containing a JSON array;
//   - objects (SystemProperties, PartitionContext, sys) arrive as objects.
//
// Decoders accept both the double-encoded form the host sends and the plain
// form, so a faithful stand-in host and a future host that stops
// double-encoding both work.
package invocation
