package dataplane

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// mountSmallTmpfs mounts a tmpfs of size (mount(8) syntax, e.g. "8m") on a
// fresh directory and unmounts it when the test ends. It skips the test when
// mounting is not permitted.
func mountSmallTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a %s tmpfs for the full-disk test (needs root): %v", size, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the tmpfs at %s: %v", dir, err)
		}
	})
	return dir
}

// TestUploadRealDiskFull fills an 8 MiB tmpfs during a PATCH: the response
// is 507 problem+json, HEAD reports exactly the bytes on disk, and once
// space is freed the upload resumes and completes byte-identical.
func TestUploadRealDiskFull(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		mount := mountSmallTmpfs(t, "8m")
		e := newEnvAt(t, mount, mode)
		filler := filepath.Join(mount, "filler")
		if err := os.WriteFile(filler, make([]byte, 5*mib), 0o644); err != nil {
			t.Fatal(err)
		}
		source := pattern(6*mib+4321, 9)
		u, session := e.uploadSession("big.bin", int64(len(source)))
		partial := filepath.Join(e.staging, session)

		resp, body := e.patch(u, 0, source)
		expectStatus(t, "PATCH on a full tmpfs", resp, body, 507)
		if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
			t.Errorf("507 Content-Type %q, want application/problem+json", got)
		}
		if p := problem(t, body); p["type"] == nil || p["title"] == nil {
			t.Errorf("507 body %s lacks type or title", body)
		}
		onDisk := fileSize(t, partial)
		if onDisk == 0 || onDisk >= int64(len(source)) {
			t.Fatalf("partial file has %d bytes after ENOSPC, want some but not all", onDisk)
		}
		expectOffset(t, "PATCH on a full tmpfs", resp, onDisk)
		resp = e.head(u)
		expectStatus(t, "HEAD after ENOSPC", resp, nil, 200)
		expectOffset(t, "HEAD after ENOSPC", resp, onDisk)
		if got, _ := os.ReadFile(partial); !bytes.Equal(got, source[:onDisk]) {
			t.Errorf("the partial file differs from the source's first %d bytes", onDisk)
		}

		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		resp, body = e.patch(u, onDisk, source[onDisk:])
		expectStatus(t, "PATCH after freeing space", resp, body, 204)
		expectOffset(t, "PATCH after freeing space", resp, int64(len(source)))
		got, err := os.ReadFile(filepath.Join(e.vfPath, "big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, source) {
			t.Errorf("the finished upload differs from the source")
		}
	})
}
