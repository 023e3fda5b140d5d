package tlsca

import (
	"fmt"
	"net"
	"strings"
)

// defaultNames are always covered: the ways a local client reaches the hub.
var defaultNames = []string{"localhost", "127.0.0.1", "::1"}

// sanSet is the set of names a server certificate must cover.
type sanSet struct {
	dns []string
	ips []net.IP
}

// all returns every name as a client would pass it for verification.
func (s sanSet) all() []string {
	names := append([]string(nil), s.dns...)
	for _, ip := range s.ips {
		names = append(names, ip.String())
	}
	return names
}

// serverNames validates and de-duplicates the requested names plus the
// defaults. Empty entries are skipped. DNS names are lower-cased and lose a
// trailing dot, so "MyHub.local." and "myhub.local" are one name.
func serverNames(hostnames []string) (sanSet, error) {
	var s sanSet
	seen := make(map[string]bool)
	for _, raw := range append(append([]string(nil), defaultNames...), hostnames...) {
		name := strings.TrimSpace(raw)
		if name == "" {
			continue
		}
		if ip := net.ParseIP(name); ip != nil {
			if key := ip.String(); !seen[key] {
				seen[key] = true
				s.ips = append(s.ips, ip)
			}
			continue
		}
		name = strings.TrimSuffix(strings.ToLower(name), ".")
		if err := validDNSName(name); err != nil {
			return sanSet{}, fmt.Errorf("hostname %q: %w", raw, err)
		}
		if !seen[name] {
			seen[name] = true
			s.dns = append(s.dns, name)
		}
	}
	return s, nil
}

// validDNSName accepts the host names clients put in URLs: dot-separated
// labels of letters, digits, '-' and '_'. Ports, paths, brackets, wildcards
// and zones are rejected here rather than producing a certificate no client
// would ever match.
func validDNSName(name string) error {
	if len(name) > 253 {
		return fmt.Errorf("longer than 253 characters")
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("empty or over-long label")
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q not allowed in a host name", c)
			}
		}
	}
	return nil
}
