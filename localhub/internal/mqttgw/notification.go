package mqttgw

import "time"

// OperationTimestampLayout is how routed notifications spell
// operationTimestamp: UTC with seven fractional digits.
const OperationTimestampLayout = "2006-01-02T15:04:05.0000000Z"

// NotificationProperties returns the application properties IoT Hub puts on
// every routed notification (twin change, lifecycle, connection state;
// reference §4): hubName, deviceId, operationTimestamp,
// iothub-message-schema and opType.
func NotificationProperties(hubName, deviceID, schema, opType string, at time.Time) map[string]string {
	return map[string]string{
		"hubName":               hubName,
		"deviceId":              deviceID,
		"operationTimestamp":    at.UTC().Format(OperationTimestampLayout),
		"iothub-message-schema": schema,
		"opType":                opType,
	}
}
