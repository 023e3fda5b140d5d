package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadOrCreateReusesStoredMaterial(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")

	first, err := LoadOrCreate(dir, nil)
	require.NoError(t, err)
	second, err := LoadOrCreate(dir, nil)
	require.NoError(t, err)

	require.Equal(t, first.CACertPEM, second.CACertPEM)
	require.Equal(t, first.ServerCert.Certificate, second.ServerCert.Certificate, "leaf must not be re-issued")
	require.Equal(t, filepath.Join(dir, "ca.pem"), second.CAFile)
	onDisk, err := os.ReadFile(second.CAFile)
	require.NoError(t, err)
	require.Equal(t, second.CACertPEM, onDisk)
}

func TestCreatedCertificates(t *testing.T) {
	t.Parallel()
	now := time.Now()
	b, err := LoadOrCreate(filepath.Join(t.TempDir(), "tls"), []string{"myhub.local"})
	require.NoError(t, err)

	ca, err := parseCert(b.CACertPEM)
	require.NoError(t, err)
	require.True(t, ca.IsCA)
	require.NotZero(t, ca.KeyUsage&x509.KeyUsageCertSign)
	require.Regexp(t, `^localhub local CA [0-9a-f]{8}$`, ca.Subject.CommonName)
	require.WithinDuration(t, now.AddDate(10, 0, 0), ca.NotAfter, time.Minute)

	require.Len(t, b.ServerCert.Certificate, 1, "chain holds only the leaf")
	leaf := b.ServerCert.Leaf
	require.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, leaf.ExtKeyUsage)
	require.ElementsMatch(t, []string{"localhost", "myhub.local"}, leaf.DNSNames)
	require.Len(t, leaf.IPAddresses, 2)
	require.WithinDuration(t, now.AddDate(2, 0, 0), leaf.NotAfter, time.Minute)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: b.Pool, DNSName: "myhub.local"})
	require.NoError(t, err)
}

func TestTwoDataDirsHaveDistinctCAs(t *testing.T) {
	t.Parallel()
	a, err := LoadOrCreate(filepath.Join(t.TempDir(), "a"), nil)
	require.NoError(t, err)
	b, err := LoadOrCreate(filepath.Join(t.TempDir(), "b"), nil)
	require.NoError(t, err)

	caA, err := parseCert(a.CACertPEM)
	require.NoError(t, err)
	caB, err := parseCert(b.CACertPEM)
	require.NoError(t, err)
	require.NotEqual(t, caA.Subject.CommonName, caB.Subject.CommonName)

	_, err = a.ServerCert.Leaf.Verify(x509.VerifyOptions{Roots: b.Pool, DNSName: "localhost"})
	require.Error(t, err, "one hub's CA must not vouch for another's server")
}

func TestLeafReissuedForNewNameOnly(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	first, err := LoadOrCreate(dir, nil)
	require.NoError(t, err)

	tests := []struct {
		name      string
		hostnames []string
		reissue   bool
	}{
		{"new DNS name and IP", []string{"myhub.local", "10.1.2.3"}, true},
		{"same names in other case, order and form", []string{"10.1.2.3", "MyHub.Local.", ""}, false},
		{"a subset", []string{"myhub.local"}, false},
		{"another IPv6 address", []string{"fd00::1"}, true},
	}
	previous := first.ServerCert.Certificate[0]
	for _, tt := range tests { // sequential: each step builds on the stored state
		b, err := LoadOrCreate(dir, tt.hostnames)
		require.NoError(t, err, tt.name)
		require.Equal(t, first.CACertPEM, b.CACertPEM, "%s: CA must be kept", tt.name)
		if tt.reissue {
			require.NotEqual(t, previous, b.ServerCert.Certificate[0], "%s: leaf must be re-issued", tt.name)
		} else {
			require.Equal(t, previous, b.ServerCert.Certificate[0], "%s: leaf must be reused", tt.name)
		}
		for _, name := range append([]string{"localhost", "127.0.0.1", "::1"}, tt.hostnames...) {
			if name == "" {
				continue
			}
			require.NoError(t, b.ServerCert.Leaf.VerifyHostname(name), "%s: %s", tt.name, name)
		}
		previous = b.ServerCert.Certificate[0]
	}
}

func TestLeafRenewedWithin30DaysOfExpiry(t *testing.T) {
	t.Parallel()
	start := time.Now()
	leafExpiry := start.AddDate(2, 0, 0)
	tests := []struct {
		name    string
		now     time.Time
		reissue bool
	}{
		{"a year later", start.AddDate(1, 0, 0), false},
		{"31 days before expiry", leafExpiry.Add(-31 * 24 * time.Hour), false},
		{"29 days before expiry", leafExpiry.Add(-29 * 24 * time.Hour), true},
		{"after expiry", leafExpiry.Add(time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			first, err := loadOrCreate(dir, nil, start)
			require.NoError(t, err)

			later, err := loadOrCreate(dir, nil, tt.now)
			require.NoError(t, err)
			require.Equal(t, first.CACertPEM, later.CACertPEM, "CA must be kept")
			require.Equal(t, tt.reissue, !first.ServerCert.Leaf.Equal(later.ServerCert.Leaf))
			require.True(t, later.ServerCert.Leaf.NotAfter.After(tt.now.Add(renewBefore)))
		})
	}
}

