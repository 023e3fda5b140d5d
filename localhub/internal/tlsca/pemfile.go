package tlsca

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	certPerm fs.FileMode = 0o644
	keyPerm  fs.FileMode = 0o600
)

// keyPair is a certificate and its private key as stored on disk.
type keyPair struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
}

// loadPair reads a certificate and key file. Missing files give an error
// wrapping fs.ErrNotExist, unusable content one wrapping errInvalid.
func loadPair(certPath, keyPath string) (keyPair, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return keyPair{}, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return keyPair{}, err
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return keyPair{}, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return keyPair{}, fmt.Errorf("%s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return keyPair{}, fmt.Errorf("%w: %s does not match %s", errInvalid, keyPath, certPath)
	}
	return keyPair{cert: cert, certPEM: certPEM, key: key}, nil
}

func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", errInvalid)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	return cert, nil
}

// parseKey accepts PKCS#8 (what we write) and SEC 1 EC keys (what openssl
// writes), so a user may bring their own CA.
func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", errInvalid)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: unsupported PEM block %q", errInvalid, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T cannot sign", errInvalid, key)
	}
	return signer, nil
}

// storePair writes the key first, then the certificate: after a crash
// between the two, the old certificate no longer matches the new key, so the
// next start notices and regenerates instead of serving a broken pair.
func storePair(certPath, keyPath string, p keyPair) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), keyPerm); err != nil {
		return err
	}
	return writeFileAtomic(certPath, p.certPEM, certPerm)
}

// writeFileAtomic writes data to a temporary file in the same directory and
// renames it over path, so readers see the old file or the new one, never a
// half-written PEM.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes the rename durable. It is best effort: some platforms
// cannot sync a directory, and the rename itself is already atomic.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	_ = d.Sync()
}
