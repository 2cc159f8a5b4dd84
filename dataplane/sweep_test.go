package dataplane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

func TestSweep(t *testing.T) {
	mount := t.TempDir()
	qs := vfid.QuotaScopeID{Type: vfid.ScopeProject, UUID: randomUUID(t)}
	scoped := vfid.VFolderID{QuotaScope: &qs, Folder: randomUUID(t)}
	legacy := vfid.VFolderID{Folder: randomUUID(t)}
	now := time.Now()
	old := now.Add(-2 * time.Hour)

	type file struct {
		dir, name string
		mtime     time.Time
		keep      bool
	}
	session := func(c byte) string { return strings.Repeat(string(c), 32) }
	files := []file{
		{scoped.StagingDir(mount), session('a'), old, false},
		{scoped.StagingDir(mount), session('a') + ".done", old, false},
		{scoped.StagingDir(mount), session('b') + ".steal", old, false},
		{scoped.StagingDir(mount), session('c'), now, true},
		{scoped.StagingDir(mount), session('d'), old, true}, // locked below
		{scoped.StagingDir(mount), "notes.txt", old, true},
		{legacy.StagingDir(mount), session('e'), old, false},
		{scoped.Path(mount), session('f'), old, true}, // inside a vfolder
	}
	for _, f := range files {
		mustMkdir(t, f.dir)
		p := filepath.Join(f.dir, f.name)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
	}
	locked, err := os.Open(filepath.Join(scoped.StagingDir(mount), session('d')))
	if err != nil {
		t.Fatal(err)
	}
	defer locked.Close()
	if err := unix.Flock(int(locked.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	removed, err := Sweep(mount, time.Hour, now)
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if removed != 4 {
		t.Errorf("removed %d files, want 4", removed)
	}
	for _, f := range files {
		_, err := os.Stat(filepath.Join(f.dir, f.name))
		exists := err == nil
		if exists != f.keep {
			t.Errorf("%s: exists %v, want %v (%v)", f.name, exists, f.keep, err)
		}
	}

	empty := t.TempDir()
	if n, err := Sweep(empty, time.Hour, now); n != 0 || err != nil {
		t.Errorf("Sweep of a volume without staging directories: %d, %v", n, err)
	}
	if _, err := Sweep(filepath.Join(empty, "missing"), time.Hour, now); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sweep of a missing mount: %v, want not exist", err)
	}
}
