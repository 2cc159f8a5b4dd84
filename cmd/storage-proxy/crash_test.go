package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sessionOf decodes the session id from an upload token's claims.
func sessionOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct{ Session string }
	json.Unmarshal(payload, &claims)
	return claims.Session
}

// headOffset sends a tus HEAD and requires 200 with an Upload-Offset.
func headOffset(t *testing.T, p *testProxy, tok string) int64 {
	t.Helper()
	status, offset := headStatus(t, p, tok)
	if status != http.StatusOK {
		t.Fatalf("HEAD: %d", status)
	}
	return offset
}

// headStatus sends a tus HEAD and returns its status and, for 200, the
// Upload-Offset.
func headStatus(t *testing.T, p *testProxy, tok string) (int, int64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, p.clientURL+"/upload?token="+tok, nil)
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0
	}
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("HEAD Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return resp.StatusCode, n
}

// TestWorkerKilledMidPatchResumes kills the worker that is receiving a PATCH
// and resumes the upload from the offset HEAD reports after the restart.
func TestWorkerKilledMidPatchResumes(t *testing.T) {
	p := writeConfig(t, 1, true)
	p.start(t)
	waitStatus(t, p.clientURL+"/", 10*time.Second)
	if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder: %d %s", status, out)
	}

	const size = 8 << 20
	content := make([]byte, size)
	rand.New(rand.NewSource(1)).Read(content)
	tok := mintToken(t, p, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "big.bin", "size": size})
	partial := filepath.Join(p.dir, "volumes", "local", "3e1c7c7a5f0a4c519a2d0c6a2b7f4e11", ".upload", sessionOf(t, tok))

	// Send 3 MiB of the body, then hold the request open.
	body, w := io.Pipe()
	req, _ := http.NewRequest(http.MethodPatch, p.clientURL+"/upload?token="+tok, body)
	req.ContentLength = size
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", "0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	go w.Write(content[:3<<20])
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(partial); err == nil && fi.Size() >= 3<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the partial file never reached 3 MiB")
		}
		time.Sleep(10 * time.Millisecond)
	}

	workers := children(p.cmd.Process.Pid)
	if len(workers) != 1 {
		t.Fatalf("workers = %v", workers)
	}
	syscall.Kill(workers[0], syscall.SIGKILL)
	w.CloseWithError(io.ErrUnexpectedEOF)
	<-done

	// The replacement worker serves the same session.
	deadline = time.Now().Add(10 * time.Second)
	for {
		now := children(p.cmd.Process.Pid)
		if len(now) == 1 && now[0] != workers[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("worker not replaced")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitStatus(t, p.clientURL+"/", 10*time.Second)

	offset := headOffset(t, p, tok)
	fi, err := os.Stat(partial)
	if err != nil {
		t.Fatal(err)
	}
	if offset > fi.Size() || offset < 3<<20 {
		t.Fatalf("HEAD offset %d, partial file %d bytes; want 3 MiB <= offset <= file size", offset, fi.Size())
	}
	onDisk, _ := os.ReadFile(partial)
	if !bytes.Equal(onDisk[:offset], content[:offset]) {
		t.Fatal("the partial file differs from what was sent")
	}

	req, _ = http.NewRequest(http.MethodPatch, p.clientURL+"/upload?token="+tok, bytes.NewReader(content[offset:]))
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("resume PATCH: %d", resp.StatusCode)
	}

	final := filepath.Join(p.dir, "volumes", "local", "3e1c7c7a5f0a4c519a2d0c6a2b7f4e11", "9b", "2f", "4c1d8e7a4b6c9d0e1f2a3b4c5d6e", "big.bin")
	got, err := os.ReadFile(final)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(content) {
		t.Fatal("the final file differs from the source")
	}
}
