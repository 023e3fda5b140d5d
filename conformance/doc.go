// Package conformance drives a local IoT Hub with other vendors' real,
// unmodified IoT Hub SDKs — Microsoft's Node.js SDKs today (node/check.js,
// run by TestNodeSDKs) — to find where the hub differs from Azure IoT Hub.
// It has no code of its own: only the test and the SDK scripts.
package conformance
