package mailstack

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TestCertHost is the host name NewTestCert certifies besides 127.0.0.1.
const TestCertHost = "mx.mailstack.test"

// TestCert is a self-signed server certificate for 127.0.0.1 and TestCertHost, written as PEM files
// a server can load, with the pool a client trusts it through.
type TestCert struct {
	CertFile, KeyFile string
	Roots             *x509.CertPool
}

// NewTestCert writes a fresh self-signed RSA certificate, valid for a day, into dir.
func NewTestCert(dir string) (*TestCert, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("test certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: TestCertHost, Organization: []string{"deskd mailstack"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own root
		DNSNames:              []string{TestCertHost},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("test certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("test certificate: %w", err)
	}
	c := &TestCert{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), Roots: x509.NewCertPool()}
	c.Roots.AddCert(cert)
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("test certificate: %w", err)
	}
	keyDER := x509.MarshalPKCS1PrivateKey(key)
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("test certificate: %w", err)
	}
	return c, nil
}

// ClientConfig is a TLS client configuration that trusts only this certificate.
func (c *TestCert) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Roots, ServerName: TestCertHost, MinVersion: tls.VersionTLS12}
}
