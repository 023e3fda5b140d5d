package device

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRebootRequest(t *testing.T) {
	tests := []struct {
		payload string
		want    RebootRequest
		wantErr bool
	}{
		{``, RebootRequest{}, false},
		{"  \n", RebootRequest{}, false},
		{`null`, RebootRequest{}, false},
		{`{}`, RebootRequest{}, false},
		{`{"requestId":"r-1","delaySeconds":5}`, RebootRequest{RequestID: "r-1", Delay: 5 * time.Second}, false},
		{`{"requestId":null,"delaySeconds":null}`, RebootRequest{}, false},
		{`{"delaySeconds":0.25}`, RebootRequest{Delay: 250 * time.Millisecond}, false},
		{`{"delaySeconds":86400}`, RebootRequest{Delay: MaxDelay}, false},
		{`{"delaySeconds":86401}`, RebootRequest{}, true},
		{`{"delaySeconds":-0.5}`, RebootRequest{}, true},
		{`{"delaySeconds":1e400}`, RebootRequest{}, true},
		{`{"delaySeconds":true}`, RebootRequest{}, true},
		{`{"requestId":{}}`, RebootRequest{}, true},
		{`"reboot"`, RebootRequest{}, true},
		{`42`, RebootRequest{}, true},
		{`[]`, RebootRequest{}, true},
		{`{`, RebootRequest{}, true},
		{`{} {}`, RebootRequest{}, true},
	}
	for _, tt := range tests {
		got, err := ParseRebootRequest([]byte(tt.payload))
		if tt.wantErr {
			require.ErrorIs(t, err, ErrBadPayload, "ParseRebootRequest(%q)", tt.payload)
			continue
		}
		require.NoError(t, err, "ParseRebootRequest(%q)", tt.payload)
		require.Equal(t, tt.want, got, "ParseRebootRequest(%q)", tt.payload)
	}
}

// FuzzParseRebootRequest: any payload is either refused with ErrBadPayload
// or parsed into a request that survives a round trip through the wire
// form our function app sends.
func FuzzParseRebootRequest(f *testing.F) {
	for _, s := range []string{``, `null`, `{}`, `{"requestId":"r-1","delaySeconds":5}`, `{"delaySeconds":0.001}`, `"x"`, `[{"requestId":"a"}]`, `{"requestId":"\u00e9\ud83d\ude00"}`, `{"delaySeconds":1e-9}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := ParseRebootRequest(payload)
		if err != nil {
			if !errors.Is(err, ErrBadPayload) {
				t.Fatalf("ParseRebootRequest(%q) error %v is not ErrBadPayload", payload, err)
			}
			return
		}
		if req.Delay < 0 || req.Delay > MaxDelay {
			t.Fatalf("ParseRebootRequest(%q) delay %v out of range", payload, req.Delay)
		}
		wire, err := json.Marshal(map[string]any{"requestId": req.RequestID, "delaySeconds": req.Delay.Seconds()})
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRebootRequest(wire)
		if err != nil {
			t.Fatalf("ParseRebootRequest(%s) = %v after a round trip", wire, err)
		}
		if again.RequestID != req.RequestID || again.Delay != req.Delay {
			t.Fatalf("round trip of %q: %+v, then %+v", payload, req, again)
		}
	})
}

func TestRebootStatePatch(t *testing.T) {
	boot := time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))
	tests := []struct {
		state RebootState
		want  string
	}{
		{RebootState{LastReboot: boot, Status: StatusRunning},
			`{"iothubDM":{"reboot":{"lastReboot":"2025-03-01T11:30:45.123Z","status":"running","requestId":null,"reason":null}}}`},
		{RebootState{LastReboot: boot, Status: StatusRebooting, RequestID: "r-1"},
			`{"iothubDM":{"reboot":{"lastReboot":"2025-03-01T11:30:45.123Z","status":"rebooting","requestId":"r-1","reason":null}}}`},
		{RebootState{LastReboot: boot, Status: StatusFailed, RequestID: "r-1", Reason: "disk full"},
			`{"iothubDM":{"reboot":{"lastReboot":"2025-03-01T11:30:45.123Z","status":"failed","requestId":"r-1","reason":"disk full"}}}`},
	}
	for _, tt := range tests {
		require.JSONEq(t, tt.want, string(tt.state.Patch()))
	}
	last, err := time.Parse(time.RFC3339, "2025-03-01T11:30:45.123Z")
	require.NoError(t, err, "lastReboot is RFC 3339")
	require.True(t, last.Equal(boot.Truncate(time.Millisecond)))
}
