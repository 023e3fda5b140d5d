package sas

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Token is a parsed "SharedAccessSignature sr=..&sig=..&se=..[&skn=..]".
type Token struct {
	// RawResource is the sr value exactly as sent (still URL-encoded as the
	// client encoded it). The signature is computed over this form.
	RawResource string
	// Resource is the URL-decoded sr: the audience prefix (host[/path]).
	Resource string
	// Signature is the URL-decoded sig (base64 text).
	Signature string
	// RawExpiry is se as sent; Expiry is its value.
	RawExpiry string
	Expiry    time.Time
	// KeyName is the URL-decoded skn, empty for device-key tokens.
	KeyName string
}

// Parse parses a SAS token as IoT Hub does (fields in any order, keys
// case-insensitive, sr kept as sent, sig/se/sr required, skn optional).
//
// Unknown fields are ignored, as the hub ignores them. An empty skn counts as
// absent: old amenzhinsky releases always append "&skn=".
func Parse(s string) (Token, error) {
	words := strings.Fields(s)
	if len(words) != 2 || words[0] != scheme {
		return Token{}, fmt.Errorf("%w: token must be %q, one space, then the fields", ErrMalformed, scheme)
	}
	raw, err := splitFields(words[1])
	if err != nil {
		return Token{}, err
	}
	return raw.decode()
}

// rawFields holds the known fields exactly as sent.
type rawFields struct {
	sr, sig, se, skn             string
	hasSR, hasSig, hasSE, hasSKN bool
}

// splitFields splits "k=v&k=v" without decoding anything, so that sr keeps
// the client's own encoding.
func splitFields(list string) (rawFields, error) {
	var f rawFields
	for field := range strings.SplitSeq(list, "&") {
		if field == "" {
			continue // tolerate "&&" and a trailing '&', as the hub does
		}
		key, value, ok := strings.Cut(field, "=")
		if !ok || key == "" {
			return rawFields{}, fmt.Errorf("%w: field %q is not key=value", ErrMalformed, truncate(key))
		}
		var dst *string
		var seen *bool
		switch {
		case strings.EqualFold(key, "sr"):
			dst, seen = &f.sr, &f.hasSR
		case strings.EqualFold(key, "sig"):
			dst, seen = &f.sig, &f.hasSig
		case strings.EqualFold(key, "se"):
			dst, seen = &f.se, &f.hasSE
		case strings.EqualFold(key, "skn"):
			dst, seen = &f.skn, &f.hasSKN
		default:
			continue
		}
		if *seen {
			return rawFields{}, fmt.Errorf("%w: duplicate field %q", ErrMalformed, strings.ToLower(key))
		}
		*dst, *seen = value, true
	}
	return f, nil
}

// decode validates the required fields and URL-decodes all but sr's raw form.
func (f rawFields) decode() (Token, error) {
	for _, req := range []struct {
		name  string
		value string
	}{{"sr", f.sr}, {"sig", f.sig}, {"se", f.se}} {
		if req.value == "" {
			return Token{}, fmt.Errorf("%w: missing or empty %s", ErrMalformed, req.name)
		}
	}
	resource, err := url.QueryUnescape(f.sr)
	if err != nil {
		return Token{}, fmt.Errorf("%w: sr: %w", ErrMalformed, err)
	}
	sig, err := url.QueryUnescape(f.sig)
	if err != nil {
		return Token{}, fmt.Errorf("%w: sig: %w", ErrMalformed, err)
	}
	keyName, err := url.QueryUnescape(f.skn)
	if err != nil {
		return Token{}, fmt.Errorf("%w: skn: %w", ErrMalformed, err)
	}
	expiry, err := parseExpiry(f.se)
	if err != nil {
		return Token{}, err
	}
	return Token{
		RawResource: f.sr,
		Resource:    resource,
		Signature:   sig,
		RawExpiry:   f.se,
		Expiry:      expiry,
		KeyName:     keyName,
	}, nil
}

// parseExpiry accepts only decimal unix seconds. Requiring plain digits means
// se as sent and se decoded are the same string, so it does not matter which
// of the two a client signed.
func parseExpiry(se string) (time.Time, error) {
	for i := 0; i < len(se); i++ {
		if se[i] < '0' || se[i] > '9' {
			return time.Time{}, fmt.Errorf("%w: se %q is not unix seconds", ErrMalformed, truncate(se))
		}
	}
	secs, err := strconv.ParseInt(se, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: se: %w", ErrMalformed, err)
	}
	return time.Unix(secs, 0).UTC(), nil
}

// Expired reports whether now is past Expiry + MaxClockSkew.
func (t Token) Expired(now time.Time) bool {
	return now.After(t.Expiry.Add(MaxClockSkew))
}

// Authorizes reports whether the token's audience covers target
// (host + path, e.g. "myhub.azure-devices.net/devices/d1"): a
// case-insensitive prefix match against Resource with trailing '/' trimmed.
//
// The prefix is matched by whole path segments ("The URI prefix is computed
// by segment and not by character"): an audience of hub/devices/d1 covers
// hub/devices/d1 and hub/devices/d1/modules/m but not hub/devices/d10.
// Case folding is ASCII-only, which is all host names and device IDs use,
// so that no Unicode folding rule can widen an audience.
func (t Token) Authorizes(target string) bool {
	audience := strings.TrimRight(t.Resource, "/")
	if audience == "" || len(target) < len(audience) {
		return false
	}
	if !asciiEqualFold(target[:len(audience)], audience) {
		return false
	}
	return len(target) == len(audience) || target[len(audience)] == '/'
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// truncate keeps error messages bounded when the input is garbage.
func truncate(s string) string {
	const limit = 32
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
