// Package tlsca owns the local hub's TLS material: a private CA that users
// trust once, and a server certificate issued from it for every name the hub
// answers on. Both live in the data directory and survive restarts, so
// trusting the CA is a one-time step per data directory.
package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names inside the data directory.
const (
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// renewBefore is how long before expiry a certificate is replaced rather
// than reused, so a long-running hub never serves an expired certificate.
const renewBefore = 30 * 24 * time.Hour

// Bundle is the hub's TLS material.
type Bundle struct {
	CACertPEM  []byte          // the CA certificate users trust
	CAFile     string          // path of the CA PEM file in the data dir
	Pool       *x509.CertPool  // contains the CA
	ServerCert tls.Certificate // leaf + key, chain includes nothing else
}

// LoadOrCreate reuses dir/ca.pem+ca-key.pem and dir/server.pem+server-key.pem when present and
// valid; otherwise generates them (ECDSA P-256). The server cert covers localhost, 127.0.0.1, ::1
// and every name in hostnames (IPs as IP SANs); it is re-issued from the same CA when a requested
// name is missing or it expires within 30 days. Keys are written 0600, the directory 0700.
//
// An existing directory keeps its permissions. A CA that is missing,
// unreadable as PEM, mismatched with its key or within 30 days of expiry is
// replaced, and with it the server certificate.
func LoadOrCreate(dir string, hostnames []string) (*Bundle, error) {
	return loadOrCreate(dir, hostnames, time.Now())
}

// loadOrCreate is LoadOrCreate with the clock as a parameter, so expiry
// handling can be tested without waiting two years.
func loadOrCreate(dir string, hostnames []string, now time.Time) (*Bundle, error) {
	names, err := serverNames(hostnames)
	if err != nil {
		return nil, fmt.Errorf("tlsca: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsca: create data dir: %w", err)
	}
	ca, err := loadOrCreateCA(dir, now)
	if err != nil {
		return nil, fmt.Errorf("tlsca: CA: %w", err)
	}
	leaf, err := loadOrIssueLeaf(dir, ca, names, now)
	if err != nil {
		return nil, fmt.Errorf("tlsca: server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return &Bundle{
		CACertPEM: ca.certPEM,
		CAFile:    filepath.Join(dir, caCertFile),
		Pool:      pool,
		ServerCert: tls.Certificate{
			Certificate: [][]byte{leaf.cert.Raw},
			PrivateKey:  leaf.key,
			Leaf:        leaf.cert,
		},
	}, nil
}

// ServerTLSConfig returns a tls.Config for servers (TLS 1.2 minimum) using b.ServerCert.
// Each call returns a new Config, so callers may adjust it.
func (b *Bundle) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{b.ServerCert},
	}
}

// ClientTLSConfig returns a tls.Config trusting only the CA.
// Each call returns a new Config, so callers may set ServerName.
func (b *Bundle) ClientTLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    b.Pool,
	}
}

// errInvalid marks stored material that exists but cannot be reused.
var errInvalid = errors.New("invalid")

// replaceable reports whether a load error means "generate anew" rather than
// a failure to report (for example a permission error).
func replaceable(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errInvalid)
}
