package beneath

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layout builds <tmp>/outside/secret and <tmp>/folder with files and hostile
// symlinks, and returns the folder path.
func layout(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(tmp, "outside"), 0o755))
	must(os.WriteFile(filepath.Join(tmp, "outside", "secret"), []byte("secret"), 0o644))
	folder := filepath.Join(tmp, "folder")
	must(os.MkdirAll(filepath.Join(folder, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(folder, "sub", "file"), []byte("inside"), 0o644))
	must(os.Symlink("/etc/hostname", filepath.Join(folder, "abs")))
	must(os.Symlink("/", filepath.Join(folder, "slash")))
	must(os.Symlink("..", filepath.Join(folder, "up")))
	must(os.Symlink("../../outside/secret", filepath.Join(folder, "sub", "rel-out")))
	must(os.Symlink("file", filepath.Join(folder, "sub", "rel-in")))
	must(os.Symlink("loop", filepath.Join(folder, "loop")))
	return folder
}

func eachResolver(t *testing.T, fn func(t *testing.T)) {
	for _, fallback := range []bool{false, true} {
		name := "openat2"
		if fallback {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			forceFallback(fallback)
			defer forceFallback(false)
			fn(t)
		})
	}
}

func TestOpenFileContainment(t *testing.T) {
	folder := layout(t)
	eachResolver(t, func(t *testing.T) {
		d, err := Open(folder)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()

		ok := map[string]string{"sub/file": "inside", "sub/rel-in": "inside", "./sub//file": "inside", "sub/../sub/file": "inside"}
		for rel, want := range ok {
			f, err := d.OpenFile(rel, os.O_RDONLY, 0)
			if err != nil {
				t.Errorf("OpenFile(%q): %v", rel, err)
				continue
			}
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) != want {
				t.Errorf("OpenFile(%q) read %q, want %q", rel, b, want)
			}
		}

		hostile := []string{
			"../outside/secret", "/etc/hostname", "abs", "slash/etc/hostname", "up/outside/secret",
			"sub/rel-out", "sub/../../outside/secret", "..", "../../../../etc/hostname", "a\x00b",
			strings.Repeat("a", 256), strings.Repeat("a/", 2049), "\xff\xfe", "loop",
		}
		for _, rel := range hostile {
			f, err := d.OpenFile(rel, os.O_RDONLY, 0)
			if err == nil {
				f.Close()
				t.Errorf("OpenFile(%q) succeeded", rel)
			}
		}
		for _, rel := range []string{"../outside/secret", "/etc/hostname", "abs", "up/outside/secret", "sub/rel-out"} {
			if _, err := d.OpenFile(rel, os.O_RDONLY, 0); !errors.Is(err, ErrEscape) {
				t.Errorf("OpenFile(%q) error = %v, want ErrEscape", rel, err)
			}
		}
	})
}

func TestOpenFileCreatesInside(t *testing.T) {
	folder := layout(t)
	eachResolver(t, func(t *testing.T) {
		d, err := Open(folder)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.OpenFile("up/created", os.O_CREATE|os.O_WRONLY, 0o644); !errors.Is(err, ErrEscape) {
			t.Errorf("create through ../ symlink: %v", err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(folder), "created")); err == nil {
			t.Fatal("file created outside the folder")
		}
	})
}

func TestOpenDirNoSymlinks(t *testing.T) {
	folder := layout(t)
	eachResolver(t, func(t *testing.T) {
		d, err := Open(filepath.Dir(folder))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := os.Symlink("folder", filepath.Join(filepath.Dir(folder), "alias")); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		if sub, err := d.OpenDir("alias", true); err == nil {
			sub.Close()
			t.Error("OpenDir through a symlink succeeded with noSymlinks")
		}
		sub, err := d.OpenDir("folder", true)
		if err != nil {
			t.Fatalf("OpenDir(folder): %v", err)
		}
		sub.Close()
	})
}

func TestOpenRefusesSymlinkRoot(t *testing.T) {
	folder := layout(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(folder, link); err != nil {
		t.Fatal(err)
	}
	if d, err := Open(link); err == nil {
		d.Close()
		t.Fatal("Open followed a symlinked root")
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a/../..", "/a", "a//b", "a/./b", "a\x00b", "..%2f", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		c, err := Clean(rel)
		if err != nil {
			return
		}
		if strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(c, "\x00") {
			t.Fatalf("Clean(%q) = %q escapes", rel, c)
		}
		if again, err := Clean(c); err != nil || again != c {
			t.Fatalf("Clean not idempotent: %q -> %q -> %q, %v", rel, c, again, err)
		}
	})
}
