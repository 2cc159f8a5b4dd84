package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// digest is the size and xxhash64 of a file's content.
type digest struct {
	size int64
	hash uint64
}

func (d digest) String() string {
	return fmt.Sprintf("%d bytes, xxh64 %016x", d.size, d.hash)
}

// fileEntry is one regular file of the dataset.
type fileEntry struct {
	rel  string // slash-separated path inside the vfolder
	src  string // absolute path of the local copy that is uploaded
	want digest
	odd  bool // generated to exercise names, sizes or offsets
}

// dataset is the tree that is uploaded into the vfolder and expected back
// from every download.
type dataset struct {
	files []*fileEntry
	// dirs contains every directory below the vfolder root that holds
	// at least one file or directory, plus emptyDirs.
	dirs      []string
	emptyDirs []string
	byRel     map[string]*fileEntry
	large     *fileEntry
	skipped   int // symlinks, special files and unreadable entries of the source tree
}

func (d *dataset) totalBytes() int64 {
	var n int64
	for _, f := range d.files {
		n += f.want.size
	}
	return n
}

// oddFiles returns the generated files in dataset order.
func (d *dataset) oddFiles() []*fileEntry {
	var out []*fileEntry
	for _, f := range d.files {
		if f.odd {
			out = append(out, f)
		}
	}
	return out
}

// leafDirs returns the directories that contain no other directory, so that
// creating them with parents=true creates the whole tree and no two mkdir
// requests race for the same path.
func (d *dataset) leafDirs() []string {
	hasChild := map[string]bool{}
	for _, dir := range d.dirs {
		if parent := path.Dir(dir); parent != "." {
			hasChild[parent] = true
		}
	}
	var leaves []string
	for _, dir := range d.dirs {
		if !hasChild[dir] {
			leaves = append(leaves, dir)
		}
	}
	return leaves
}

// add records a file and the directories above it.
func (d *dataset) add(f *fileEntry) error {
	if _, dup := d.byRel[f.rel]; dup {
		return fmt.Errorf("dataset: %q appears twice", f.rel)
	}
	d.byRel[f.rel] = f
	d.files = append(d.files, f)
	return nil
}

// finish sorts the files and derives the directory list from the file paths.
func (d *dataset) finish() {
	sort.Slice(d.files, func(i, j int) bool { return d.files[i].rel < d.files[j].rel })
	seen := map[string]bool{}
	addParents := func(p string) {
		for dir := path.Dir(p); dir != "." && !seen[dir]; dir = path.Dir(dir) {
			seen[dir] = true
		}
	}
	for _, f := range d.files {
		addParents(f.rel)
	}
	for _, dir := range d.emptyDirs {
		seen[dir] = true
		addParents(dir)
	}
	d.dirs = d.dirs[:0]
	for dir := range seen {
		d.dirs = append(d.dirs, dir)
	}
	sort.Strings(d.dirs)
}

