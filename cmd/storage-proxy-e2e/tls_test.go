package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/config"
)

// readCertificate parses the single PEM certificate in path.
func readCertificate(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s does not contain exactly one PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// newTLSFiles writes a CA and server certificate into a temporary folder
// and returns their files with a pool that trusts the CA.
func newTLSFiles(t *testing.T) (tlsFiles, *x509.CertPool) {
	t.Helper()
	files, err := writeTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool, err := loadCAPool(files.caFile)
	if err != nil {
		t.Fatal(err)
	}
	return files, pool
}

// startTLSServer starts an https server for handler on 127.0.0.1 with the
// certificate in files.
func startTLSServer(t *testing.T, files tlsFiles, handler http.Handler) *httptest.Server {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(files.certFile, files.keyFile)
	if err != nil {
		t.Fatalf("the written certificate and key do not load together: %v", err)
	}
	server := httptest.NewUnstartedServer(handler)
	server.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	server.StartTLS()
	t.Cleanup(server.Close)
	return server
}

func TestTLSFilesVerifyForLoopback(t *testing.T) {
	files, pool := newTLSFiles(t)
	cert := readCertificate(t, files.certFile)
	ca := readCertificate(t, files.caFile)

	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		_, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: pool}); err == nil {
		t.Error("server certificate verifies for example.com, want only loopback names")
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: x509.NewCertPool()}); err == nil {
		t.Error("server certificate verifies without its CA in the roots")
	}
	if cert.IsCA {
		t.Error("server certificate is a CA")
	}
	if !ca.IsCA || ca.MaxPathLen != 0 || !ca.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v, MaxPathLen %d, MaxPathLenZero %v; want a CA that signs only leaf certificates", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
	}
	if _, err := tls.LoadX509KeyPair(files.certFile, files.keyFile); err != nil {
		t.Errorf("cert.pem and key.pem do not load as a pair: %v", err)
	}
}

func TestTLSFilesKeyMode(t *testing.T) {
	dir := t.TempDir()
	// An earlier run's key with a wider mode must not keep that mode.
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := writeTLSFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(files.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("key.pem has mode %#o, want 0600", mode)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a CA key file exists (%v), want the CA key kept in memory only", err)
	}
}

func TestLoadCAPoolRejectsFileWithoutCertificate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(path, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadCAPool(path); err == nil {
		t.Error("loadCAPool accepted a file without a certificate")
	}
}

func TestProxyConfigWithTLS(t *testing.T) {
	dir := t.TempDir()
	files, err := writeTLSFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	configPath, local, err := writeProxyConfig(dir, &files)
	if err != nil {
		t.Fatal(err)
	}

	if !strings.HasPrefix(local.clientURL, "https://127.0.0.1:") {
		t.Errorf("client URL %q, want https://127.0.0.1:<port>", local.clientURL)
	}
	if !strings.HasPrefix(local.managerURL, "https://127.0.0.1:") {
		t.Errorf("manager URL %q, want https://127.0.0.1:<port>", local.managerURL)
	}
	text, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(text), "ssl-enabled = true\n"); n != 2 {
		t.Errorf("config sets ssl-enabled = true %d times, want 2 (both listeners):\n%s", n, text)
	}
	if strings.Contains(string(text), "ssl-enabled = false") {
		t.Errorf("config still contains ssl-enabled = false:\n%s", text)
	}

	// The proxy's own loader must accept the keys and find the files.
	cfg, err := config.Load(configPath, nil)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	for name, l := range map[string]config.Listener{"api.client": cfg.ClientAPI, "api.manager": cfg.ManagerAPI} {
		if !l.SSLEnabled || l.SSLCert != files.certFile || l.SSLPrivkey != files.keyFile {
			t.Errorf("[%s]: ssl-enabled %v, ssl-cert %q, ssl-privkey %q; want true, %q, %q",
				name, l.SSLEnabled, l.SSLCert, l.SSLPrivkey, files.certFile, files.keyFile)
		}
		if _, err := l.ServerTLS(); err != nil {
			t.Errorf("[%s]: ServerTLS: %v", name, err)
		}
	}
}

