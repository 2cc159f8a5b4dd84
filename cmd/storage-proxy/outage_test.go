package main

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/cluster"
)

// TestEtcdOutageKeepsTransfers stops the proxy's etcd while it serves:
// readiness reports the outage, uploads and downloads go on, and readiness
// recovers when etcd returns, without a restart.
func TestEtcdOutageKeepsTransfers(t *testing.T) {
	p := writeConfig(t, 1, false)
	cfg, _ := os.ReadFile(p.configFile)
	port := strings.TrimSpace(strings.Split(strings.Split(string(cfg), "port = ")[1], " ")[0])
	etcdAddr := "127.0.0.1:" + port
	etcdDir := t.TempDir()
	member, err := cluster.StartMember(etcdDir, etcdAddr, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { member.Close() }()

	p.start(t)
	waitStatus(t, p.mgrURL+"/readyz", 10*time.Second)
	if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder: %d %s", status, out)
	}
	upTok := mintToken(t, p, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "during-outage.bin", "size": 4096})
	uploadFile(t, p, "before.bin", bytes.Repeat([]byte("x"), 1234))
	downTok := mintToken(t, p, "/folder/file/download", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "before.bin"})

	member.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, body := readyz(t, p)
		if status == http.StatusServiceUnavailable && strings.Contains(body, "etcd") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not report the etcd outage: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if status, n := download(t, p, downTok, ""); status != 200 || n != 1234 {
		t.Errorf("download during the outage: %d, %d bytes", status, n)
	}
	req, _ := http.NewRequest(http.MethodPatch, p.clientURL+"/upload?token="+upTok, bytes.NewReader(make([]byte, 4096)))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("upload during the outage: %d", resp.StatusCode)
	}
	if status, _ := managerCall(t, p, http.MethodGet, "/folder/usage", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusOK {
		t.Errorf("usage during the outage: %d", status)
	}

	member, err = cluster.StartMember(etcdDir, etcdAddr, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		status, body := readyz(t, p)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz did not recover after etcd returned: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
