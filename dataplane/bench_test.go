package dataplane

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Benchmarks of the data paths over 127.0.0.1, client and server in one
// process. They report throughput as MB/s of payload; compare the variants
// of one run, not absolute numbers, since the client shares the CPUs.

// shmDir returns a fresh directory on /dev/shm (tmpfs), or skips.
func shmDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "dataplane-bench-")
	if err != nil {
		tb.Skipf("no /dev/shm: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// rawGet sends a GET and reads the body with 1 MiB reads, returning the
// body length.
func rawGet(tb testing.TB, addr, u string) int64 {
	tb.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", parsed.RequestURI(), addr)
	br := bufio.NewReaderSize(conn, 1<<20)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if err == io.EOF {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

func BenchmarkDownload(b *testing.B) {
	const size = 1 << 30
	for _, mode := range testModes[:2] {
		b.Run(mode.dataPath, func(b *testing.B) {
			e := newEnvAt(b, shmDir(b), mode)
			e.writeFile("big.bin", pattern(size, 1))
			u := e.downloadURL("big.bin", "")
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if n := rawGet(b, e.addr, u); n != size {
					b.Fatalf("received %d bytes", n)
				}
			}
		})
	}
}

// rawPatchBody sends a PATCH of size bytes from a reused 1 MiB buffer and
// returns the status.
func rawPatchBody(tb testing.TB, addr, u string, offset, size int64) int {
	tb.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nUpload-Offset: %d\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n",
		parsed.RequestURI(), addr, offset, size)
	buf := pattern(1<<20, 3)
	for sent := int64(0); sent < size; {
		n, err := conn.Write(buf[:min(int64(len(buf)), size-sent)])
		sent += int64(n)
		if err != nil {
			tb.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func BenchmarkUpload(b *testing.B) {
	const size = 1 << 30
	targets := map[string]func(b *testing.B) string{
		"tmpfs": func(b *testing.B) string { return shmDir(b) },
		"disk":  func(b *testing.B) string { return b.TempDir() },
	}
	for _, target := range []string{"tmpfs", "disk"} {
		for _, mode := range []testMode{testModes[0], testModes[3]} {
			for _, overlap := range []bool{false, true} {
				name := target + "/" + strings.TrimPrefix(mode.name, "copy+")
				if overlap {
					name += "/overlapped"
				} else {
					name += "/sequential"
				}
				b.Run(name, func(b *testing.B) {
					e := newEnvAt(b, targets[target](b), mode)
					e.server.overlapWrites = overlap
					b.SetBytes(size)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						u, _ := e.uploadSession("up"+strconv.Itoa(i)+".bin", size)
						if status := rawPatchBody(b, e.addr, u, 0, size); status != 204 {
							b.Fatalf("status %d", status)
						}
						b.StopTimer()
						os.Remove(filepath.Join(e.vfPath, "up"+strconv.Itoa(i)+".bin"))
						b.StartTimer()
					}
				})
			}
		}
	}
}

// BenchmarkArchive streams a mixed tree of 224 MiB: compressible text,
// random binaries, and random ".jpg" files that ArchiveDeflate stores.
func BenchmarkArchive(b *testing.B) {
	for _, compression := range []string{ArchiveStore, ArchiveDeflate} {
		b.Run(compression, func(b *testing.B) {
			e := newEnvAt(b, shmDir(b), testModes[0], func(o *Options) { o.ArchiveCompression = compression })
			random := make([]byte, 4<<20)
			if _, err := rand.Read(random); err != nil {
				b.Fatal(err)
			}
			var line strings.Builder
			for i := 0; line.Len() < 2<<20; i++ {
				fmt.Fprintf(&line, "%d,sample-%d,%.4f,label_%d\n", i, i*7, float64(i)/3, i%10)
			}
			total := int64(0)
			for i := 0; i < 64; i++ {
				e.writeFile(fmt.Sprintf("tree/csv/%d.csv", i), []byte(line.String()))
				total += int64(line.Len())
			}
			for i := 0; i < 16; i++ {
				e.writeFile(fmt.Sprintf("tree/bin/%d.bin", i), random)
				e.writeFile(fmt.Sprintf("tree/img/%d.jpg", i), random[:2<<20])
				total += int64(len(random)) + 2<<20
			}
			u := e.downloadURL("tree", "archive=true")
			var archived int64
			b.SetBytes(total)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				archived = rawGet(b, e.addr, u)
			}
			b.ReportMetric(float64(archived)/float64(total), "zip/src")
		})
	}
}

// TestSoakMemory runs many uploads and downloads at once and reports the
// process's peak RSS. It runs only with DATAPLANE_SOAK=1 (a measurement,
// not a unit test); DATAPLANE_SOAK_CLIENTS sets the clients per direction.
func TestSoakMemory(t *testing.T) {
	if os.Getenv("DATAPLANE_SOAK") != "1" {
		t.Skip("set DATAPLANE_SOAK=1 to run the memory soak")
	}
	clients := 32
	if v, err := strconv.Atoi(os.Getenv("DATAPLANE_SOAK_CLIENTS")); err == nil && v > 0 {
		clients = v
	}
	const fileSize = 256 << 20
	const uploadSize = 256 << 20
	e := newEnvAt(t, shmDir(t), testModes[0])
	big, err := os.Create(filepath.Join(e.vfPath, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := pattern(1<<20, 1)
	for i := 0; i < fileSize>>20; i++ {
		if _, err := big.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := big.Close(); err != nil {
		t.Fatal(err)
	}
	down := e.downloadURL("big.bin", "")
	runtime.GC()

	var peakHeap uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 4; j++ {
				if n := rawGet(t, e.addr, down); n != fileSize {
					t.Errorf("download received %d bytes", n)
				}
			}
		}()
		go func(i int) {
			defer wg.Done()
			u, _ := e.uploadSession(fmt.Sprintf("soak/%d.bin", i), uploadSize)
			const chunk = 16 << 20
			for off := int64(0); off < uploadSize; off += chunk {
				if status := rawPatchBody(t, e.addr, u, off, chunk); status != 204 {
					t.Errorf("upload %d at %d: status %d", i, off, status)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	<-sampled
	moved := int64(clients) * (4*fileSize + uploadSize)
	elapsed := time.Since(start)
	t.Logf("%d downloading and %d uploading clients moved %d MiB in %v (%.0f MB/s)",
		clients, clients, moved>>20, elapsed.Round(time.Millisecond), float64(moved)/elapsed.Seconds()/1e6)
	t.Logf("peak Go heap in use %d MiB; %s", peakHeap>>20, processPeakRSS())
}

// processPeakRSS returns the VmHWM line of /proc/self/status.
func processPeakRSS() string {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "peak RSS unknown: " + err.Error()
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return "peak RSS (VmHWM) " + strings.Join(strings.Fields(line)[1:], " ")
		}
	}
	return "peak RSS unknown"
}
