package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/config"
	"github.com/bai-storage/storage-proxy/control/testcert"
)

func TestTLSOnBothListeners(t *testing.T) {
	p := writeConfig(t, 2, true)
	certPath, keyPath, pair := testcert.Write(t, p.dir)
	cfg, _ := os.ReadFile(p.configFile)
	tlsKeys := "ssl-enabled = true\nssl-cert = \"" + certPath + "\"\nssl-privkey = \"" + keyPath + "\"\n"
	text := strings.ReplaceAll(string(cfg), "ssl-enabled = false\n", tlsKeys)
	os.WriteFile(p.configFile, []byte(text), 0o644)
	p.clientURL = strings.Replace(p.clientURL, "http://", "https://", 1)
	p.mgrURL = strings.Replace(p.mgrURL, "http://", "https://", 1)

	saved := http.DefaultClient
	http.DefaultClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: pair.Client()}}
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

	// The proxy responds to a PATCH at a wrong offset before reading its
	// body. Over TLS too, a client still sending that body must be able to
	// read the 409 before any reset, because a client like node's http gives
	// up on a write error without reading the response. The worker closes
	// such a connection lingering. A plain close resets at once, so the
	// writer must still be blocked when the response is read 300 ms later.
	wrong := mintToken(t, p, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "wrong.bin", "size": 64 << 20})
	conn, err := tls.Dial("tcp", strings.TrimPrefix(p.clientURL, "https://"), pair.Client())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH /upload?token=%s HTTP/1.1\r\nHost: test\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 1048576\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", wrong, 32<<20)
	writeFailed := make(chan error, 1)
	go func() {
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := conn.Write(make([]byte, 32<<20))
		writeFailed <- err
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-writeFailed:
		t.Errorf("sending the body of a rejected PATCH over HTTPS failed within 300 ms (%v): the connection was not closed lingering", err)
	default:
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("PATCH at a wrong offset over HTTPS: %v, want a 409 response", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || resp.Header.Get("Upload-Offset") != "0" {
		t.Errorf("PATCH at a wrong offset over HTTPS: %d with Upload-Offset %q, want 409 with 0", resp.StatusCode, resp.Header.Get("Upload-Offset"))
	}

	if !strings.Contains(p.stderr.String(), "copied through user space") {
		t.Errorf("the log does not say that TLS turns sendfile off:\n%s", p.stderr.String())
	}
}

func TestDevBannerUsesTheListenersScheme(t *testing.T) {
	cfg := &config.Config{}
	cfg.ManagerAPI.ServiceAddr = config.HostPort{Host: "127.0.0.1", Port: 6022}
	cfg.ManagerAPI.Secret = "s"
	cfg.ClientAPI.ServiceAddr = config.HostPort{Host: "127.0.0.1", Port: 6021}
	var plain strings.Builder
	printDevBanner(&plain, cfg)
	if !strings.Contains(plain.String(), "Try: curl -s -H 'X-BackendAI-Storage-Auth-Token: s' http://127.0.0.1:6022/volumes") {
		t.Errorf("plain banner:\n%s", plain.String())
	}

	cfg.ManagerAPI.SSLEnabled, cfg.ManagerAPI.SSLCert = true, "/etc/sp/cert.pem"
	var secure strings.Builder
	printDevBanner(&secure, cfg)
	if !strings.Contains(secure.String(), "Try: curl -s --cacert /etc/sp/cert.pem -H 'X-BackendAI-Storage-Auth-Token: s' https://127.0.0.1:6022/volumes") {
		t.Errorf("banner with TLS on the manager API:\n%s", secure.String())
	}
}
