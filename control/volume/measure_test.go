package volume

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/uring"
)

// TestTreeWalkMeasurements times usage, used bytes, clone and delete of a
// tree of 100,000 files against du -s, cp -a and rm -rf on the same tree.
// It runs only when VOLUME_TREE_BENCH names a directory to build the tree
// in (its file system is what gets measured); VOLUME_TREE_BENCH_FILES
// changes the number of files, and VOLUME_TREE_BENCH_ENGINE=io_uring runs
// the batches on the io_uring engine of package uring instead of
// SyscallTreeIO. Each step runs three times with a warm page cache, and the
// median is logged:
//
//	VOLUME_TREE_BENCH=/dev/shm go test -run TreeWalkMeasurements -v ./control/volume/
func TestTreeWalkMeasurements(t *testing.T) {
	base := os.Getenv("VOLUME_TREE_BENCH")
	if base == "" {
		t.Skip("set VOLUME_TREE_BENCH to a directory to measure tree walks there")
	}
	files := 100000
	if s := os.Getenv("VOLUME_TREE_BENCH_FILES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		files = n
	}
	mount, err := os.MkdirTemp(base, "tree-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("rm", "-rf", mount).Run() })

	opts := Options{}
	if name := os.Getenv("VOLUME_TREE_BENCH_ENGINE"); name != "" {
		opts.TreeIO = openEngine(t, name)
	}
	v := openOn(t, mount, opts)
	ctx := context.Background()
	src, srcDir := newFolder(t, v, mount, testFolder)
	started := time.Now()
	buildTree(t, srcDir, files)
	t.Logf("built %d files in %d directories under %s in %v", files, (files+999)/1000+(files+9999)/10000, base, time.Since(started))

	const runs = 3
	var ours, theirs [4][]time.Duration
	var deleteCalls []time.Duration
	for run := 0; run < runs; run++ {
		ours[0] = append(ours[0], timed(t, func() error { _, err := v.Usage(ctx, src, "."); return err }))
		theirs[0] = append(theirs[0], timed(t, exec.Command("du", "-s", "--apparent-size", srcDir).Run))
		ours[1] = append(ours[1], timed(t, func() error { _, err := v.UsedBytes(ctx, src); return err }))
		theirs[1] = append(theirs[1], timed(t, exec.Command("du", "-s", srcDir).Run))

		dst := mustVFID(t, testQSID+"/"+fmt.Sprintf("%032x", run+1))
		cpDir := filepath.Join(mount, "cp-copy-"+strconv.Itoa(run))
		ours[2] = append(ours[2], timed(t, func() error { return v.CloneFolder(ctx, src, dst) }))
		theirs[2] = append(theirs[2], timed(t, exec.Command("cp", "-a", srcDir, cpDir).Run))

		ours[3] = append(ours[3], timed(t, func() error {
			deleteCalls = append(deleteCalls, timed(t, func() error { return v.DeleteFolder(ctx, dst) }))
			return v.FlushTrash(ctx)
		}))
		theirs[3] = append(theirs[3], timed(t, exec.Command("rm", "-rf", cpDir).Run))
	}

	names := [4][2]string{
		{"usage (count + apparent bytes)", "du -s --apparent-size"},
		{"used bytes (blocks)", "du -s"},
		{"clone", "cp -a"},
		{"delete (rename + background)", "rm -rf"},
	}
	t.Logf("%-32s %10s   %-32s %10s", "walk", "median", "reference", "median")
	for i, n := range names {
		t.Logf("%-32s %10v   %-32s %10v", n[0], median(ours[i]), n[1], median(theirs[i]))
	}
	t.Logf("the delete call itself returned in %v (median)", median(deleteCalls))
}

// openEngine opens the uring engine of the given mode name ("io_uring" or
// "syscall") and closes it when the test ends.
func openEngine(t *testing.T, name string) TreeIO {
	t.Helper()
	mode, err := uring.ParseMode(name)
	if err != nil {
		t.Fatal(err)
	}
	engine, info, err := uring.Open(mode, uring.Options{})
	if err != nil {
		t.Skipf("io engine %s: %v", name, err)
	}
	t.Cleanup(func() { engine.Close() })
	t.Logf("io engine %s (%s)", info.Engine, info.Reason)
	return engine
}

// buildTree creates the given number of 100-byte regular files below dir,
// 1,000 per directory and 10 such directories per parent directory.
func buildTree(t *testing.T, dir string, files int) {
	t.Helper()
	content := make([]byte, 100)
	for i := 0; i < files; i++ {
		sub := filepath.Join(dir, strconv.Itoa(i/10000), strconv.Itoa(i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func timed(t *testing.T, step func() error) time.Duration {
	t.Helper()
	started := time.Now()
	if err := step(); err != nil {
		t.Fatal(err)
	}
	return time.Since(started)
}

func median(d []time.Duration) time.Duration {
	sorted := append([]time.Duration(nil), d...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	return sorted[len(sorted)/2].Round(time.Millisecond)
}
