package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const (
	testQSID    = "user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11"
	testFolder  = "9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e"
	otherFolder = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
)

// memTempDir returns a new directory on /dev/shm, where creating many files
// is fast, or on the default temporary directory where there is no
// /dev/shm. The directory is removed when the test ends.
func memTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "volume-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func mustVFID(t *testing.T, s string) vfid.VFolderID {
	t.Helper()
	id, err := vfid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// openTestVolume opens and starts a vfs volume on a new directory with
// version.txt "3", and closes it when the test ends.
func openTestVolume(t *testing.T, opts Options) (Volume, string) {
	t.Helper()
	mount := memTempDir(t)
	if err := os.WriteFile(filepath.Join(mount, "version.txt"), []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return openOn(t, mount, opts), mount
}

func openOn(t *testing.T, mount string, opts Options) Volume {
	t.Helper()
	v, err := Open(Config{Name: "local", Backend: "vfs", Path: mount}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Errorf("close volume: %v", err)
		}
	})
	return v
}

// newFolder creates the quota scope and the vfolder, and returns the
// vfolder's id and directory.
func newFolder(t *testing.T, v Volume, mount, folder string) (vfid.VFolderID, string) {
	t.Helper()
	id := mustVFID(t, testQSID+"/"+folder)
	ctx := context.Background()
	if err := v.CreateQuotaScope(ctx, *id.QuotaScope, nil); err != nil && !errors.Is(err, ErrQuotaScopeExists) {
		t.Fatal(err)
	}
	if err := v.CreateFolder(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id, id.Path(mount)
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// duBytes runs du(1) on dir and returns its first field in bytes.
func duBytes(t *testing.T, args ...string) int64 {
	t.Helper()
	out, err := exec.Command("du", append([]string{"-s", "-B1"}, args...)...).Output()
	if err != nil {
		t.Fatalf("du %v: %v", args, err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCapabilitiesStrings(t *testing.T) {
	got := (CapVFolder | CapQuota | CapFastFSSize | CapMetric | CapFastSize | CapFastScan).Strings()
	want := []string{"vfolder", "quota", "metric", "fast-size", "fast-fs-size", "fast-scan"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Strings() = %v, want %v", got, want)
	}
	if got := CapVFolder.Strings(); len(got) != 1 || got[0] != "vfolder" {
		t.Errorf("vfs capabilities = %v", got)
	}
}

func TestOpenRejectsUnknownBackend(t *testing.T) {
	_, err := Open(Config{Name: "x", Backend: "xfs", Path: t.TempDir()}, Options{})
	if err == nil || !strings.Contains(err.Error(), `"xfs" is not supported`) {
		t.Errorf("Open with backend xfs: err = %v", err)
	}
}

func TestOpenWarnsAboutOldLayout(t *testing.T) {
	for _, version := range []string{"", "2", "3"} {
		t.Run("version="+version, func(t *testing.T) {
			mount := t.TempDir()
			if version != "" {
				writeFile(t, filepath.Join(mount, "version.txt"), version+"\n")
			}
			var logs logBuffer
			openOn(t, mount, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

			warned := strings.Contains(logs.String(), mount+": Detected an old vfolder structure (v2)")
			if warned != (version != "3") {
				t.Errorf("version %q: warned = %v; log:\n%s", version, warned, logs.String())
			}
		})
	}
}

func TestLegacyVFIDUsesLegacyLayout(t *testing.T) {
	v, mount := openTestVolume(t, Options{})
	id := mustVFID(t, testFolder)
	dir := id.Path(mount)
	writeFile(t, filepath.Join(dir, "a.txt"), "hello")

	entries, err := v.List(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "a.txt" {
		t.Errorf("List of legacy vfolder = %+v", entries)
	}
	if err := v.CreateFolder(context.Background(), id); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("CreateFolder of a legacy vfid: err = %v, want ErrInvalidArgument", err)
	}
	if err := v.DeleteFolder(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if err := v.FlushTrash(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy vfolder still exists after delete: %v", err)
	}
}

func TestMeasureTreeMatchesDu(t *testing.T) {
	v, mount := openTestVolume(t, Options{})
	id, dir := newFolder(t, v, mount, testFolder)
	writeFile(t, filepath.Join(dir, "a.txt"), strings.Repeat("x", 5000))
	writeFile(t, filepath.Join(dir, "sub", "b.txt"), "hello")
	writeFile(t, filepath.Join(dir, "sub", "deeper", "c.bin"), strings.Repeat("y", 70000))
	if err := os.Link(filepath.Join(dir, "a.txt"), filepath.Join(dir, "sub", "a-hardlink")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "/etc", filepath.Join(dir, "etc-link"))
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	sparse.Close()

	used, err := v.UsedBytes(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := duBytes(t, dir); used != want {
		t.Errorf("UsedBytes = %d, du -s -B1 = %d", used, want)
	}

	usage, err := v.Usage(context.Background(), id, ".")
	if err != nil {
		t.Fatal(err)
	}
	// a.txt, sub, sub/b.txt, sub/deeper, sub/deeper/c.bin, sub/a-hardlink,
	// etc-link, sparse.
	if usage.FileCount != 8 {
		t.Errorf("Usage.FileCount = %d, want 8", usage.FileCount)
	}
	if want := apparentSize(t, dir); usage.UsedBytes != want {
		t.Errorf("Usage.UsedBytes = %d, want %d", usage.UsedBytes, want)
	}
}

// apparentSize sums st_size of every entry below dir, counting each hard
// link: upstream's usage scan, which du --apparent-size is not (it counts
// a hard-linked inode once).
func apparentSize(t *testing.T, dir string) int64 {
	t.Helper()
	var sum int64
	err := filepath.WalkDir(dir, func(name string, d os.DirEntry, err error) error {
		if err != nil || name == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestUsageTimesOut(t *testing.T) {
	v, mount := openTestVolume(t, Options{UsageTimeout: time.Nanosecond})
	id, dir := newFolder(t, v, mount, testFolder)
	for i := 0; i < 10; i++ {
		writeFile(t, filepath.Join(dir, strconv.Itoa(i)), "")
	}
	usage, err := v.Usage(context.Background(), id, ".")
	if err != nil {
		t.Fatal(err)
	}
	if usage.FileCount != -1 || usage.UsedBytes != -1 {
		t.Errorf("Usage after its timeout = %+v, want -1/-1", usage)
	}
}

func TestRemoveTreeKeepsSymlinkTargets(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "keep.txt"), "keep")
	root := memTempDir(t)
	tree := filepath.Join(root, "tree")
	for i := 0; i < 2*walkBatch+1; i++ {
		writeFile(t, filepath.Join(tree, "many", strconv.Itoa(i)), "")
	}
	writeFile(t, filepath.Join(tree, "a", "b", "c", "d.txt"), "deep")
	symlink(t, outside, filepath.Join(tree, "a", "out-dir"))
	symlink(t, filepath.Join(outside, "keep.txt"), filepath.Join(tree, "out-file"))
	symlink(t, "missing", filepath.Join(tree, "dangling"))
	if err := os.Chmod(filepath.Join(tree, "a", "b"), 0o500); err != nil {
		t.Fatal(err)
	}

	dirfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	if err := removeTree(context.Background(), SyscallTreeIO{}, dirfd, "tree"); err != nil {
		t.Fatal(err)
	}

	if _, err := os.Lstat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tree still exists: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(outside, "keep.txt")); err != nil || string(data) != "keep" {
		t.Errorf("file behind a removed symlink: %q, %v", data, err)
	}
}

func TestCopyContentsKeepsSymlinksAndMetadata(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.txt"), "SECRET")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), "alpha")
	writeFile(t, filepath.Join(src, "sub", "b.txt"), strings.Repeat("b", 3<<20))
	symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(src, "out"))
	symlink(t, "..", filepath.Join(src, "sub", "up"))
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "a.txt"), 0o751|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2001, 2, 3, 4, 5, 6, 789000000, time.UTC)
	for _, name := range []string{"a.txt", "sub/b.txt", "sub"} {
		if err := os.Chtimes(filepath.Join(src, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()

	srcfd, _ := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer unix.Close(srcfd)
	dstfd, _ := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer unix.Close(dstfd)
	if _, err := copyContents(context.Background(), SyscallTreeIO{}, srcfd, dstfd); err != nil {
		t.Fatal(err)
	}

	if target, err := os.Readlink(filepath.Join(dst, "out")); err != nil || target != filepath.Join(outside, "secret.txt") {
		t.Errorf("copied symlink out -> %q, %v", target, err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "sub", "up")); err != nil || target != ".." {
		t.Errorf("copied symlink sub/up -> %q, %v", target, err)
	}
	if data, err := os.ReadFile(filepath.Join(dst, "sub", "b.txt")); err != nil || len(data) != 3<<20 {
		t.Errorf("copied sub/b.txt: %d bytes, %v", len(data), err)
	}
	fi, err := os.Lstat(filepath.Join(dst, "a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o751|os.ModeSetuid {
		t.Errorf("copied a.txt mode = %v, want -rwsr-x--x", fi.Mode())
	}
	for _, name := range []string{"a.txt", "sub/b.txt", "sub"} {
		fi, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(old) {
			t.Errorf("copied %s mtime = %v, want %v", name, fi.ModTime(), old)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("copied fifo: %v, %v", fi, err)
	}
}

func TestDeleteFolderFreesSpaceInBackground(t *testing.T) {
	v, mount := openTestVolume(t, Options{})
	id, dir := newFolder(t, v, mount, testFolder)
	writeFile(t, filepath.Join(dir, "x", "y.txt"), "data")

	if err := v.DeleteFolder(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("vfolder directory still exists: %v", err)
	}
	if err := v.FlushTrash(context.Background()); err != nil {
		t.Fatal(err)
	}
	trash := filepath.Join(mount, id.QuotaScope.PathName(), vfid.TrashDirName)
	if names := readDirNames(t, trash); len(names) != 0 {
		t.Errorf("trash after flush = %v, want empty", names)
	}
	if err := v.DeleteFolder(context.Background(), id); err != nil {
		t.Errorf("second delete of the same vfolder: %v", err)
	}
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

func TestStartResumesTrashAndClones(t *testing.T) {
	mount := t.TempDir()
	qs := filepath.Join(mount, "3e1c7c7a5f0a4c519a2d0c6a2b7f4e11")
	writeFile(t, filepath.Join(qs, vfid.TrashDirName, testFolder+".0123456789abcdef", "big", "f.txt"), "old data")
	writeFile(t, filepath.Join(qs, vfid.CloneDirName, "deadbeef", "g.txt"), "half a clone")
	writeFile(t, filepath.Join(mount, vfid.TrashDirName, "legacy.0123", "h.txt"), "legacy")

	// A Volume that is never started leaves everything in place.
	idle, err := Open(Config{Name: "local", Backend: "vfs", Path: mount}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if names := readDirNames(t, filepath.Join(qs, vfid.TrashDirName)); len(names) != 1 {
		t.Fatalf("trash of an unstarted volume = %v", names)
	}

	v := openOn(t, mount, Options{})
	if err := v.FlushTrash(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{
		filepath.Join(qs, vfid.TrashDirName),
		filepath.Join(qs, vfid.CloneDirName),
		filepath.Join(mount, vfid.TrashDirName),
	} {
		if names := readDirNames(t, dir); len(names) != 0 {
			t.Errorf("%s after Start and flush = %v, want empty", dir, names)
		}
	}
}

func TestCloneFolderCopiesTreeAtomically(t *testing.T) {
	v, mount := openTestVolume(t, Options{})
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.txt"), "SECRET")
	src, srcDir := newFolder(t, v, mount, testFolder)
	writeFile(t, filepath.Join(srcDir, "a.txt"), "alpha")
	writeFile(t, filepath.Join(srcDir, "d", "b.txt"), "beta")
	symlink(t, filepath.Join(outside, "secret.txt"), filepath.Join(srcDir, "out"))
	symlink(t, "..", filepath.Join(srcDir, "d", "up"))
	dst := mustVFID(t, testQSID+"/"+otherFolder)

	if err := v.CloneFolder(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	dstDir := dst.Path(mount)
	if target, err := os.Readlink(filepath.Join(dstDir, "out")); err != nil || target != filepath.Join(outside, "secret.txt") {
		t.Errorf("cloned symlink out -> %q, %v", target, err)
	}
	srcUsage, _ := v.Usage(context.Background(), src, ".")
	dstUsage, _ := v.Usage(context.Background(), dst, ".")
	if srcUsage != dstUsage {
		t.Errorf("usage of clone = %+v, of source = %+v", dstUsage, srcUsage)
	}
	if names := readDirNames(t, filepath.Join(mount, src.QuotaScope.PathName(), vfid.CloneDirName)); len(names) != 0 {
		t.Errorf(".clone after a clone = %v, want empty", names)
	}

	if err := v.CloneFolder(context.Background(), src, dst); !errors.Is(err, ErrVFolderExists) {
		t.Errorf("clone onto an existing vfolder: err = %v, want ErrVFolderExists", err)
	}
}

// mountTmpfs mounts a tmpfs of the given size on a new directory, or skips
// the test where mounting is not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func TestCheckDetectsLostMount(t *testing.T) {
	mount := mountTmpfs(t, "16m")
	v := openOn(t, mount, Options{})
	id, _ := newFolder(t, v, mount, testFolder)
	if err := v.Check(context.Background()); err != nil {
		t.Fatalf("Check on a mounted volume: %v", err)
	}

	if err := unix.Unmount(mount, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	err := v.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "device") {
		t.Fatalf("Check after umount: %v, want a device change", err)
	}
	if strings.Contains(err.Error(), mount) {
		t.Errorf("Check error names the server path: %v", err)
	}
	if err := v.Mkdir(context.Background(), id, "new", true, false); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Mkdir on a lost mount: err = %v, want ErrUnavailable", err)
	}
	if _, err := v.CreateUpload(context.Background(), UploadRequest{VFID: id, Relpath: "f", Size: 1, Expires: time.Now().Add(time.Hour)}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("CreateUpload on a lost mount: err = %v, want ErrUnavailable", err)
	}
	if names := readDirNames(t, mount); len(names) != 0 {
		t.Errorf("the directory under the lost mount got entries: %v", names)
	}
}

func TestCreateUploadChecksFreeSpace(t *testing.T) {
	mount := mountTmpfs(t, "4m")
	v := openOn(t, mount, Options{})
	id, _ := newFolder(t, v, mount, testFolder)
	expires := time.Now().Add(time.Hour)

	first, err := v.CreateUpload(context.Background(), UploadRequest{VFID: id, Relpath: "a.bin", Size: 3 << 20, Expires: expires})
	if err != nil {
		t.Fatalf("3 MiB session on a 4 MiB volume: %v", err)
	}
	_, err = v.CreateUpload(context.Background(), UploadRequest{VFID: id, Relpath: "b.bin", Size: 2 << 20, Expires: expires})
	if !errors.Is(err, ErrInsufficientStorage) {
		t.Errorf("2 MiB session while 3 MiB are expected: err = %v, want ErrInsufficientStorage", err)
	}
	staging := filepath.Join(mount, id.QuotaScope.PathName(), vfid.StagingDirName)
	if names := readDirNames(t, staging); len(names) != 1 || names[0] != first.ID {
		t.Errorf("staging after a rejected session = %v, want only %s", names, first.ID)
	}

	// Once the first session is gone, its bytes are free again.
	if err := os.Remove(filepath.Join(staging, first.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateUpload(context.Background(), UploadRequest{VFID: id, Relpath: "b.bin", Size: 2 << 20, Expires: expires}); err != nil {
		t.Errorf("2 MiB session after the first ended: %v", err)
	}
}

func TestDirentReaderReadsLargeDirectory(t *testing.T) {
	dir := memTempDir(t)
	// 600 names of 200 bytes fill more than one getdents buffer.
	const n = 600
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("%0200d", i)), "")
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	rd := newDirentReader(fd)
	defer rd.release()

	seen := map[string]bool{}
	for !rd.eof {
		ents, err := rd.next(nil, 333)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if seen[e.name] {
				t.Fatalf("entry %s returned twice", e.name)
			}
			seen[e.name] = true
		}
	}
	if len(seen) != n {
		t.Errorf("read %d entries, want %d", len(seen), n)
	}
}

// TestWalksOnIOUringEngine runs usage, clone and delete with the io_uring
// engine as TreeIO, which runs each batch concurrently and out of order,
// and compares the results with those of SyscallTreeIO.
func TestWalksOnIOUringEngine(t *testing.T) {
	engine := openEngine(t, "io_uring")
	plain, plainMount := openTestVolume(t, Options{})
	ring := openOn(t, plainMount, Options{TreeIO: engine})
	src, srcDir := newFolder(t, plain, plainMount, testFolder)
	for i := 0; i < 3*walkBatch; i++ {
		writeFile(t, filepath.Join(srcDir, strconv.Itoa(i%7), strconv.Itoa(i)), strings.Repeat("x", i))
	}
	symlink(t, "/etc", filepath.Join(srcDir, "etc-link"))
	ctx := context.Background()

	want, err := plain.Usage(ctx, src, ".")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ring.Usage(ctx, src, ".")
	if err != nil || got != want {
		t.Errorf("usage on io_uring = %+v, %v; on syscalls %+v", got, err, want)
	}
	wantUsed, _ := plain.UsedBytes(ctx, src)
	if gotUsed, err := ring.UsedBytes(ctx, src); err != nil || gotUsed != wantUsed {
		t.Errorf("used bytes on io_uring = %d, %v; on syscalls %d", gotUsed, err, wantUsed)
	}

	dst := mustVFID(t, testQSID+"/"+otherFolder)
	if err := ring.CloneFolder(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	if cloned, err := plain.Usage(ctx, dst, "."); err != nil || cloned != want {
		t.Errorf("usage of the io_uring clone = %+v, %v; want %+v", cloned, err, want)
	}
	if err := ring.DeleteFolder(ctx, dst); err != nil {
		t.Fatal(err)
	}
	if err := ring.FlushTrash(ctx); err != nil {
		t.Fatal(err)
	}
	if names := readDirNames(t, filepath.Join(plainMount, src.QuotaScope.PathName(), vfid.TrashDirName)); len(names) != 0 {
		t.Errorf("trash after an io_uring delete = %v", names)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	v, mount := openTestVolume(t, Options{})
	id, dir := newFolder(t, v, mount, testFolder)
	ctx := context.Background()

	if data, err := v.Metadata(ctx, id); err != nil || data != nil {
		t.Errorf("Metadata without metadata.json = %q, %v; want nil, nil", data, err)
	}
	if err := v.PutMetadata(ctx, id, []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if data, err := v.Metadata(ctx, id); err != nil || string(data) != `{"a":1}` {
		t.Errorf("Metadata after PutMetadata = %q, %v", data, err)
	}

	// A metadata.json that is a symlink is neither read nor written through.
	outside := memTempDir(t)
	writeFile(t, filepath.Join(outside, "m.json"), "outside")
	if err := os.Remove(filepath.Join(dir, "metadata.json")); err != nil {
		t.Fatal(err)
	}
	symlink(t, filepath.Join(outside, "m.json"), filepath.Join(dir, "metadata.json"))
	if _, err := v.Metadata(ctx, id); err == nil {
		t.Errorf("Metadata read through a symlink")
	}
	if err := v.PutMetadata(ctx, id, []byte("x")); err == nil {
		t.Errorf("PutMetadata wrote through a symlink")
	}
	if data, _ := os.ReadFile(filepath.Join(outside, "m.json")); string(data) != "outside" {
		t.Errorf("file behind the symlink changed: %q", data)
	}
}
