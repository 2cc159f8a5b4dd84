package dataplane

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
)

const largeFileSize = 5 << 30

// largeMarks are the offsets where the sparse 5 GiB test file holds data:
// around 2 GiB, 4 GiB and the end, the places where 32-bit counts break.
var largeMarks = []int64{0, 1<<31 - 4096, 1<<31 + 17, 1<<32 - 10, 1 << 32, 1<<32 + 1<<20, largeFileSize - 4096}

// makeSparseFile creates a 5 GiB file of holes with 4 KiB patterns at
// largeMarks.
func makeSparseFile(t *testing.T, p string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(largeFileSize); err != nil {
		t.Fatal(err)
	}
	for i, off := range largeMarks {
		if _, err := f.WriteAt(pattern(4096, byte(i+1)), off); err != nil {
			t.Fatal(err)
		}
	}
}

// sparseContent is the content of the sparse test file, generated without
// touching a file: zeros with 4 KiB patterns at largeMarks.
type sparseContent struct {
	off int64
}

func (r *sparseContent) Read(p []byte) (int, error) {
	if r.off >= largeFileSize {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), largeFileSize-r.off)]
	clear(p)
	for i, mark := range largeMarks {
		lo, hi := max(mark, r.off), min(mark+4096, r.off+int64(len(p)))
		if lo < hi {
			copy(p[lo-r.off:hi-r.off], pattern(4096, byte(i+1))[lo-mark:hi-mark])
		}
	}
	r.off += int64(len(p))
	return len(p), nil
}

func hashReader(t *testing.T, r io.Reader) uint64 {
	t.Helper()
	h := xxhash.New()
	if _, err := io.CopyBuffer(h, r, make([]byte, mib)); err != nil {
		t.Fatal(err)
	}
	return h.Sum64()
}

// largeTestModes returns every mode with DATAPLANE_LARGE=1, and otherwise
// only the io_uring one, to keep the default test run short.
func largeTestModes() []testMode {
	if os.Getenv("DATAPLANE_LARGE") == "1" {
		return testModes
	}
	return testModes[len(testModes)-1:]
}

// TestLargeFileDownload reads a sparse 5 GiB file at offsets past 2 and 4
// GiB on every data path. With DATAPLANE_LARGE=1 it also downloads the
// whole file and the 3 GiB from just below 2 GiB.
func TestLargeFileDownload(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		p := filepath.Join(e.vfPath, "large.bin")
		makeSparseFile(t, p)
		u := e.downloadURL("large.bin", "")

		ranges := []string{
			"bytes=4294967290-4294967305",
			"bytes=-16",
			"bytes=2147479552-2147487743",
			"bytes=4261412864-4328521727", // 64 MiB across 4 GiB
			"bytes=5368705024-",
		}
		for _, r := range ranges {
			resp, body := e.get(u, map[string]string{"Range": r})
			if resp.StatusCode != 206 {
				t.Fatalf("%s: status %d", r, resp.StatusCode)
			}
			var start, end, size int64
			if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &size); err != nil {
				t.Fatalf("%s: Content-Range %q: %v", r, resp.Header.Get("Content-Range"), err)
			}
			want := make([]byte, end-start+1)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.ReadAt(want, start)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if size != largeFileSize || !bytes.Equal(body, want) {
				t.Errorf("%s: %d bytes of %d differ from the file", r, len(body), size)
			}
		}
		if os.Getenv("DATAPLANE_LARGE") != "1" {
			return
		}

		for _, c := range []struct {
			rangeHeader string
			start       int64
		}{{"", 0}, {"bytes=2147479552-", 2147479552}} {
			req, err := http.NewRequest(http.MethodGet, u, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.rangeHeader != "" {
				req.Header.Set("Range", c.rangeHeader)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got := hashReader(t, resp.Body)
			resp.Body.Close()
			length := largeFileSize - c.start
			if resp.ContentLength != length {
				t.Errorf("%q: Content-Length %d, want %d", c.rangeHeader, resp.ContentLength, length)
			}
			want := &sparseContent{}
			if _, err := io.CopyN(io.Discard, want, c.start); err != nil {
				t.Fatal(err)
			}
			if got != hashReader(t, want) {
				t.Errorf("%q: the bytes differ from the file", c.rangeHeader)
			}
		}
	})
}

// TestLargeFileUpload uploads 5 GiB in 1 GiB PATCHes, checking the offset
// after each. The volume is on /dev/shm when it exists, so the 5 GiB are
// not written to a disk.
func TestLargeFileUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 5 GiB; skipped with -short")
	}
	for _, mode := range largeTestModes() {
		t.Run(mode.name, func(t *testing.T) {
			dir := t.TempDir()
			if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
				shm, err := os.MkdirTemp("/dev/shm", "dataplane-test-")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(shm) })
				dir = shm
			}
			e := newEnvAt(t, dir, mode)
			u, _ := e.uploadSession("uploaded.bin", largeFileSize)

			source := &sparseContent{}
			const chunk = 1 << 30
			for off := int64(0); off < largeFileSize; off += chunk {
				req, err := http.NewRequest(http.MethodPatch, u, io.LimitReader(source, chunk))
				if err != nil {
					t.Fatal(err)
				}
				req.ContentLength = chunk
				req.Header.Set("Tus-Resumable", "1.0.0")
				req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
				req.Header.Set("Content-Type", "application/offset+octet-stream")
				resp, err := e.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				expectStatus(t, "PATCH at "+strconv.FormatInt(off, 10), resp, nil, 204)
				expectOffset(t, "PATCH", resp, off+chunk)
				if off+chunk < largeFileSize {
					expectOffset(t, "HEAD", e.head(u), off+chunk)
				}
			}
			target, err := os.Open(filepath.Join(e.vfPath, "uploaded.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			if hashReader(t, target) != hashReader(t, &sparseContent{}) {
				t.Errorf("the uploaded file differs from the source")
			}
		})
	}
}