func TestProxyConfigPlain(t *testing.T) {
	configPath, local, err := writeProxyConfig(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(local.clientURL, "http://") || !strings.HasPrefix(local.managerURL, "http://") {
		t.Errorf("URLs %q and %q, want http://", local.clientURL, local.managerURL)
	}
	cfg, err := config.Load(configPath, nil)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	if cfg.ClientAPI.SSLEnabled || cfg.ManagerAPI.SSLEnabled {
		t.Error("a plain config enables TLS")
	}
}

func TestManagerClientTrustsGeneratedCA(t *testing.T) {
	files, pool := newTLSFiles(t)
	server := startTLSServer(t, files, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-BackendAI-Storage-Auth-Token") != "s" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))

	if err := newManagerClient(server.URL, "s", pool).call(http.MethodGet, "/", nil, http.StatusOK, nil); err != nil {
		t.Errorf("client with the generated CA: %v", err)
	}
	var certErr *tls.CertificateVerificationError
	err := newManagerClient(server.URL, "s", nil).call(http.MethodGet, "/", nil, http.StatusOK, nil)
	if !errors.As(err, &certErr) {
		t.Errorf("client on the system roots: %v, want a certificate verification error", err)
	}
	_, otherPool := newTLSFiles(t)
	err = newManagerClient(server.URL, "s", otherPool).call(http.MethodGet, "/", nil, http.StatusOK, nil)
	if !errors.As(err, &certErr) {
		t.Errorf("client trusting another CA: %v, want a certificate verification error", err)
	}
}

func TestWaitReadyStopsOnUntrustedCertificate(t *testing.T) {
	files, _ := newTLSFiles(t)
	server := startTLSServer(t, files, http.NotFoundHandler())
	p := &proxyProcess{exited: make(chan struct{})}

	started := time.Now()
	err := p.waitReady(newHTTPClient(nil, 2*time.Second), server.URL+"/", 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("waitReady: %v, want a certificate error", err)
	}
	if elapsed := time.Since(started); elapsed > 10*time.Second {
		t.Errorf("waitReady took %s to report the certificate, want no polling until the timeout", elapsed)
	}
}

// downloadHandler serves contents[token] at /download?token=<token>, with
// Range support.
func downloadHandler(contents map[string][]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		content, ok := contents[req.URL.Query().Get("token")]
		if req.URL.Path != "/download" || !ok {
			http.NotFound(w, req)
			return
		}
		http.ServeContent(w, req, "", time.Unix(1e9, 0), bytes.NewReader(content))
	})
}

// downloadFixture returns an https server with three files, a runner that
// reaches it, the files and their tokens.
func downloadFixture(t *testing.T) (*runner, tlsFiles, []*fileEntry, map[string]string) {
	t.Helper()
	contents := map[string][]byte{}
	tokens := map[string]string{}
	var files []*fileEntry
	for i, size := range []int{0, 1000, 3 << 20} {
		rel := "dir/file" + string(rune('a'+i))
		content := bytes.Repeat([]byte{byte('a' + i)}, size)
		want, err := hashReader(bytes.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		token := "token-" + rel
		contents[token], tokens[rel] = content, token
		files = append(files, &fileEntry{rel: rel, want: want})
	}
	certs, _ := newTLSFiles(t)
	server := startTLSServer(t, certs, downloadHandler(contents))
	r := &runner{target: target{clientURL: server.URL}, caFile: certs.caFile}
	return r, certs, files, tokens
}

func TestCurlFilesVerifyEveryTransfer(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	r, _, files, tokens := downloadFixture(t)

	// Three transfers in one -K file: without a cacert line in each
	// block, the transfers after "next" would fail verification.
	var stats downloadStats
	if err := r.curlFiles(t.TempDir(), files, tokens, &stats); err != nil {
		t.Fatalf("curlFiles with the CA: %v", err)
	}
	if stats.files != len(files) {
		t.Errorf("curlFiles compared %d files, want %d", stats.files, len(files))
	}

	r.caFile = ""
	err := r.curlFiles(t.TempDir(), files, tokens, &stats)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("curlFiles without the CA: %v, want a certificate failure", err)
	}
}

func TestAria2VerifiesCertificate(t *testing.T) {
	if _, err := exec.LookPath("aria2c"); err != nil {
		t.Skip("aria2c is not installed")
	}
	r, _, files, tokens := downloadFixture(t)
	large := files[len(files)-1]

	var stats downloadStats
	if err := r.aria2Large(t.TempDir(), large, tokens[large.rel], &stats); err != nil {
		t.Fatalf("aria2c with the CA: %v", err)
	}

	r.caFile = ""
	err := r.aria2Large(t.TempDir(), large, tokens[large.rel], &stats)
	if err == nil || !strings.Contains(err.Error(), "SSL/TLS handshake failure") {
		t.Errorf("aria2c without the CA: %v, want an SSL/TLS handshake failure", err)
	}
}

func TestParseOptionsTLSFlags(t *testing.T) {
	external := []string{"-client-url", "https://127.0.0.1:1", "-manager-url", "https://127.0.0.1:2", "-manager-secret", "s", "-volume", "v"}
	cases := []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"tls alone", []string{"-tls"}, false},
		{"ca-file with running proxy", append([]string{"-ca-file", "ca.pem"}, external...), false},
		{"tls with running proxy", append([]string{"-tls"}, external...), true},
		{"ca-file without running proxy", []string{"-ca-file", "ca.pem"}, true},
	}
	for _, c := range cases {
		_, err := parseOptions(c.args, io.Discard)
		if gotErr := err != nil; gotErr != c.wantErr {
			t.Errorf("%s: parseOptions(%q) error %v, want error %v", c.name, c.args, err, c.wantErr)
		}
	}
}
