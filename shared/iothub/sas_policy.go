package iothub

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/iothub-reboot/devmgmt/shared/sas"
)

const (
	// sasLifetime matches the Go and Node SDKs: one hour per token.
	sasLifetime = time.Hour
	// sasRenewBefore re-mints a token this long before it expires, so a
	// request (or a slow direct method) never carries a token that lapses
	// on the way.
	sasRenewBefore = 5 * time.Minute
)

// sasPolicy signs every request with a shared access policy token
// "SharedAccessSignature sr=<host>&sig=..&se=..&skn=<policy>". It sits in
// PerRetry so every retry is checked against the cached token's expiry.
type sasPolicy struct {
	hostname string
	keyName  string
	key      string
	now      func() time.Time

	mu     sync.Mutex
	token  string
	expiry time.Time
}

func newSASPolicy(hostname, keyName, key string, now func() time.Time) *sasPolicy {
	if now == nil {
		now = time.Now
	}
	return &sasPolicy{hostname: hostname, keyName: keyName, key: key, now: now}
}

// Do implements policy.Policy.
func (p *sasPolicy) Do(req *policy.Request) (*http.Response, error) {
	// Like azcore's credential policies: a token sent in clear text can be
	// replayed for up to an hour, so refuse before minting one.
	if !strings.EqualFold(req.Raw().URL.Scheme, "https") {
		return nil, nonRetriable(errors.New("iothub: refusing to send a shared access signature over a non-TLS (https) endpoint"))
	}
	token, err := p.currentToken()
	if err != nil {
		return nil, nonRetriable(err)
	}
	req.Raw().Header.Set("Authorization", token)
	return req.Next()
}

// currentToken returns the cached token, minting a new one when it is
// within sasRenewBefore of its expiry.
func (p *sasPolicy) currentToken() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.token != "" && now.Before(p.expiry.Add(-sasRenewBefore)) {
		return p.token, nil
	}
	// se has one-second resolution; truncating keeps expiry equal to it.
	expiry := now.Add(sasLifetime).Truncate(time.Second)
	token, err := sas.New(p.hostname, p.keyName, p.key, expiry)
	if err != nil {
		// sas errors name what is wrong, never key material.
		return "", fmt.Errorf("iothub: signing request: %w", err)
	}
	p.token, p.expiry = token, expiry
	return token, nil
}

// nonRetriableError tells azcore's retry policy not to retry: the same
// request would fail the same way. It satisfies the errorinfo.NonRetriable
// interface azcore checks with errors.As.
type nonRetriableError struct{ error }

func (e *nonRetriableError) NonRetriable() {}
func (e *nonRetriableError) Unwrap() error { return e.error }

func nonRetriable(err error) error { return &nonRetriableError{err} }
