package handlers

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEnqueuedRFC3339(t *testing.T) {
	tests := map[string]string{
		"2025-01-31T08:00:05.123":       "2025-01-31T08:00:05.123Z",
		"2025-01-31T08:00:05":           "2025-01-31T08:00:05Z",
		"2025-01-31T08:00:05.1Z":        "2025-01-31T08:00:05.1Z",
		"2025-01-31T09:00:05.1+01:00":   "2025-01-31T09:00:05.1+01:00",
		"":                              "",
		"yesterday":                     "",
		"2025/01/31 08:00:05.123456789": "",
	}
	for in, want := range tests {
		require.Equal(t, want, enqueuedRFC3339(in), in)
	}
}
