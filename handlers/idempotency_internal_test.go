package handlers

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRequestIDForKey(t *testing.T) {
	a := requestIDForKey("dev-1", "run-1")
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, a, "a version 5 UUID")
	require.Equal(t, a, requestIDForKey("dev-1", "run-1"))
	require.NotEqual(t, a, requestIDForKey("dev-2", "run-1"))
	require.NotEqual(t, a, requestIDForKey("dev-1", "run-2"))
	// The separator keeps (device, key) pairs apart.
	require.NotEqual(t, requestIDForKey("a", "bc"), requestIDForKey("ab", "c"))
}

// The claims a twin keeps stay bounded: expired ones and the oldest beyond
// maxClaims are deleted in the same patch that adds a new one.
func TestClaimPatchPrunes(t *testing.T) {
	now := time.Date(2025, 1, 31, 8, 0, 0, 0, time.UTC)
	claims := map[string]any{"garbage": 7, "expired": now.Add(-claimRetention - time.Second).Format(requestedAtLayout)}
	for i := range maxClaims {
		claims[fmt.Sprintf("r%02d", i)] = now.Add(-time.Duration(maxClaims-i) * time.Minute).Format(requestedAtLayout)
	}
	patch := claimPatch(map[string]any{claimTag: claims, "other": "kept"}, "new", now)
	require.Equal(t, map[string]any{claimTag: map[string]any{
		"new":     "2025-01-31T08:00:00.000Z",
		"garbage": nil,
		"expired": nil,
		"r00":     nil, // the oldest: maxClaims-1 remain beside the new one
	}}, patch)

	require.Equal(t, map[string]any{claimTag: map[string]any{"new": "2025-01-31T08:00:00.000Z"}}, claimPatch(nil, "new", now))
}

// FuzzParseIdempotencyKey: any header value is accepted as a key that
// keeps to the documented alphabet, or refused with a problem; never a
// panic, never an empty key.
func FuzzParseIdempotencyKey(f *testing.F) {
	for _, seed := range []string{"run-1", `"08585112233445566778899001122CU00"`, `""`, " padded ", `"a`, "a\"b", "\x00", strings.Repeat("k", 256)} {
		f.Add(seed)
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	f.Fuzz(func(t *testing.T, value string) {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set(headerIdempotencyKey, value)
		key, ok, p := parseIdempotencyKey(r)
		if !ok {
			t.Fatal("a header was sent")
		}
		if p != nil {
			if p.Status != http.StatusBadRequest || p.ErrorCode != codeInvalidArgument {
				t.Fatalf("problem %+v", p)
			}
			return
		}
		if key == "" || len(key) > maxIdempotencyKeyLength || strings.ContainsFunc(key, func(c rune) bool { return c < ' ' || c > '~' || c == '"' || c == '\\' }) {
			t.Fatalf("accepted key %q", key)
		}
		if id := requestIDForKey("dev-1", key); !uuid.MatchString(id) || validateRequestID(id) != nil {
			t.Fatalf("request id %q", id)
		}
	})
}
