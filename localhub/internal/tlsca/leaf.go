package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"path/filepath"
	"time"
)

const leafValidityYears = 2 // under the 825 days macOS allows any TLS server certificate

// loadOrIssueLeaf reuses the stored server certificate when the current CA
// issued it, it covers every requested name and it stays valid for at least
// renewBefore; otherwise it issues and stores a new one.
func loadOrIssueLeaf(dir string, ca keyPair, names sanSet, now time.Time) (keyPair, error) {
	certPath, keyPath := filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)
	leaf, err := loadPair(certPath, keyPath)
	if err == nil {
		err = checkLeaf(leaf.cert, ca.cert, names, now)
	}
	if err == nil {
		return leaf, nil
	}
	if !replaceable(err) {
		return keyPair{}, err
	}
	if leaf, err = issueLeaf(ca, names, now); err != nil {
		return keyPair{}, err
	}
	if err := storePair(certPath, keyPath, leaf); err != nil {
		return keyPair{}, err
	}
	return leaf, nil
}

// checkLeaf verifies the certificate exactly as a client trusting only the
// CA would, for every name.
func checkLeaf(cert, ca *x509.Certificate, names sanSet, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	opts := x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now.Add(renewBefore),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, err := cert.Verify(opts); err != nil {
		return fmt.Errorf("%w: %w", errInvalid, err)
	}
	if now.Before(cert.NotBefore) {
		return fmt.Errorf("%w: %s is not valid yet", errInvalid, serverCertFile)
	}
	for _, name := range names.all() {
		if err := cert.VerifyHostname(name); err != nil {
			return fmt.Errorf("%w: %w", errInvalid, err)
		}
	}
	return nil
}

// issueLeaf issues a server certificate for names from ca. Its lifetime is
// capped at the CA's so the chain never outlives its root.
func issueLeaf(ca keyPair, names sanSet, now time.Time) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return keyPair{}, err
	}
	notAfter := now.AddDate(leafValidityYears, 0, 0)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"localhub"},
			CommonName:   "localhub server",
		},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock lags
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names.dns,
		IPAddresses:           names.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, key.Public(), ca.key)
	if err != nil {
		return keyPair{}, fmt.Errorf("sign: %w", err)
	}
	return newPair(der, key)
}
