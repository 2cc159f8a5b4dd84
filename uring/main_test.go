package uring

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// engineCase creates one engine for a test; engine is its Name.
type engineCase struct {
	name   string
	engine string
	open   func(t testing.TB) Engine
}

// engineCases lists both engines, and the Syscall engine a second time with
// parallel batches. The ring case skips the test with the setup error when
// the kernel has no usable io_uring.
var engineCases = []engineCase{
	{"io_uring", "io_uring", func(t testing.TB) Engine { return openRing(t, Options{}) }},
	{"syscall", "syscall", func(t testing.TB) Engine { return NewSyscall() }},
	{"syscall-parallel", "syscall", func(t testing.TB) Engine { return &Syscall{BatchGoroutines: 3} }},
}

// openRing returns a Ring that is closed when the test ends.
func openRing(t testing.TB, opts Options) *Ring {
	t.Helper()
	r, err := NewRing(opts)
	if err != nil {
		t.Skipf("io_uring unavailable on this kernel, ring tests skipped: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// forEachEngine runs f as one subtest per engine.
func forEachEngine(t *testing.T, f func(t *testing.T, e Engine)) {
	for _, c := range engineCases {
		t.Run(c.name, func(t *testing.T) {
			e := c.open(t)
			if e.Name() != c.engine {
				t.Fatalf("Name() = %q, want %q", e.Name(), c.engine)
			}
			f(t, e)
		})
	}
}

// openDir opens path as a directory fd that is closed when the test ends.
func openDir(t testing.TB, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open directory %s: %v", path, err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

// tempDirFD returns a new temporary directory and an fd for it.
func tempDirFD(t testing.TB) (string, int) {
	dir := t.TempDir()
	return dir, openDir(t, dir)
}

// writeFile creates dir/name with data.
func writeFile(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// openFile opens dir/name with flags through e and closes it when the test
// ends.
func openFile(t testing.TB, e Engine, dirfd int, name string, flags int) int {
	t.Helper()
	fd, err := e.Openat(dirfd, name, flags, 0o644)
	if err != nil {
		t.Fatalf("Openat(%q): %v", name, err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	return fd
}

// mountTmpfs mounts a tmpfs of the given size (for example "1m") on a new
// temporary directory, unmounts it when the test ends, and skips the test if
// mounting is not permitted.
func mountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("mount -t tmpfs -o size=%s on %s failed (needs root or CAP_SYS_ADMIN): %v", size, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// pipe returns a pipe whose ends are closed when the test ends.
func pipe(t testing.TB) (r, w int) {
	t.Helper()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
	})
	return fds[0], fds[1]
}

// countFDs returns the number of open fds of this process.
func countFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	// ReadDir's own directory fd is listed too, but it is open in both
	// counts that a test compares.
	return len(entries)
}

// checkOpError fails the test unless err is an *OpError with exactly the
// message want that matches errno through errors.Is.
func checkOpError(t testing.TB, err error, want string, errno error) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want %q", want)
	}
	var opErr *OpError
	if !errors.As(err, &opErr) {
		t.Errorf("error %q is a %T, want *OpError", err, err)
	}
	if !errors.Is(err, errno) {
		t.Errorf("error %q does not match %v", err, errno)
	}
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}