func TestCARenewedNearExpiry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	start := time.Now()
	first, err := loadOrCreate(dir, nil, start)
	require.NoError(t, err)

	later, err := loadOrCreate(dir, nil, start.AddDate(10, 0, -10))
	require.NoError(t, err)
	require.NotEqual(t, first.CACertPEM, later.CACertPEM)
	_, err = later.ServerCert.Leaf.Verify(x509.VerifyOptions{Roots: later.Pool, CurrentTime: start.AddDate(10, 0, 0)})
	require.NoError(t, err, "the new leaf must chain to the new CA")
}

func TestUnusableFilesAreReplaced(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		keepsCA bool
		newLeaf bool
	}{
		{
			name:    "server certificate is garbage",
			damage:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, serverCertFile), "not a PEM") },
			keepsCA: true,
			newLeaf: true,
		},
		{
			name: "server key does not match",
			damage: func(t *testing.T, dir string) {
				key, err := os.ReadFile(filepath.Join(dir, caKeyFile))
				require.NoError(t, err)
				writeFile(t, filepath.Join(dir, serverKeyFile), string(key))
			},
			keepsCA: true,
			newLeaf: true,
		},
		{
			name:    "server key missing",
			damage:  func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, serverKeyFile))) },
			keepsCA: true,
			newLeaf: true,
		},
		{
			name: "CA certificate is truncated",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, caCertFile), "-----BEGIN CERTIFICATE-----\nMII")
			},
			keepsCA: false,
			newLeaf: true,
		},
		{
			name:    "CA key missing",
			damage:  func(t *testing.T, dir string) { require.NoError(t, os.Remove(filepath.Join(dir, caKeyFile))) },
			keepsCA: false,
			newLeaf: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			first, err := LoadOrCreate(dir, nil)
			require.NoError(t, err)
			tt.damage(t, dir)

			again, err := LoadOrCreate(dir, nil)
			require.NoError(t, err)
			require.Equal(t, tt.keepsCA, string(first.CACertPEM) == string(again.CACertPEM))
			require.Equal(t, tt.newLeaf, !first.ServerCert.Leaf.Equal(again.ServerCert.Leaf))
			_, err = again.ServerCert.Leaf.Verify(x509.VerifyOptions{Roots: again.Pool, DNSName: "localhost"})
			require.NoError(t, err)

			reloaded, err := LoadOrCreate(dir, nil)
			require.NoError(t, err)
			require.True(t, again.ServerCert.Leaf.Equal(reloaded.ServerCert.Leaf), "repaired files must be reused")
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

func TestFilePermissions(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "tls")
	_, err := LoadOrCreate(dir, nil)
	require.NoError(t, err)

	info, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), info.Mode().Perm(), "directory")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{caCertFile, caKeyFile, serverCertFile, serverKeyFile}, names, "no temporary files left behind")

	for file, want := range map[string]fs.FileMode{
		caKeyFile:      0o600,
		serverKeyFile:  0o600,
		caCertFile:     0o644,
		serverCertFile: 0o644,
	} {
		info, err := os.Stat(filepath.Join(dir, file))
		require.NoError(t, err)
		require.Equal(t, want, info.Mode().Perm(), file)
	}
}

func TestInvalidHostnames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"host:8883", "a/b", "[::1]", "*.local", "two words", "fe80::1%eth0", "a..b", "héllo"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "tls")
			_, err := LoadOrCreate(dir, []string{name})
			require.ErrorContains(t, err, "hostname")
			_, err = os.Stat(dir)
			require.ErrorIs(t, err, fs.ErrNotExist, "nothing is written for a bad request")
		})
	}
}

func TestHandshakeOverLoopback(t *testing.T) {
	t.Parallel()
	b, err := LoadOrCreate(t.TempDir(), []string{"myhub.local"})
	require.NoError(t, err)
	addr := serveTLS(t, b.ServerTLSConfig())

	tests := []struct {
		serverName string
		wantErr    bool
	}{
		{"localhost", false},
		{"127.0.0.1", false},
		{"::1", false},
		{"myhub.local", false},
		{"other.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.serverName, func(t *testing.T) {
			t.Parallel()
			cfg := b.ClientTLSConfig()
			cfg.ServerName = tt.serverName
			dialer := tls.Dialer{Config: cfg}
			conn, err := dialer.DialContext(t.Context(), "tcp", addr)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			defer conn.Close()
			state := conn.(*tls.Conn).ConnectionState()
			require.GreaterOrEqual(t, state.Version, uint16(tls.VersionTLS12))
			require.True(t, state.PeerCertificates[0].Equal(b.ServerCert.Leaf))
		})
	}
}

func TestServerRefusesTLS11(t *testing.T) {
	t.Parallel()
	b, err := LoadOrCreate(t.TempDir(), nil)
	require.NoError(t, err)
	addr := serveTLS(t, b.ServerTLSConfig())

	cfg := b.ClientTLSConfig()
	cfg.ServerName = "localhost"
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	dialer := tls.Dialer{Config: cfg}
	_, err = dialer.DialContext(t.Context(), "tcp", addr)
	require.Error(t, err)
}

// serveTLS accepts connections on loopback and completes their handshakes
// until the test ends. It returns the listening address.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			wg.Go(func() {
				defer conn.Close()
				// Errors are the client's to report: a rejected name aborts here.
				_ = conn.(*tls.Conn).HandshakeContext(t.Context())
			})
		}
	})
	return ln.Addr().String()
}
