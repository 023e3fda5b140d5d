package rest

import "slices"

// apiVersions are the api-version values the hub serves: every version
// Microsoft's IoT Hub SDKs and tools have sent, from their sources'
// history (azure-iot-sdk-csharp ClientApiVersionHelper, azure-iot-sdk-node
// common/core endpoint.ts, azure-iot-sdk-c, azure-iot-sdk-java,
// azure-iot-explorer apiConstants.ts, amenzhinsky/iothub). IoT Hub answers
// any other value, and a missing one, with 400 InvalidProtocolVersion in
// the classic envelope: {"Message":"ErrorCode:InvalidProtocolVersion;BadRequest",...}
// (Azure/Industrial-IoT#708, Azure/azure-iot-sdks#828). The local hub
// speaks one dialect for all of them.
var apiVersions = []string{
	"2015-08-15-preview",
	"2016-02-03",
	"2016-09-30-preview",
	"2016-11-14",
	"2017-06-30",
	"2017-11-08-preview",
	"2018-03-01-preview",
	"2018-06-30",
	"2018-08-30-preview",
	"2018-10-20-preview",
	"2019-03-30",
	"2019-07-01-preview",
	"2019-10-01",
	"2020-03-13",
	"2020-05-31-preview",
	"2020-06-30-preview",
	"2020-09-30",
	"2021-04-12",
	"2022-03-31-preview",
	"2025-08-01-preview",
}

// supportedAPIVersion reports whether v is one of apiVersions. IoT Hub
// compares the value as sent: no trimming, no case folding.
func supportedAPIVersion(v string) bool {
	_, found := slices.BinarySearch(apiVersions, v)
	return found
}
