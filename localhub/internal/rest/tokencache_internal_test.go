package rest

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// policies is a policy set that changes under the cache, standing in for
// key regeneration and policy deletion, which IoT Hub does through its
// management plane and the local hub only between runs.
type policies struct {
	mu sync.Mutex
	m  map[string]registry.Policy
}

func (p *policies) get(name string) (registry.Policy, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[name]
	return v, ok
}

func (p *policies) set(v registry.Policy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[v.KeyName] = v
}

func (p *policies) remove(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, name)
}

const (
	keyA = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=" // base64 of 32 bytes
	keyB = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
	keyC = "Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M="
)

var cacheNow = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func newPolicies() *policies {
	return &policies{m: map[string]registry.Policy{
		"service": {KeyName: "service", PrimaryKey: keyA, SecondaryKey: keyB, Rights: registry.ServiceConnect},
	}}
}

func mint(t *testing.T, resource, policy, key string, expiry time.Time) string {
	t.Helper()
	tok, err := sas.New(resource, policy, key, expiry)
	require.NoError(t, err)
	return tok
}

// cached reports whether header would be answered from the cache.
func cached(c *tokenCache, header string, now time.Time, p *policies) bool {
	_, _, ok := c.lookup(sha256.Sum256([]byte(header)), now, p.get)
	return ok
}

func TestTokenCacheAnswersVerifiedTokens(t *testing.T) {
	c, p := newTokenCache(), newPolicies()
	for _, key := range []string{keyA, keyB} {
		header := mint(t, "hub.test", "service", key, cacheNow.Add(time.Hour))
		tok, pol, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		require.Equal(t, "hub.test", tok.Resource)
		require.Equal(t, registry.ServiceConnect, pol.Rights)
		require.True(t, cached(c, header, cacheNow, p), "a token that verified is cached")

		again, pol, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		require.Equal(t, tok, again)
		require.Equal(t, "service", pol.KeyName)
	}
	require.Equal(t, 2, c.len())
}

func TestTokenCacheStoresNoFailure(t *testing.T) {
	c, p := newTokenCache(), newPolicies()
	for name, header := range map[string]string{
		"wrong key":      mint(t, "hub.test", "service", keyC, cacheNow.Add(time.Hour)),
		"unknown policy": mint(t, "hub.test", "nosuch", keyA, cacheNow.Add(time.Hour)),
		"device token":   mint(t, "hub.test", "", keyA, cacheNow.Add(time.Hour)),
		"garbage":        "SharedAccessSignature sr=hub.test",
	} {
		_, _, err := c.verify(header, cacheNow, p.get)
		require.Error(t, err, name)
	}
	require.Zero(t, c.len())

	// An expired token verifies (the caller refuses it for its expiry)
	// but is not kept.
	expired := mint(t, "hub.test", "service", keyA, cacheNow.Add(-sas.MaxClockSkew-time.Second))
	_, _, err := c.verify(expired, cacheNow, p.get)
	require.NoError(t, err)
	require.Zero(t, c.len())
}

// Each invalidation case: the token was cached, something changed, and
// the token no longer authenticates. Without the check each case names,
// the cached entry would still answer.
func TestTokenCacheInvalidation(t *testing.T) {
	expiry := cacheNow.Add(time.Hour)

	t.Run("a different signature is verified, not found", func(t *testing.T) {
		c, p := newTokenCache(), newPolicies()
		good := mint(t, "hub.test", "service", keyA, expiry)
		_, _, err := c.verify(good, cacheNow, p.get)
		require.NoError(t, err)
		// Same sr, se and skn; the signature of another key.
		forged := mint(t, "hub.test", "service", keyC, expiry)
		require.Equal(t, stripSig(good), stripSig(forged))
		_, _, err = c.verify(forged, cacheNow, p.get)
		require.ErrorContains(t, err, "signature does not match")
	})

	t.Run("the policy's key is regenerated", func(t *testing.T) {
		c, p := newTokenCache(), newPolicies()
		header := mint(t, "hub.test", "service", keyA, expiry)
		_, _, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		p.set(registry.Policy{KeyName: "service", PrimaryKey: keyC, SecondaryKey: keyB, Rights: registry.ServiceConnect})
		_, _, err = c.verify(header, cacheNow, p.get)
		require.ErrorContains(t, err, "signature does not match")
		require.False(t, cached(c, header, cacheNow, p))
		require.Zero(t, c.len(), "the stale entry is dropped")
	})

	t.Run("keys swapped: a token signed with either key still verifies", func(t *testing.T) {
		c, p := newTokenCache(), newPolicies()
		header := mint(t, "hub.test", "service", keyA, expiry)
		_, _, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		p.set(registry.Policy{KeyName: "service", PrimaryKey: keyB, SecondaryKey: keyA, Rights: registry.ServiceConnect})
		_, _, err = c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		require.True(t, cached(c, header, cacheNow, p))
	})

	t.Run("the policy is deleted", func(t *testing.T) {
		c, p := newTokenCache(), newPolicies()
		header := mint(t, "hub.test", "service", keyA, expiry)
		_, _, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		p.remove("service")
		_, _, err = c.verify(header, cacheNow, p.get)
		require.ErrorContains(t, err, `no shared access policy "service"`)
	})

	t.Run("the policy's rights change", func(t *testing.T) {
		c, p := newTokenCache(), newPolicies()
		header := mint(t, "hub.test", "service", keyA, expiry)
		_, _, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		p.set(registry.Policy{KeyName: "service", PrimaryKey: keyA, SecondaryKey: keyB, Rights: registry.RegistryRead})
		_, pol, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		require.Equal(t, registry.RegistryRead, pol.Rights, "rights are the policy's now, not the cached ones")
	})

	t.Run("the entry ends at expiry plus the allowed skew", func(t *testing.T) {
		c, p := newTokenCache(), newPolicies()
		header := mint(t, "hub.test", "service", keyA, expiry)
		_, _, err := c.verify(header, cacheNow, p.get)
		require.NoError(t, err)
		end := expiry.Add(sas.MaxClockSkew)
		require.True(t, cached(c, header, end, p), "still valid at the last instant the hub allows")
		require.False(t, cached(c, header, end.Add(time.Second), p))
		require.Zero(t, c.len(), "the expired entry is dropped when it is looked up")
	})
}

