package rest

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/iothub-reboot/devmgmt/localhub/internal/registry"
	"github.com/iothub-reboot/devmgmt/shared/sas"
)

// allRights is what a bearer token (the Entra ID stand-in) may do.
const allRights = registry.RegistryRead | registry.RegistryWrite | registry.ServiceConnect | registry.DeviceConnect

// caller is an authenticated principal: a shared access policy or the bearer.
type caller struct {
	name   string
	rights registry.Rights
}

// authorize authenticates the caller and checks it holds need for op. Every
// failure is 401 IotHubUnauthorizedAccess, as on IoT Hub; the reason is
// logged at Debug under "err" (never the token itself).
func authorize(d Deps, op string, need registry.Rights) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := authenticate(d, r)
			if err != nil {
				d.Logger.LogAttrs(r.Context(), slog.LevelDebug, "rest unauthorized",
					slog.String("op", op), slog.String("err", err.Error()))
				writeError(w, d.Now(), classic, errUnauthorized("Unauthorized"))
				return
			}
			if !c.rights.Has(need) {
				writeError(w, d.Now(), classic, errUnauthorized(
					fmt.Sprintf("Authorization rule '%s' does not allow access for '%s'", c.name, op)))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// authenticate identifies the caller from the Authorization header.
func authenticate(d Deps, r *http.Request) (caller, error) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		return caller{}, errors.New("no Authorization header")
	case strings.EqualFold(scheme, "Bearer"):
		return bearer(d, strings.TrimSpace(cred))
	case strings.EqualFold(scheme, "SharedAccessSignature"):
		return sharedAccess(d, r, h)
	default:
		return caller{}, fmt.Errorf("unsupported authorization scheme %q", scheme)
	}
}

func bearer(d Deps, token string) (caller, error) {
	if d.BearerToken == "" {
		return caller{}, errors.New("bearer tokens are not enabled")
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(d.BearerToken)) != 1 {
		return caller{}, errors.New("bearer token does not match")
	}
	return caller{name: "bearer", rights: allRights}, nil
}

// sharedAccess checks a policy SAS token the way IoT Hub does (reference
// §1.2): signature over sr as sent, primary then secondary key, 5 minutes
// of clock skew, and an audience that prefixes host + path. A token that
// verified before is found in d.tokens (see tokenCache).
func sharedAccess(d Deps, r *http.Request, header string) (caller, error) {
	now := d.Now()
	tok, p, err := d.tokens.verify(header, now, d.Registry.Policy)
	if err != nil {
		return caller{}, err
	}
	if tok.Expired(now) {
		return caller{}, fmt.Errorf("token expired at %s", tok.Expiry.UTC().Format("2006-01-02T15:04:05Z"))
	}
	if !authorizedFor(tok, d.Hostname, r) {
		return caller{}, fmt.Errorf("token audience %q does not cover this hub", tok.Resource)
	}
	return caller{name: p.KeyName, rights: p.Rights}, nil
}

// verifyingKey returns the first of keys (base64 text) the token's
// signature verifies with.
func verifyingKey(tok sas.Token, keys ...string) (string, bool) {
	for _, k := range keys {
		key, err := base64.StdEncoding.DecodeString(k)
		if err == nil && len(key) > 0 && tok.Verify(key) {
			return k, true
		}
	}
	return "", false
}

// authorizedFor reports whether the token's audience covers this request:
// the configured hub host name, or the host the client actually dialled
// (with and without port), since local clients often use 127.0.0.1:port,
// each followed by the path. The host name comes first: it is what SDKs
// sign.
func authorizedFor(tok sas.Token, hostname string, r *http.Request) bool {
	if tok.Authorizes(hostname + r.URL.Path) {
		return true
	}
	if r.Host == "" {
		return false
	}
	if tok.Authorizes(r.Host + r.URL.Path) {
		return true
	}
	h, _, err := net.SplitHostPort(r.Host)
	return err == nil && tok.Authorizes(h+r.URL.Path)
}
