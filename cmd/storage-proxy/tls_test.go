package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeSelfSigned writes a certificate for 127.0.0.1 and its key into dir.
func writeSelfSigned(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "storage-proxy test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

func TestTLSOnBothListeners(t *testing.T) {
	p := writeConfig(t, 2, true)
	certPath, keyPath, pool := writeSelfSigned(t, p.dir)
	cfg, _ := os.ReadFile(p.configFile)
	tlsKeys := "ssl-enabled = true\nssl-cert = \"" + certPath + "\"\nssl-privkey = \"" + keyPath + "\"\n"
	text := strings.ReplaceAll(string(cfg), "ssl-enabled = false\n", tlsKeys)
	os.WriteFile(p.configFile, []byte(text), 0o644)
	p.clientURL = strings.Replace(p.clientURL, "http://", "https://", 1)
	p.mgrURL = strings.Replace(p.mgrURL, "http://", "https://", 1)

	saved := http.DefaultClient
	http.DefaultClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer func() { http.DefaultClient = saved }()

	p.start(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.DefaultClient.Get(p.clientURL + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTPS client API not up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder over HTTPS: %d %s", status, out)
	}
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	uploadFile(t, p, "tls.bin", content)
	tok := mintToken(t, p, "/folder/file/download", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "tls.bin"})
	if status, n := download(t, p, tok, ""); status != 200 || n != len(content) {
		t.Fatalf("download over HTTPS: %d, %d bytes", status, n)
	}
	if status, n := download(t, p, tok, "bytes=1048000-"); status != 206 || n != len(content)-1048000 {
		t.Fatalf("range download over HTTPS: %d, %d bytes", status, n)
	}
	if !strings.Contains(p.stderr.String(), "copied through user space") {
		t.Errorf("the log does not say that TLS turns sendfile off:\n%s", p.stderr.String())
	}
}