// addSourceTree adds every readable regular file below root under prefix,
// hashing each one. Symlinks, special files and entries that cannot be read
// are skipped and counted. Directories that end up with no file are left out.
func (d *dataset) addSourceTree(root, prefix string) error {
	return filepath.WalkDir(root, func(p string, entry fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			d.skipped++
			if entry != nil && entry.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if entry.IsDir() || !entry.Type().IsRegular() {
			if !entry.IsDir() {
				d.skipped++
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		sum, err := hashFile(p)
		if err != nil {
			d.skipped++
			return nil
		}
		return d.add(&fileEntry{rel: path.Join(prefix, filepath.ToSlash(rel)), src: p, want: sum})
	})
}

// hashFile returns the digest of the file at p.
func hashFile(p string) (digest, error) {
	f, err := os.Open(p)
	if err != nil {
		return digest{}, err
	}
	defer f.Close()
	return hashReader(f)
}

func hashReader(r io.Reader) (digest, error) {
	h := xxhash.New()
	n, err := io.CopyBuffer(h, r, make([]byte, 1<<20))
	if err != nil {
		return digest{}, err
	}
	return digest{size: n, hash: h.Sum64()}, nil
}

// compareDigest returns an error naming rel and the client that fetched it
// unless got equals want.
func compareDigest(rel, client string, want, got digest) error {
	if want == got {
		return nil
	}
	return fmt.Errorf("%s: %q differs: want %s, got %s", client, rel, want, got)
}

// smallOddFiles are the generated files with names that quoting, percent
// encoding, Content-Disposition and ZIP name encoding must get right. The
// content of each is its own name repeated, so every file differs.
var smallOddFiles = []string{
	"데이터 세트 ①.csv",
	`naïve "quoted" name.txt`,
	"spaces  twice and trailing space .txt",
	"punctuation !#$%&'()+,;=@[]^`{}~.txt",
	"question?mark and *star* and <angle> | pipe.txt",
	"-leading dash.txt",
	".hidden file",
	"trailing dot.",
	"100% done & 50%20encoded.txt",
	"日本語/ネスト ディレクトリ/ファイル (1).txt",
	"emoji 🚀 and combining é.txt",
	"odd dir #1/nested, with comma/data.json",
}

const (
	emptyFileName = "empty file (0 bytes).txt"
	emptyDirName  = "empty directory ∅"
	largeFileName = "large/large 4.5GiB.bin"
)

// generateOddFiles writes the generated files below dir (creating it) and
// adds them to the dataset at the vfolder root. The large file is written
// only when no file of its size is there yet, so several runs can share one
// dataset dir. Its expected digest always comes from the generator, never
// from the file on disk.
func (d *dataset) generateOddFiles(dir string, largeSize int64) error {
	for _, name := range smallOddFiles {
		content := strings.Repeat(name+"\n", 3+len(name)%7)
		if err := d.writeSmall(dir, name, []byte(content)); err != nil {
			return err
		}
	}
	if err := d.writeSmall(dir, emptyFileName, nil); err != nil {
		return err
	}
	d.emptyDirs = append(d.emptyDirs, emptyDirName)

	src := filepath.Join(dir, filepath.FromSlash(largeFileName))
	want, err := writePattern(src, largeSize)
	if err != nil {
		return fmt.Errorf("generate %s: %w", src, err)
	}
	d.large = &fileEntry{rel: largeFileName, src: src, want: want, odd: true}
	return d.add(d.large)
}

func (d *dataset) writeSmall(dir, rel string, content []byte) error {
	src := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(src, content, 0o644); err != nil {
		return err
	}
	want, err := hashReader(strings.NewReader(string(content)))
	if err != nil {
		return err
	}
	return d.add(&fileEntry{rel: rel, src: src, want: want, odd: true})
}

// patternBlock is the unit in which the large file's content is generated.
const patternBlock = 1 << 20

// fillPattern fills buf with the content that starts at byte offset off of
// the large file. Every 8-byte word is splitmix64 of its own word index, so
// no two blocks are alike and data written at a wrong offset never matches.
// off must be a multiple of 8.
func fillPattern(buf []byte, off int64) {
	word := uint64(off / 8)
	for i := 0; i+8 <= len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], splitmix64(word))
		word++
	}
	if tail := len(buf) % 8; tail != 0 {
		var last [8]byte
		binary.LittleEndian.PutUint64(last[:], splitmix64(word))
		copy(buf[len(buf)-tail:], last[:tail])
	}
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// writePattern makes the file at p hold size bytes of the pattern and
// returns the pattern's digest. An existing file of the right size is kept
// as it is, which saves writing gigabytes again in a second run.
func writePattern(p string, size int64) (digest, error) {
	if info, err := os.Stat(p); err == nil && info.Size() == size {
		return copyPattern(io.Discard, size)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return digest{}, err
	}
	f, err := os.Create(p)
	if err != nil {
		return digest{}, err
	}
	want, err := copyPattern(f, size)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return want, err
}

// copyPattern writes the first size bytes of the pattern to out and returns
// their digest.
func copyPattern(out io.Writer, size int64) (digest, error) {
	h := xxhash.New()
	buf := make([]byte, patternBlock)
	for off := int64(0); off < size; off += patternBlock {
		chunk := buf[:min(int64(patternBlock), size-off)]
		fillPattern(chunk, off)
		h.Write(chunk)
		if _, err := out.Write(chunk); err != nil {
			return digest{}, err
		}
	}
	return digest{size: size, hash: h.Sum64()}, nil
}
