// Package conformance drives a local IoT Hub with other vendors' real,
// unmodified SDKs — Microsoft's Node.js IoT Hub SDKs (node/check.js, run by
// TestNodeSDKs) and JS Event Hubs client (node/eventhubs.js, run by
// TestNodeEventHubs) — to find where the hub differs from Azure IoT Hub.
// It has no code of its own: only the test and the SDK scripts.
package conformance
