package main

import (
	"archive/zip"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// checkZip downloads the whole folder as the web UI does (a download token
// for the root with archive, then archive=true in the query), tests it with
// unzip -t, requires unzip's listing to name exactly the uploaded tree, and
// compares the hash of every entry. It returns the number of entries.
func (r *runner) checkZip(dir string, stats *downloadStats) (int, error) {
	token, err := r.downloadToken(r.vfid, ".", true)
	if err != nil {
		return 0, err
	}
	zipPath := filepath.Join(dir, "folder.zip")
	headersPath := zipPath + ".headers"
	out, err := r.curl("-sS", "-D", headersPath, "-o", zipPath, r.downloadURL(token, "archive", "true", "no_cache", "true")).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("curl GET /download with archive=true for the folder: %w: %s", err, truncate(out, 500))
	}
	resp, err := readHeaders(headersPath)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/zip" {
		body, _ := os.ReadFile(zipPath)
		return 0, fmt.Errorf("GET /download with archive=true for the folder: status %d, Content-Type %q, want 200 and application/zip; body: %s",
			resp.StatusCode, resp.Header.Get("Content-Type"), truncate(body, 300))
	}
	info, err := os.Stat(zipPath)
	if err != nil {
		return 0, err
	}
	stats.zipBytes = info.Size()
	stats.bytes += info.Size()

	test := exec.Command("unzip", "-tq", zipPath)
	test.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if out, err := test.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("unzip -tq on the folder ZIP: %w\n%s", err, truncate(out, 2000))
	}
	archive, err := zip.OpenReader(zipPath)
	if err != nil {
		return 0, fmt.Errorf("archive/zip cannot open the folder ZIP: %w", err)
	}
	defer archive.Close()
	var names []string
	for _, entry := range archive.File {
		names = append(names, entry.Name)
	}
	if err := r.compareZipNames("archive/zip", names); err != nil {
		return 0, err
	}
	if err := compareUnzipNames(zipPath, archive); err != nil {
		return 0, err
	}

	files, err := r.hashZipEntries(archive)
	if err != nil {
		return 0, err
	}
	stats.files += files
	if err := os.Remove(zipPath); err != nil {
		return 0, err
	}
	return len(names), nil
}

// compareUnzipNames requires unzip -Z1, run in a UTF-8 locale, to print
// the same names that archive/zip reads. On failure it names the first
// differing entry with its flags and the host that made it. The host
// matters because Info-ZIP unzip 6.0 (Debian 6.0-28) converts the names of
// entries made by MS-DOS (host 0) from the OEM code page even when the
// UTF-8 flag (0x800) is set.
func compareUnzipNames(zipPath string, archive *zip.ReadCloser) error {
	cmd := exec.Command("unzip", "-Z1", zipPath)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("unzip -Z1 on the folder ZIP: %w (%s)", err, exitDetail(err))
	}
	printed := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(printed) != len(archive.File) {
		return fmt.Errorf("unzip -Z1 lists %d entries of the folder ZIP, archive/zip reads %d", len(printed), len(archive.File))
	}
	for i, entry := range archive.File {
		if printed[i] != entry.Name {
			return fmt.Errorf("unzip -Z1 prints entry %d of the folder ZIP as %q, but its name is %q (flags %#04x, made by host %d, version %d)",
				i, printed[i], entry.Name, entry.Flags, entry.CreatorVersion>>8, entry.CreatorVersion&0xff)
		}
	}
	return nil
}

// compareZipNames requires names to contain every file of the dataset and
// an entry "<dir>/" for every empty directory, once each. A directory entry
// for a directory that holds files is part of the uploaded tree and
// allowed, but any other name is not.
func (r *runner) compareZipNames(tool string, names []string) error {
	isDir := map[string]bool{}
	for _, d := range r.data.dirs {
		isDir[d] = true
	}
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			return fmt.Errorf("%s: the folder ZIP names %q twice", tool, name)
		}
		seen[name] = true
		if _, ok := r.data.byRel[name]; ok {
			continue
		}
		if dir, ok := strings.CutSuffix(name, "/"); ok && isDir[dir] {
			continue
		}
		return fmt.Errorf("%s: the folder ZIP has entry %q, which is neither an uploaded file nor an uploaded directory", tool, name)
	}
	for _, f := range r.data.files {
		if !seen[f.rel] {
			return fmt.Errorf("%s: the folder ZIP lacks %q", tool, f.rel)
		}
	}
	for _, d := range r.data.emptyDirs {
		if !seen[d+"/"] {
			return fmt.Errorf("%s: the folder ZIP lacks the empty directory entry %q", tool, d+"/")
		}
	}
	return nil
}

// hashZipEntries compares every file entry's hash and size with the
// dataset, and archive/zip checks each entry's CRC-32. It returns the
// number of files compared.
func (r *runner) hashZipEntries(archive *zip.ReadCloser) (int, error) {
	files := 0
	for _, entry := range archive.File {
		if strings.HasSuffix(entry.Name, "/") {
			if entry.UncompressedSize64 != 0 {
				return 0, fmt.Errorf("folder ZIP: directory entry %q has %d bytes", entry.Name, entry.UncompressedSize64)
			}
			continue
		}
		want := r.data.byRel[entry.Name]
		rc, err := entry.Open()
		if err != nil {
			return 0, fmt.Errorf("folder ZIP: open %q: %w", entry.Name, err)
		}
		got, err := hashReader(rc)
		rc.Close()
		if err != nil {
			return 0, fmt.Errorf("folder ZIP: read %q: %w", entry.Name, err)
		}
		if err := compareDigest(entry.Name, "folder ZIP", want.want, got); err != nil {
			return 0, err
		}
		files++
	}
	return files, nil
}
