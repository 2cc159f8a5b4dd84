package manager

import (
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUploadSessionRejectedWhenFull creates upload sessions on an 8 MiB
// tmpfs: a declared size that cannot fit is rejected with 507 when the
// session is created, as is one that fits alone but not beside the space
// the first session reserved.
func TestUploadSessionRejectedWhenFull(t *testing.T) {
	mount := t.TempDir()
	if err := unix.Mount("tmpfs", mount, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount an 8 MiB tmpfs for the full-disk test (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(mount, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting the tmpfs at %s: %v", mount, err)
		}
	})
	writeFile(t, filepath.Join(mount, "version.txt"), "3")
	h := newHarness(t, harnessOptions{mounts: map[string]string{"local": mount}})
	// A reservation lasts until its token expires by the wall clock, so
	// the harness's fixed clock must not put the expiry in the past.
	h.now = time.Now()
	h.folder(vfidA)
	upload := func(relpath string, size int) *response {
		return h.call("POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": relpath, "size": size})
	}

	upload("too-big.bin", 16<<20).expectProblem(t, 507, "insufficient-storage")
	upload("half.bin", 5<<20).expect(t, 200)
	upload("second-half.bin", 5<<20).expectProblem(t, 507, "insufficient-storage")
	upload("small.bin", 1<<20).expect(t, 200)
}
