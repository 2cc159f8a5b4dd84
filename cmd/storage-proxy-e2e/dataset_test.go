package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSourceTreeSkipsSymlinks(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"a.go":             "package a",
		"dir/b.txt":        "b",
		"dir/deeper/c.txt": "",
	})
	if err := os.Symlink("a.go", filepath.Join(root, "link.go")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("dir", filepath.Join(root, "dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "only-empty"), 0o755); err != nil {
		t.Fatal(err)
	}

	d := &dataset{byRel: map[string]*fileEntry{}}
	if err := d.addSourceTree(root, "src"); err != nil {
		t.Fatal(err)
	}
	d.finish()

	got := relpaths(d.files)
	want := []string{"src/a.go", "src/dir/b.txt", "src/dir/deeper/c.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("files = %q, want %q", got, want)
	}
	if d.skipped != 2 {
		t.Errorf("skipped = %d, want 2 symlinks", d.skipped)
	}
	wantDirs := []string{"src", "src/dir", "src/dir/deeper"}
	if !slices.Equal(d.dirs, wantDirs) {
		t.Errorf("dirs = %q, want %q (a directory without files is left out)", d.dirs, wantDirs)
	}
	if got := d.byRel["src/a.go"].want; got.size != 9 {
		t.Errorf("src/a.go digest = %v, want 9 bytes", got)
	}
}

func TestLeafDirsCoverTree(t *testing.T) {
	d := &dataset{byRel: map[string]*fileEntry{}, emptyDirs: []string{"x/empty"}}
	for _, rel := range []string{"a/b/c/f", "a/b/g", "a/h", "top", "x/y/z"} {
		d.add(&fileEntry{rel: rel})
	}
	d.finish()

	leaves := d.leafDirs()
	want := []string{"a/b/c", "x/empty", "x/y"}
	if !slices.Equal(leaves, want) {
		t.Fatalf("leafDirs = %q, want %q", leaves, want)
	}
	// Creating the leaves with parents must create every directory.
	for _, dir := range d.dirs {
		covered := slices.ContainsFunc(leaves, func(leaf string) bool { return leaf == dir || strings.HasPrefix(leaf, dir+"/") })
		if !covered {
			t.Errorf("directory %q is below no leaf", dir)
		}
	}
}

func TestPatternIsPositional(t *testing.T) {
	whole := make([]byte, 3*patternBlock+5)
	fillPattern(whole, 0)

	// Generating from an offset must give the same bytes as slicing.
	part := make([]byte, patternBlock+5)
	fillPattern(part, 2*patternBlock)
	if string(part) != string(whole[2*patternBlock:]) {
		t.Error("pattern generated at an offset differs from the same range of the whole")
	}
	// No block repeats another, so misplaced data cannot match.
	if string(whole[:patternBlock]) == string(whole[patternBlock:2*patternBlock]) {
		t.Error("two blocks of the pattern are equal")
	}
}

func TestWritePatternKeepsExistingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "large.bin")
	size := int64(2*patternBlock + 123)
	first, err := writePattern(p, size)
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := hashFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk != first {
		t.Fatalf("file on disk %v, generator reported %v", onDisk, first)
	}

	// A corrupted file of the right size is kept, but the expected digest
	// still comes from the generator, so the run would catch it.
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := writePattern(p, size)
	if err != nil {
		t.Fatal(err)
	}
	if second != first {
		t.Errorf("second digest %v, want the generator's %v", second, first)
	}
}

func TestCompareDigestNamesFile(t *testing.T) {
	want := digest{size: 3, hash: 1}
	if err := compareDigest("a b.txt", "curl", want, want); err != nil {
		t.Errorf("equal digests: %v", err)
	}
	err := compareDigest("데이터 세트 ①.csv", "curl", want, digest{size: 3, hash: 2})
	if err == nil || !strings.Contains(err.Error(), `"데이터 세트 ①.csv"`) {
		t.Errorf("error %v does not name the file", err)
	}
}

func TestGeneratedNamesAreDistinct(t *testing.T) {
	d := &dataset{byRel: map[string]*fileEntry{}}
	if err := d.generateOddFiles(t.TempDir(), 10); err != nil {
		t.Fatal(err)
	}
	d.finish()
	if d.large == nil || d.large.want.size != 10 {
		t.Fatalf("large file = %+v, want 10 bytes", d.large)
	}
	if got := len(d.oddFiles()); got != len(smallOddFiles)+2 {
		t.Errorf("%d generated files, want %d", got, len(smallOddFiles)+2)
	}
	if !slices.Contains(d.dirs, emptyDirName) {
		t.Errorf("dirs %q lack the empty directory %q", d.dirs, emptyDirName)
	}
	for _, f := range d.files {
		if strings.Contains(f.rel, `\`) {
			t.Errorf("%q contains a backslash", f.rel)
		}
	}
}

func TestContentDispositionEncoding(t *testing.T) {
	got := contentDisposition(`naïve "quoted" name.txt`)
	want := `attachment;filename="nave \"quoted\" name.txt"; filename*=UTF-8''na%C3%AFve%20%22quoted%22%20name.txt`
	if got != want {
		t.Errorf("contentDisposition = %q, want %q", got, want)
	}
	name, ok := decodedFilenameStar(`attachment;filename="x"; filename*=UTF-8''na%c3%afve%20%22quoted%22%20name.txt`)
	if !ok || name != `naïve "quoted" name.txt` {
		t.Errorf("decodedFilenameStar with lower-case escapes = %q, %v", name, ok)
	}
	if _, ok := decodedFilenameStar(`attachment; filename*=UTF-8''a b`); ok {
		t.Error("decodedFilenameStar accepted a raw space")
	}
}

func TestCurlQuoteEscapes(t *testing.T) {
	if got := curlQuote(`a"b\c`); got != `"a\"b\\c"` {
		t.Errorf("curlQuote = %s", got)
	}
}