// stripSig is the token without its sig field.
func stripSig(header string) string {
	var kept []string
	for f := range strings.SplitSeq(strings.TrimPrefix(header, "SharedAccessSignature "), "&") {
		if !strings.HasPrefix(f, "sig=") {
			kept = append(kept, f)
		}
	}
	return strings.Join(kept, "&")
}

func TestTokenCacheIsBounded(t *testing.T) {
	c, p := newTokenCache(), newPolicies()

	// Expired entries go when a token is added, looked up or not.
	short := mint(t, "hub.test", "service", keyA, cacheNow.Add(time.Minute))
	_, _, err := c.verify(short, cacheNow, p.get)
	require.NoError(t, err)
	later := cacheNow.Add(time.Minute + sas.MaxClockSkew + time.Second)
	_, _, err = c.verify(mint(t, "hub.test", "service", keyA, later.Add(time.Hour)), later, p.get)
	require.NoError(t, err)
	require.Equal(t, 1, c.len(), "the expired entry was swept")

	// Count: one entry per distinct token, never more than the bound.
	for i := range maxCachedTokens + 10 {
		header := mint(t, fmt.Sprintf("hub.test/devices/d%d", i), "service", keyA, later.Add(time.Hour))
		_, _, err := c.verify(header, later, p.get)
		require.NoError(t, err)
	}
	require.Equal(t, maxCachedTokens, c.len())

	// Size: a token longer than the bound verifies every time.
	c = newTokenCache()
	long := mint(t, "hub.test/"+strings.Repeat("a", maxCachedTokenBytes), "service", keyA, cacheNow.Add(time.Hour))
	require.Greater(t, len(long), maxCachedTokenBytes)
	_, _, err = c.verify(long, cacheNow, p.get)
	require.NoError(t, err)
	require.Zero(t, c.len())
}

func TestTokenCacheConcurrentUse(t *testing.T) {
	c, p := newTokenCache(), newPolicies()
	headers := make([]string, 8)
	for i := range headers {
		headers[i] = mint(t, fmt.Sprintf("hub.test/devices/d%d", i), "service", keyA, cacheNow.Add(time.Hour))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				if g == 0 && i%50 == 0 {
					p.set(registry.Policy{KeyName: "service", PrimaryKey: keyA, SecondaryKey: keyB, Rights: registry.ServiceConnect})
				}
				_, _, err := c.verify(headers[(g+i)%len(headers)], cacheNow, p.get)
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	require.Equal(t, len(headers), c.len())
}

// BenchmarkTokenVerify compares a token found in the cache with what every
// request cost before the cache (parse, then HMAC with the policy's key),
// measured in the same run.
func BenchmarkTokenVerify(b *testing.B) {
	p := newPolicies()
	tok, err := sas.New("myhub.azure-devices.net", "service", keyB, cacheNow.Add(time.Hour))
	require.NoError(b, err)
	b.Run("cached", func(b *testing.B) {
		c := newTokenCache()
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := c.verify(tok, cacheNow, p.get); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse and verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			t, err := sas.Parse(tok)
			if err != nil {
				b.Fatal(err)
			}
			pol, _ := p.get(t.KeyName)
			if _, ok := verifyingKey(t, pol.PrimaryKey, pol.SecondaryKey); !ok {
				b.Fatal("no key verifies")
			}
		}
	})
}
