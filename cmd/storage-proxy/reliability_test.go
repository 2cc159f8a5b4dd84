package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// cloneVFID is the clone destination: the same quota scope as testVFID.
const cloneVFID = "user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/0a1b2c3d4e5f40718293a4b5c6d7e8f9"

// vfolderPath returns the directory of the vfolder id on p's volume.
func vfolderPath(t *testing.T, p *testProxy, id string) string {
	t.Helper()
	v, err := vfid.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	return v.Path(filepath.Join(p.dir, "volumes", "local"))
}

// quotaScopeDir returns the directory of testVFID's quota scope, which
// contains the .trash and .clone directories.
func quotaScopeDir(t *testing.T, p *testProxy) string {
	t.Helper()
	v, err := vfid.Parse(testVFID)
	if err != nil {
		t.Fatal(err)
	}
	return v.QuotaScopePath(filepath.Join(p.dir, "volumes", "local"))
}

// fillTree writes n small files into dir, 200 per sub-directory.
func fillTree(t *testing.T, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		sub := filepath.Join(dir, "d"+strconv.Itoa(i/200))
		if i%200 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sub, "f"+strconv.Itoa(i)), []byte("small file "+strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// countFiles counts the regular files under dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// entriesOf lists the names in dir, or nil when it does not exist.
func entriesOf(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// waitUntil polls cond every 20 ms for up to within.
func waitUntil(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// killSupervisor sends SIGKILL to the supervisor and waits until it and
// its workers are gone, so a restart can bind the same ports.
func killSupervisor(t *testing.T, p *testProxy) {
	t.Helper()
	workers := children(p.cmd.Process.Pid)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	ok := waitUntil(20*time.Second, func() bool {
		for _, pid := range workers {
			if syscall.Kill(pid, 0) == nil {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("workers %v still run 20 s after the supervisor was killed", workers)
	}
}

// TestSupervisorKilledMidCloneAndDelete SIGKILLs the supervisor while it
// clones a tree of 20,000 files and again while it deletes that tree. After
// each restart the clone is rolled back (never half-visible at the
// destination path) or complete, and the delete finishes with the trash
// emptied.
func TestSupervisorKilledMidCloneAndDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and walks a tree of 20,000 files; skipped in -short mode")
	}
	const files = 20000
	p := writeConfig(t, 1, true)
	p.start(t)
	waitStatus(t, p.clientURL+"/", 20*time.Second)
	if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder: %d %s", status, out)
	}
	src := vfolderPath(t, p, testVFID)
	dst := vfolderPath(t, p, cloneVFID)
	fillTree(t, src, files)
	cloneDir := filepath.Join(quotaScopeDir(t, p), vfid.CloneDirName)
	trashDir := filepath.Join(quotaScopeDir(t, p), vfid.TrashDirName)

	// Clone, killed once the copy has started.
	cloneDone := make(chan int, 1)
	go func() {
		status, _ := managerCallNoFail(p, http.MethodPost, "/folder/clone",
			map[string]any{"src_volume": "local", "src_vfid": testVFID, "dst_volume": "local", "dst_vfid": cloneVFID})
		cloneDone <- status
	}()
	started := waitUntil(30*time.Second, func() bool {
		for _, name := range entriesOf(cloneDir) {
			if len(entriesOf(filepath.Join(cloneDir, name))) > 0 {
				return true
			}
		}
		return false
	})
	if !started {
		t.Fatalf("no clone data appeared in %s within 30 s", cloneDir)
	}
	killSupervisor(t, p)
	status := <-cloneDone
	if _, err := os.Lstat(dst); err == nil {
		if n := countFiles(t, dst); n != files {
			t.Fatalf("the destination is visible with %d of %d files after the kill", n, files)
		}
		t.Logf("the clone finished before the kill (status %d)", status)
	} else {
		t.Logf("killed mid-clone; %s contains %v", cloneDir, entriesOf(cloneDir))
	}

	p.start(t)
	waitStatus(t, p.clientURL+"/", 20*time.Second)
	if !waitUntil(30*time.Second, func() bool { return len(entriesOf(cloneDir)) == 0 }) {
		t.Fatalf("the half clone in %s was not removed after the restart: %v", cloneDir, entriesOf(cloneDir))
	}
	if _, err := os.Lstat(dst); err == nil {
		if n := countFiles(t, dst); n != files {
			t.Errorf("the destination contains %d of %d files after the restart", n, files)
		}
	}
	if n := countFiles(t, src); n != files {
		t.Fatalf("the source contains %d of %d files after the killed clone", n, files)
	}

	// Delete, killed while the background removal runs.
	status, out := managerCall(t, p, http.MethodPost, "/folder/delete", map[string]any{"volume": "local", "vfid": testVFID})
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, out)
	}
	pending := len(entriesOf(trashDir))
	killSupervisor(t, p)
	if _, err := os.Lstat(src); err == nil {
		t.Errorf("the deleted vfolder is visible after the kill")
	}
	t.Logf("killed mid-delete with %d trash entries pending", pending)

	p.start(t)
	waitStatus(t, p.clientURL+"/", 20*time.Second)
	if !waitUntil(60*time.Second, func() bool { return len(entriesOf(trashDir)) == 0 }) {
		t.Fatalf("the trash in %s was not emptied after the restart: %v", trashDir, entriesOf(trashDir))
	}
	if _, err := os.Lstat(src); err == nil {
		t.Errorf("the deleted vfolder reappeared after the restart")
	}
}

// managerCallNoFail is managerCall for goroutines: it returns status 0 on a
// transport error (the supervisor was killed) instead of failing the test.
func managerCallNoFail(p *testProxy, method, route string, body map[string]any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, _ := http.NewRequest(method, p.mgrURL+route, bytes.NewReader(b))
	req.Header.Set("X-BackendAI-Storage-Auth-Token", managerSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// vmRSS returns the resident set size of pid in KiB.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// TestSlowReaderKeepsWorkerMemoryFlat downloads a 64 MiB file through a
// client that reads 1 KiB a second with a small receive buffer. The
// worker's resident memory stays within 16 MiB of where it started, so the
// worker does not buffer the file for the slow client.
func TestSlowReaderKeepsWorkerMemoryFlat(t *testing.T) {
	p := writeConfig(t, 1, true)
	p.start(t)
	waitStatus(t, p.clientURL+"/", 20*time.Second)
	if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder: %d %s", status, out)
	}
	big := filepath.Join(vfolderPath(t, p, testVFID), "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		chunk[0] = byte(i)
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tok := mintToken(t, p, "/folder/file/download", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "big.bin"})
	workers := children(p.cmd.Process.Pid)
	if len(workers) != 1 {
		t.Fatalf("workers %v, want one", workers)
	}
	worker := workers[0]

	// Warm the worker up with one full download, so the baseline includes
	// its steady-state buffers.
	if status, n := download(t, p, tok, ""); status != 200 || n != 64<<20 {
		t.Fatalf("warm-up download: status %d, %d bytes", status, n)
	}
	baseline := vmRSS(t, worker)

	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	conn, err := dialer.Dial("tcp", strings.TrimPrefix(p.clientURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /download?token=%s HTTP/1.1\r\nHost: x\r\n\r\n", tok)

	peak := baseline
	buf := make([]byte, 1024)
	read := 0
	for i := 0; i < 5; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.ReadFull(conn, buf)
		read += n
		if err != nil {
			t.Fatalf("reading the slow download after %d bytes: %v", read, err)
		}
		time.Sleep(time.Second)
		peak = max(peak, vmRSS(t, worker))
	}
	t.Logf("worker VmRSS: %d KiB before, %d KiB at peak, after %d bytes read", baseline, peak, read)
	if growth := peak - baseline; growth > 16<<10 {
		t.Errorf("worker VmRSS grew by %d KiB during a slow 64 MiB download, want under 16 MiB", growth)
	}
}
