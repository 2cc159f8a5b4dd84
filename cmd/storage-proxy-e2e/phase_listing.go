package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type listItem struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Stat struct {
		Mode     int64  `json:"mode"`
		Size     int64  `json:"size"`
		Created  string `json:"created"`
		Modified string `json:"modified"`
	} `json:"stat"`
	SymlinkTarget *string `json:"symlink_target"`
}

type folderUsage struct {
	FileCount int64 `json:"file_count"`
	UsedBytes int64 `json:"used_bytes"`
}

type fsUsage struct {
	CapacityBytes int64 `json:"capacity_bytes"`
	UsedBytes     int64 `json:"used_bytes"`
}

// phaseListing checks the manager's view of the uploaded folder: a listing
// of every directory with the names, types and sizes of the dataset and
// nothing else, the usage counters, and the volume's usage.
func (r *runner) phaseListing() error {
	started := time.Now()
	calls := r.manager.calls.Load()

	if err := r.checkListings(); err != nil {
		return err
	}
	usage, err := r.folderUsage(r.vfid)
	if err != nil {
		return err
	}
	if err := r.checkUsage(usage); err != nil {
		return err
	}
	used, err := r.folderUsedBytes(r.vfid)
	if err != nil {
		return err
	}
	if err := r.checkUsedBytes(used); err != nil {
		return err
	}
	volume, err := r.fsUsage()
	if err != nil {
		return err
	}
	r.usage, r.usedBytes = usage, used

	summary("listing", usage.UsedBytes, int(usage.FileCount), started,
		fmt.Sprintf("%d manager calls: %d directory listings match the dataset; usage %d entries, %d bytes; used-bytes %d; volume %d of %d bytes used",
			r.manager.calls.Load()-calls, len(r.data.dirs)+1, usage.FileCount, usage.UsedBytes, used, volume.UsedBytes, volume.CapacityBytes))
	return nil
}

// expectedListing returns, for each directory ("." for the root), the
// entries that must appear in its listing with their type and, for files,
// their size.
func (r *runner) expectedListing() map[string]map[string]listItem {
	dirs := map[string]map[string]listItem{".": {}}
	for _, dir := range r.data.dirs {
		dirs[dir] = map[string]listItem{}
	}
	for _, dir := range r.data.dirs {
		item := listItem{Name: path.Base(dir), Type: "DIRECTORY"}
		dirs[path.Dir(dir)][item.Name] = item
	}
	for _, f := range r.data.files {
		item := listItem{Name: path.Base(f.rel), Type: "FILE"}
		item.Stat.Size = f.want.size
		dirs[path.Dir(f.rel)][item.Name] = item
	}
	return dirs
}

// checkListings lists every directory with POST /folder/file/list, eight
// calls at a time, and compares each with the dataset.
func (r *runner) checkListings() error {
	expected := r.expectedListing()
	dirs := make([]string, 0, len(expected))
	for dir := range expected {
		dirs = append(dirs, dir)
	}
	slices.Sort(dirs)
	return parallel(len(dirs), 8, func(i int) error {
		dir := dirs[i]
		relpath := dir
		if dir == "." {
			relpath = ""
		}
		var reply struct {
			Items []listItem `json:"items"`
		}
		body := map[string]any{"volume": r.target.volume, "vfid": r.vfid, "relpath": relpath}
		if err := r.manager.call("POST", "/folder/file/list", body, 200, &reply); err != nil {
			return err
		}
		return compareListing(dir, expected[dir], reply.Items)
	})
}

// compareListing requires items to name exactly the entries of want, with
// their types, file sizes, a file or directory mode, and timestamps in the
// ISO-8601 form the manager parses.
func compareListing(dir string, want map[string]listItem, items []listItem) error {
	seen := map[string]bool{}
	for _, item := range items {
		expected, ok := want[item.Name]
		if !ok {
			return fmt.Errorf("listing of %q has %s %q, which was never uploaded", dir, item.Type, item.Name)
		}
		if seen[item.Name] {
			return fmt.Errorf("listing of %q names %q twice", dir, item.Name)
		}
		seen[item.Name] = true
		if item.Type != expected.Type {
			return fmt.Errorf("listing of %q: %q has type %q, want %q", dir, item.Name, item.Type, expected.Type)
		}
		if item.Type == "FILE" && item.Stat.Size != expected.Stat.Size {
			return fmt.Errorf("listing of %q: %q has size %d, want %d", dir, item.Name, item.Stat.Size, expected.Stat.Size)
		}
		modeType := uint32(item.Stat.Mode) & syscall.S_IFMT
		if (item.Type == "FILE" && modeType != syscall.S_IFREG) || (item.Type == "DIRECTORY" && modeType != syscall.S_IFDIR) {
			return fmt.Errorf("listing of %q: %q has mode %o, which does not match type %s", dir, item.Name, item.Stat.Mode, item.Type)
		}
		for _, stamp := range []string{item.Stat.Created, item.Stat.Modified} {
			if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil || !strings.HasSuffix(stamp, "+00:00") {
				return fmt.Errorf("listing of %q: %q has timestamp %q, want ISO-8601 UTC ending in +00:00", dir, item.Name, stamp)
			}
		}
	}
	if len(seen) != len(want) {
		for name := range want {
			if !seen[name] {
				return fmt.Errorf("listing of %q lacks %q (it has %d of %d entries; a scandir-limit below %d truncates listings)", dir, name, len(seen), len(want), len(want))
			}
		}
	}
	return nil
}

