package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Dataset paths, relative to the dataset root that every download server
// serves.
const (
	bigFile         = "big/file.bin" // D1, D4
	manyDir         = "many"         // D2: one file per client
	smallFile       = "small/4k.bin" // D3
	zipDir          = "zip"          // Z1: mixed sizes
	treeDir         = "tree"         // T1 to T3, under the trees root
	flatDir         = "flat"         // T4, under the trees root
	filesPerTreeDir = 1000
)

func manyFile(i int) string { return fmt.Sprintf("%s/f%03d.bin", manyDir, i) }

// writeDataset writes the download dataset under root, the upload sources
// under src and the trees under trees. File contents are pseudo-random, so
// no layer can compress them.
func writeDataset(o *options, root, src, trees string) error {
	started := time.Now()
	random := rand.New(rand.NewChaCha8([32]byte{1}))
	buf := make([]byte, 4<<20)
	write := func(path string, size int64) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			fillRandom(random, buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return err
			}
			left -= n
		}
		return f.Close()
	}

	files := []struct {
		path string
		size int64
	}{
		{filepath.Join(root, bigFile), o.d1Size},
		{filepath.Join(root, smallFile), o.d3Size},
		{filepath.Join(src, "u1.bin"), o.u1Size},
		{filepath.Join(src, "u2.bin"), o.u2Size},
	}
	for i := range o.d2Clients {
		files = append(files, struct {
			path string
			size int64
		}{filepath.Join(root, manyFile(i)), o.d2Size})
	}
	for _, f := range files {
		if err := write(f.path, f.size); err != nil {
			return err
		}
	}
	for _, f := range zipLayout(o.z1Size) {
		if err := write(filepath.Join(root, zipDir, f.path), f.size); err != nil {
			return err
		}
	}
	if err := writeTree(filepath.Join(trees, treeDir), o.treeFiles, random, buf); err != nil {
		return err
	}
	if err := writeFlat(filepath.Join(trees, flatDir), o.flatEntries); err != nil {
		return err
	}
	if err := exec.Command("sync").Run(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	fmt.Printf("dataset   written in %.1f s\n", time.Since(started).Seconds())
	return nil
}

func fillRandom(random *rand.Rand, buf []byte) {
	for i := 0; i+8 <= len(buf); i += 8 {
		v := random.Uint64()
		buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		buf[i+4], buf[i+5], buf[i+6], buf[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
}

type sizedFile struct {
	path string
	size int64
}

// zipLayout splits total into the Z1 folder: half in 4 large files, a
// quarter in 1 MiB files and a quarter in 16 KiB files, 256 to a folder.
func zipLayout(total int64) []sizedFile {
	var files []sizedFile
	for i := range 4 {
		files = append(files, sizedFile{fmt.Sprintf("large/l%d.bin", i), total / 8})
	}
	for i := range int(total / 4 / (1 << 20)) {
		files = append(files, sizedFile{fmt.Sprintf("medium/m%03d/%05d.bin", i/256, i), 1 << 20})
	}
	for i := range int(total / 4 / (16 << 10)) {
		files = append(files, sizedFile{fmt.Sprintf("small/s%03d/%06d.bin", i/256, i), 16 << 10})
	}
	return files
}

// writeTree writes count files of 0 to 4 KiB, 1,000 to a folder.
func writeTree(dir string, count int, random *rand.Rand, buf []byte) error {
	for i := range count {
		sub := filepath.Join(dir, fmt.Sprintf("d%04d", i/filesPerTreeDir))
		if i%filesPerTreeDir == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
		}
		size := random.IntN(4097)
		fillRandom(random, buf[:size&^7])
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%06d", i)), buf[:size], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeFlat creates count empty files in one folder.
func writeFlat(dir string, count int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := range count {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("e%07d", i)))
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// linkInto fills dst with hard links to every file below src (cp -al),
// so that each proxy volume holds the dataset without a second copy.
func linkInto(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	out, err := exec.Command("cp", "-al", src+"/.", dst+"/").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -al %s %s: %w: %s", src, dst, err, out)
	}
	return nil
}
