package rest

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
)

// Times go out in UTC with a trailing Z whatever zone they carry (the Go
// SDK rejects offsets), never-happened times as 0001-01-01T00:00:00Z, and
// parentScopes as [] rather than null, as IoT Hub sends them.
func TestWireTimesAreUTC(t *testing.T) {
	zone := time.FixedZone("X", -5*3600)
	b, err := json.Marshal(toDeviceJSON(registry.Device{StatusUpdatedTime: time.Date(2024, 1, 2, 3, 4, 5, 600, zone)}))
	require.NoError(t, err)
	require.Contains(t, string(b), `"statusUpdatedTime":"2024-01-02T08:04:05.0000006Z"`)
	require.Contains(t, string(b), `"lastActivityTime":"0001-01-01T00:00:00Z"`)
	require.Contains(t, string(b), `"parentScopes":[]`)

	b, err = json.Marshal(toTwinJSON(registry.Twin{LastActivityTime: time.Date(2024, 1, 2, 3, 4, 5, 0, zone)}))
	require.NoError(t, err)
	require.Contains(t, string(b), `"lastActivityTime":"2024-01-02T08:04:05Z"`)
	require.Contains(t, string(b), `"statusUpdateTime":"0001-01-01T00:00:00Z"`)
	require.NotContains(t, string(b), `"tags"`, "a twin without tags has no tags member")
}

func TestAPIVersionsAreSorted(t *testing.T) {
	// supportedAPIVersion searches the list by bisection.
	for i := 1; i < len(apiVersions); i++ {
		require.Less(t, apiVersions[i-1], apiVersions[i])
	}
}

// FuzzSupportedAPIVersion: exactly the listed versions are served, compared
// as sent.
func FuzzSupportedAPIVersion(f *testing.F) {
	for _, v := range []string{"2021-04-12", "2021-04-12 ", "1999-01-01", "2025-08-01-PREVIEW", ""} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		listed := false
		for _, a := range apiVersions {
			listed = listed || a == v
		}
		if got := supportedAPIVersion(v); got != listed {
			t.Fatalf("supportedAPIVersion(%q) = %v, listed = %v", v, got, listed)
		}
	})
}

// FuzzMaxItemCount: any header value yields a page size the hub can use.
func FuzzMaxItemCount(f *testing.F) {
	for _, v := range []string{"", "0", "-1", "1", "100", "1000", "ten", " 7 ", "1e3", "99999999999999999999"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n := maxItemCount(v)
		if n < 1 || n > maxPageItems {
			t.Fatalf("maxItemCount(%q) = %d, want 1..%d", v, n, maxPageItems)
		}
		if want, err := strconv.Atoi(v); err == nil && want >= 1 && want <= maxPageItems && n != want {
			t.Fatalf("maxItemCount(%q) = %d, want the caller's %d", v, n, want)
		}
	})
}
