package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// tlsFiles are the PEM files that -tls writes into the proxy's folder: a
// throw-away CA certificate, and a server certificate signed by that CA
// with its private key. The CA's own key is never written, so nothing else
// can be signed with it after the run.
type tlsFiles struct {
	caFile   string // ca.pem, the bundle every client trusts
	certFile string // cert.pem, the proxy's ssl-cert
	keyFile  string // key.pem, the proxy's ssl-privkey (mode 0600)
}

// certValidity is how long the generated certificates stay valid after
// they are made. A run takes minutes. Their NotBefore lies an hour back, in
// case a clock is behind.
const certValidity = 24 * time.Hour

// writeTLSFiles generates an ECDSA P-256 CA and a server certificate signed
// by it for 127.0.0.1, ::1 and localhost, and writes ca.pem, cert.pem and
// key.pem into dir, replacing files of an earlier run.
func writeTLSFiles(dir string) (tlsFiles, error) {
	files := tlsFiles{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return files, err
	}

	caKey, caCert, caDER, err := newCA()
	if err != nil {
		return files, err
	}
	serverKey, serverDER, err := newServerCertificate(caKey, caCert)
	if err != nil {
		return files, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		return files, fmt.Errorf("encode the server key: %w", err)
	}

	if err := writePEM(files.caFile, "CERTIFICATE", caDER, 0o644); err != nil {
		return files, err
	}
	if err := writePEM(files.certFile, "CERTIFICATE", serverDER, 0o644); err != nil {
		return files, err
	}
	if err := writePEM(files.keyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return files, err
	}
	return files, nil
}

// newCA returns the key and certificate of a self-signed CA that may sign
// server certificates only (path length 0).
func newCA() (*ecdsa.PrivateKey, *x509.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate the CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "storage-proxy-e2e throw-away CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("parse the CA certificate: %w", err)
	}
	return key, cert, der, nil
}

// newServerCertificate returns a new key and the DER of its certificate,
// signed by the CA, for 127.0.0.1, ::1 and localhost.
func newServerCertificate(caKey *ecdsa.PrivateKey, caCert *x509.Certificate) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the server key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    caCert.NotBefore,
		NotAfter:     caCert.NotAfter,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create the server certificate: %w", err)
	}
	return key, der, nil
}

// randomSerial returns a positive 128-bit serial number, as RFC 5280
// section 4.1.2.2 allows up to 20 octets.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate a certificate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

// writePEM writes one PEM block to path with mode perm. It removes an
// existing file first, because os.WriteFile keeps the mode of a file that
// exists and a key must not stay readable by others.
func writePEM(path, blockType string, der []byte, perm os.FileMode) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), perm)
}

// loadCAPool reads a PEM bundle of CA certificates. It fails when the file
// contains no certificate, so a wrong file cannot leave the clients on
// their default roots.
func loadCAPool(path string) (*x509.CertPool, error) {
	bundle, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		return nil, fmt.Errorf("CA bundle %s contains no PEM certificate", path)
	}
	return pool, nil
}

// newHTTPClient returns an HTTP client that verifies servers against pool,
// or against the system roots when pool is nil. Verification is never
// turned off.
func newHTTPClient(pool *x509.CertPool, timeout time.Duration) *http.Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 16
	if pool != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: transport, Timeout: timeout}
}
