package rest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// Bounds of the verified-token cache: at most maxCachedTokens entries of
// tokens up to maxCachedTokenBytes long, about 3 MB at worst. Longer
// tokens are verified on every request, as before.
const (
	maxCachedTokens     = 1024
	maxCachedTokenBytes = 1024
)

// tokenCache remembers the policy SAS tokens whose signature verified, so
// that a client sending the same token on every request (the SDKs mint one
// an hour) costs one HMAC per token, not one per request.
//
// An entry is found by the SHA-256 of the Authorization header as sent, so
// only that exact token, signature included, finds it, and comparing the
// digest reveals nothing about a signature. An entry answers only while
// the token would verify again: its policy still exists and still holds
// the key the signature verified with (a regenerated or deleted key, or a
// deleted policy, ends it at once), and the token has not expired (expiry
// plus sas.MaxClockSkew). Rights are read from the policy on every
// request. Only tokens that verified are stored, so a caller without a
// key cannot fill the cache. The audience depends on the request's host
// and path, so the caller checks it on every request.
//
// Device tokens never reach it: the service API refuses tokens without
// skn before any signature is checked.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]verifiedToken
}

// verifiedToken is a token whose signature verified with key, the base64
// text of one of its policy's keys.
type verifiedToken struct {
	tok sas.Token
	key string
}

func newTokenCache() *tokenCache {
	return &tokenCache{entries: make(map[[sha256.Size]byte]verifiedToken)}
}

// verify returns the parsed token and its policy, as looked up by policy,
// if the token's signature verifies with one of the policy's keys: from
// the cache when this exact token verified before with a key the policy
// still holds, otherwise by parsing and checking the signature. It does
// not check expiry or audience; tokens past their expiry are not cached.
func (c *tokenCache) verify(header string, now time.Time, policy func(name string) (registry.Policy, bool)) (sas.Token, registry.Policy, error) {
	cacheable := len(header) <= maxCachedTokenBytes
	var sum [sha256.Size]byte
	if cacheable {
		var buf [maxCachedTokenBytes]byte // hashes the header without a copy on the heap
		sum = sha256.Sum256(buf[:copy(buf[:], header)])
		if tok, p, ok := c.lookup(sum, now, policy); ok {
			return tok, p, nil
		}
	}

	tok, err := sas.Parse(header)
	if err != nil {
		return sas.Token{}, registry.Policy{}, fmt.Errorf("parse token: %w", err)
	}
	if tok.KeyName == "" {
		return sas.Token{}, registry.Policy{}, errors.New("token has no skn: device tokens cannot call service APIs")
	}
	p, ok := policy(tok.KeyName)
	if !ok {
		return sas.Token{}, registry.Policy{}, fmt.Errorf("no shared access policy %q", tok.KeyName)
	}
	key, ok := verifyingKey(tok, p.PrimaryKey, p.SecondaryKey)
	if !ok {
		return sas.Token{}, registry.Policy{}, fmt.Errorf("signature does not match the keys of policy %q", p.KeyName)
	}
	if cacheable && !tok.Expired(now) {
		c.add(sum, header, key, now)
	}
	return tok, p, nil
}

// lookup finds a token that verified before and would verify now.
func (c *tokenCache) lookup(sum [sha256.Size]byte, now time.Time, policy func(string) (registry.Policy, bool)) (sas.Token, registry.Policy, bool) {
	c.mu.RLock()
	e, ok := c.entries[sum]
	c.mu.RUnlock()
	if !ok {
		return sas.Token{}, registry.Policy{}, false
	}
	p, ok := policy(e.tok.KeyName)
	if ok && (p.PrimaryKey == e.key || p.SecondaryKey == e.key) && !e.tok.Expired(now) {
		return e.tok, p, true
	}
	c.mu.Lock()
	if cur, ok := c.entries[sum]; ok && cur == e {
		delete(c.entries, sum)
	}
	c.mu.Unlock()
	return sas.Token{}, registry.Policy{}, false
}

// add stores a verified token, parsed again from a copy of the header so
// that the entry holds no memory of the request. Expired entries go first;
// when the cache is still full, an arbitrary entry makes room.
func (c *tokenCache) add(sum [sha256.Size]byte, header, key string, now time.Time) {
	tok, err := sas.Parse(strings.Clone(header))
	if err != nil {
		return // cannot happen: the header parsed a moment ago
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s, e := range c.entries {
		if e.tok.Expired(now) {
			delete(c.entries, s)
		}
	}
	if len(c.entries) >= maxCachedTokens {
		for s := range c.entries {
			delete(c.entries, s)
			break
		}
	}
	c.entries[sum] = verifiedToken{tok: tok, key: key}
}

// len is the number of entries, for tests.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
