package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"path/filepath"
	"time"
)

const caValidityYears = 10

// loadOrCreateCA reuses the stored CA while it is usable for at least
// renewBefore, and otherwise creates and stores a new one.
func loadOrCreateCA(dir string, now time.Time) (keyPair, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	ca, err := loadPair(certPath, keyPath)
	if err == nil {
		err = checkCA(ca.cert, now)
	}
	if err == nil {
		return ca, nil
	}
	if !replaceable(err) {
		return keyPair{}, err
	}
	if ca, err = newCA(now); err != nil {
		return keyPair{}, err
	}
	if err := storePair(certPath, keyPath, ca); err != nil {
		return keyPair{}, err
	}
	return ca, nil
}

func checkCA(cert *x509.Certificate, now time.Time) error {
	switch {
	case !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%w: %s is not a CA certificate", errInvalid, caCertFile)
	case now.Before(cert.NotBefore) || now.Add(renewBefore).After(cert.NotAfter):
		return fmt.Errorf("%w: %s is not valid for the next %v", errInvalid, caCertFile, renewBefore)
	}
	return nil
}

// newCA creates a self-signed CA. Its common name carries part of the serial
// so two data directories yield CAs a user can tell apart in a trust store.
func newCA(now time.Time) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return keyPair{}, err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"localhub"},
			CommonName:   fmt.Sprintf("localhub local CA %.4x", serial.Bytes()),
		},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock lags
		NotAfter:              now.AddDate(caValidityYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // it signs server certificates, never other CAs
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return keyPair{}, fmt.Errorf("self-sign: %w", err)
	}
	return newPair(der, key)
}

// newPair wraps freshly created DER and its key.
func newPair(der []byte, key *ecdsa.PrivateKey) (keyPair, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, fmt.Errorf("parse created certificate: %w", err)
	}
	return keyPair{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     key,
	}, nil
}

// randomSerial returns a positive 128-bit serial number.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}
