package mqttgw

import (
	"os"
	"testing"
)

// TestMain doubles as the device fleet of BenchmarkMethodThroughput1000:
// the benchmark re-runs the test binary with fleetEnv set, so the fleet's
// paho clients live in another process and the benchmark's memory figures
// are the gateway's alone.
func TestMain(m *testing.M) {
	if os.Getenv(fleetEnv) != "" {
		os.Exit(runFleet())
	}
	os.Exit(m.Run())
}
