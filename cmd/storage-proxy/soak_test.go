package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// peakRSS returns a process's peak resident set size in KiB (VmHWM).
func peakRSS(pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// zeroReader yields n zero bytes without holding them in memory.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// TestSoakWorkerMemory runs 32 uploads of 128 MiB and 32 downloads of one
// 1 GiB file at once through the real binary and checks that no worker's
// peak RSS reaches 64 MiB. It moves 36 GiB over loopback, so it runs only
// with STORAGE_PROXY_SOAK=1 (make soak).
func TestSoakWorkerMemory(t *testing.T) {
	if os.Getenv("STORAGE_PROXY_SOAK") == "" {
		t.Skip("set STORAGE_PROXY_SOAK=1 (make soak) to run the memory soak")
	}
	const (
		clients    = 32
		uploadSize = 128 << 20
		bigSize    = 1 << 30
		limitKiB   = 64 << 10
	)
	p := writeConfig(t, 2, true)
	p.start(t)
	waitStatus(t, p.clientURL+"/", 10*time.Second)
	if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
		t.Fatalf("create folder: %d %s", status, out)
	}
	vfolder := filepath.Join(p.dir, "volumes", "local", "3e1c7c7a5f0a4c519a2d0c6a2b7f4e11", "9b", "2f", "4c1d8e7a4b6c9d0e1f2a3b4c5d6e")
	big, err := os.Create(filepath.Join(vfolder, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(big, &zeroReader{n: bigSize})
	big.Close()
	downTok := mintToken(t, p, "/folder/file/download", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "big.bin"})
	var upToks []string
	for i := 0; i < clients; i++ {
		upToks = append(upToks, mintToken(t, p, "/folder/file/upload", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "up-" + strconv.Itoa(i) + ".bin", "size": uploadSize}))
	}

	client := &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{MaxConnsPerHost: 2 * clients, MaxIdleConnsPerHost: 2 * clients}}
	var wg sync.WaitGroup
	errs := make(chan string, 2*clients)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(2)
		go func(tok string) {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPatch, p.clientURL+"/upload?token="+tok, &zeroReader{n: uploadSize})
			req.ContentLength = uploadSize
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Offset", "0")
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				errs <- "upload status " + resp.Status
			}
		}(upToks[i])
		go func() {
			defer wg.Done()
			resp, err := client.Get(p.clientURL + "/download?token=" + downTok)
			if err != nil {
				errs <- err.Error()
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if n != bigSize {
				errs <- "download got " + strconv.FormatInt(n, 10) + " bytes"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	elapsed := time.Since(start)

	for _, pid := range children(p.cmd.Process.Pid) {
		rss := peakRSS(pid)
		t.Logf("worker %d: peak RSS %d MiB", pid, rss>>10)
		if rss >= limitKiB {
			t.Errorf("worker %d peak RSS %d KiB, want under %d KiB", pid, rss, limitKiB)
		}
	}
	moved := float64(clients) * (uploadSize + bigSize) / (1 << 30)
	t.Logf("moved %.0f GiB in %s (%.2f GiB/s)", moved, elapsed.Round(time.Millisecond), moved/elapsed.Seconds())
}