func (r *runner) folderUsage(vfid string) (folderUsage, error) {
	var usage folderUsage
	err := r.manager.call("GET", "/folder/usage", map[string]any{"volume": r.target.volume, "vfid": vfid}, 200, &usage)
	return usage, err
}

func (r *runner) folderUsedBytes(vfid string) (int64, error) {
	var reply struct {
		UsedBytes *int64 `json:"used_bytes"`
	}
	if err := r.manager.call("GET", "/folder/used-bytes", map[string]any{"volume": r.target.volume, "vfid": vfid}, 200, &reply); err != nil {
		return 0, err
	}
	if reply.UsedBytes == nil {
		return 0, fmt.Errorf("GET /folder/used-bytes for %s returned no used_bytes", vfid)
	}
	return *reply.UsedBytes, nil
}

// fsUsage returns GET /folder/fs-usage and requires 0 < used <= capacity.
func (r *runner) fsUsage() (fsUsage, error) {
	var usage fsUsage
	if err := r.manager.call("GET", "/folder/fs-usage", map[string]any{"volume": r.target.volume}, 200, &usage); err != nil {
		return usage, err
	}
	if usage.CapacityBytes <= 0 || usage.UsedBytes <= 0 || usage.UsedBytes > usage.CapacityBytes {
		return usage, fmt.Errorf("GET /folder/fs-usage returned used %d of capacity %d bytes, want 0 < used <= capacity", usage.UsedBytes, usage.CapacityBytes)
	}
	return usage, nil
}

// checkUsage requires GET /folder/usage to count every file and directory
// of the dataset once. Its used_bytes is the sum of lstat sizes, which
// includes directories, so it must be at least the files' bytes. When the
// folder is on this machine, it must equal the sum over the tree on disk.
func (r *runner) checkUsage(usage folderUsage) error {
	wantCount := int64(len(r.data.files) + len(r.data.dirs))
	if usage.FileCount != wantCount {
		return fmt.Errorf("GET /folder/usage returned file_count %d, want %d (%d files and %d directories)", usage.FileCount, wantCount, len(r.data.files), len(r.data.dirs))
	}
	if usage.UsedBytes < r.data.totalBytes() {
		return fmt.Errorf("GET /folder/usage returned used_bytes %d, less than the %d bytes of the files", usage.UsedBytes, r.data.totalBytes())
	}
	if !r.mountLocal {
		return nil
	}
	onDisk, err := diskUsage(r.mountPath)
	if err != nil {
		return err
	}
	if usage.UsedBytes != onDisk.apparent || usage.FileCount != onDisk.entries {
		return fmt.Errorf("GET /folder/usage returned %d entries and %d bytes, but the tree at %s contains %d entries and %d bytes (lstat sizes)",
			usage.FileCount, usage.UsedBytes, r.mountPath, onDisk.entries, onDisk.apparent)
	}
	return nil
}

// checkUsedBytes requires GET /folder/used-bytes (allocated blocks, as du
// reports) to cover the files' bytes, because none of them is sparse. When
// the folder is on this machine, the value must equal the allocation on
// disk within 1%, because writeback can still change block counts.
func (r *runner) checkUsedBytes(used int64) error {
	if used < r.data.totalBytes() {
		return fmt.Errorf("GET /folder/used-bytes returned %d, less than the %d bytes of the files", used, r.data.totalBytes())
	}
	if !r.mountLocal {
		return nil
	}
	onDisk, err := diskUsage(r.mountPath)
	if err != nil {
		return err
	}
	if diff := used - onDisk.allocated; diff > onDisk.allocated/100 || -diff > onDisk.allocated/100 {
		return fmt.Errorf("GET /folder/used-bytes returned %d, but the tree at %s has %d bytes allocated", used, r.mountPath, onDisk.allocated)
	}
	return nil
}

// treeUsage is the entry count and sizes below a directory.
type treeUsage struct {
	entries   int64 // files, directories and anything else, the root excluded
	apparent  int64 // sum of lstat st_size
	dirBytes  int64 // the part of apparent that directories contribute
	allocated int64 // sum of st_blocks*512, hard links counted once
}

func diskUsage(root string) (treeUsage, error) {
	var u treeUsage
	seen := map[[2]uint64]bool{}
	// Entries that vanish during the walk are skipped, because the walk
	// may race with a background deletion.
	err := filepath.WalkDir(root, func(p string, entry fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p != root {
			return nil
		}
		if err != nil {
			return err
		}
		info, err := entry.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		key := [2]uint64{st.Dev, st.Ino}
		if !seen[key] {
			seen[key] = true
			u.allocated += st.Blocks * 512
		}
		if p != root {
			u.entries++
			u.apparent += info.Size()
			if entry.IsDir() {
				u.dirBytes += info.Size()
			}
		}
		return nil
	})
	return u, err
}
