package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

const deleteTimeout = 3 * time.Minute

// phaseCloneDelete clones the folder as the manager does (same volume, same
// quota scope), checks that the clone's usage equals the source's and that
// its generated files download intact, then deletes the source and waits
// until its space is free.
func (r *runner) phaseCloneDelete() error {
	started := time.Now()
	vol := r.target.volume
	cloneVfid := r.qsid + "/" + folderUUID()
	clone := map[string]any{"src_volume": vol, "src_vfid": r.vfid, "dst_volume": vol, "dst_vfid": cloneVfid}
	if err := r.manager.call("POST", "/folder/clone", clone, 204, nil); err != nil {
		return err
	}
	cloneSeconds := time.Since(started).Seconds()

	cloneUsage, err := r.folderUsage(cloneVfid)
	if err != nil {
		return err
	}
	dirDiff, err := r.compareCloneUsage(cloneVfid, cloneUsage)
	if err != nil {
		return err
	}
	if err := r.checkCloneFiles(cloneVfid); err != nil {
		return err
	}

	freed, deleteSeconds, err := r.deleteSource()
	if err != nil {
		return err
	}

	// Leave nothing behind on a proxy that keeps running.
	if err := r.manager.call("POST", "/folder/delete", map[string]any{"volume": vol, "vfid": cloneVfid}, 204, nil); err != nil {
		return err
	}
	summary("clone", cloneUsage.UsedBytes, int(cloneUsage.FileCount), started,
		fmt.Sprintf("clone took %.1f s; its usage equals the source's but for %+d bytes of directory sizes; source deleted, its directory gone and %d bytes freed %.1f s after the call",
			cloneSeconds, dirDiff, freed, deleteSeconds))
	return nil
}

// compareCloneUsage requires the clone's GET /folder/usage to count as many
// entries as the source's and the same file bytes. used_bytes also adds
// each directory's st_size, which on ext4 depends on the order in which the
// entries were created, so a copy may differ there. When both folders are
// on this machine, each used_bytes must equal its tree on disk and the file
// bytes must be equal exactly. It returns the clone's directory bytes minus
// the source's.
func (r *runner) compareCloneUsage(cloneVfid string, clone folderUsage) (int64, error) {
	if clone.FileCount != r.usage.FileCount {
		return 0, fmt.Errorf("GET /folder/usage of the clone %s returned file_count %d, want the source's %d", cloneVfid, clone.FileCount, r.usage.FileCount)
	}
	var mount struct {
		Path string `json:"path"`
	}
	body := map[string]any{"volume": r.target.volume, "vfid": cloneVfid, "subpath": "."}
	if err := r.manager.call("GET", "/folder/mount", body, 200, &mount); err != nil {
		return 0, err
	}

	fileBytes := r.data.totalBytes()
	if !r.mountLocal {
		// NOTE: without access to the disk the directory part is only
		// bounded: at most twice the source's.
		sourceDirs, cloneDirs := r.usage.UsedBytes-fileBytes, clone.UsedBytes-fileBytes
		if cloneDirs < 0 || cloneDirs > 2*sourceDirs {
			return 0, fmt.Errorf("GET /folder/usage of the clone %s returned used_bytes %d, want the %d file bytes plus directory sizes near the source's %d", cloneVfid, clone.UsedBytes, fileBytes, sourceDirs)
		}
		return cloneDirs - sourceDirs, nil
	}

	source, err := diskUsage(r.mountPath)
	if err != nil {
		return 0, err
	}
	copied, err := diskUsage(mount.Path)
	if err != nil {
		return 0, err
	}
	if clone.UsedBytes != copied.apparent || clone.FileCount != copied.entries {
		return 0, fmt.Errorf("GET /folder/usage of the clone %s returned %d entries and %d bytes, but the tree at %s contains %d entries and %d bytes (lstat sizes)",
			cloneVfid, clone.FileCount, clone.UsedBytes, mount.Path, copied.entries, copied.apparent)
	}
	if got, want := copied.apparent-copied.dirBytes, source.apparent-source.dirBytes; got != want || want != fileBytes {
		return 0, fmt.Errorf("the clone at %s contains %d file bytes, the source %d, want %d for both", mount.Path, got, want, fileBytes)
	}
	return copied.dirBytes - source.dirBytes, nil
}

// checkCloneFiles downloads the generated files but the large one from the
// clone and compares them.
func (r *runner) checkCloneFiles(cloneVfid string) error {
	var files []*fileEntry
	for _, f := range r.data.oddFiles() {
		if f != r.data.large {
			files = append(files, f)
		}
	}
	tokens, err := r.downloadTokens(cloneVfid, relpaths(files))
	if err != nil {
		return err
	}
	dir := filepath.Join(r.workDir, "download", "clone")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var stats downloadStats
	if err := r.curlFiles(dir, files, tokens, &stats); err != nil {
		return fmt.Errorf("clone %s: %w", cloneVfid, err)
	}
	return nil
}

// deleteSource deletes the source folder and waits until its space is
// free, because deletion may run in the background. It returns the bytes
// freed and the seconds from the call until then.
//
// GET /folder/fs-usage covers the whole file system, so on a file system
// that other programs write to, its change cannot be attributed to the
// deletion. When the volume is on this machine, the checks use the disk
// instead. The folder's directory must be gone as soon as the call returns.
// The blocks allocated below the volume path must drop by at least 90% of
// the folder's used-bytes, and then fs-usage must agree with statfs(2) of
// the volume path. Otherwise fs-usage itself must drop by that much.
func (r *runner) deleteSource() (int64, float64, error) {
	vol := r.target.volume
	before, err := r.fsUsage()
	if err != nil {
		return 0, 0, err
	}
	var volumeBefore treeUsage
	if r.mountLocal {
		if volumeBefore, err = diskUsage(r.volumePath); err != nil {
			return 0, 0, err
		}
	}

	called := time.Now()
	if err := r.manager.call("POST", "/folder/delete", map[string]any{"volume": vol, "vfid": r.vfid}, 204, nil); err != nil {
		return 0, 0, err
	}
	if r.mountLocal {
		if _, err := os.Lstat(r.mountPath); !os.IsNotExist(err) {
			return 0, 0, fmt.Errorf("the source folder %s is still at %s after POST /folder/delete returned (lstat: %v)", r.vfid, r.mountPath, err)
		}
	}
	if err := r.manager.call("GET", "/folder/usage", map[string]any{"volume": vol, "vfid": r.vfid}, 404, nil); err != nil {
		return 0, 0, fmt.Errorf("usage of the deleted folder: %w", err)
	}

	want := r.usedBytes * 9 / 10
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var freed int64
		if r.mountLocal {
			volumeNow, err := diskUsage(r.volumePath)
			if err != nil {
				return 0, 0, err
			}
			freed = volumeBefore.allocated - volumeNow.allocated
		} else {
			now, err := r.fsUsage()
			if err != nil {
				return 0, 0, err
			}
			freed = before.UsedBytes - now.UsedBytes
		}
		if freed >= want {
			seconds := time.Since(called).Seconds()
			if r.mountLocal {
				if err := r.checkFSUsageMatchesStatfs(); err != nil {
					return 0, 0, err
				}
			}
			return freed, seconds, nil
		}
		if time.Since(called) > deleteTimeout {
			where := "GET /folder/fs-usage"
			if r.mountLocal {
				where = "the blocks allocated below " + r.volumePath
			}
			return 0, 0, fmt.Errorf("%s after POST /folder/delete of %s, %s dropped by %d bytes, want at least %d (90%% of the folder's %d used bytes)",
				deleteTimeout, r.vfid, where, freed, want, r.usedBytes)
		}
		<-tick.C
	}
}

// checkFSUsageMatchesStatfs requires GET /folder/fs-usage to return the
// capacity and used bytes that statfs(2) of the volume path gives
// (capacity = f_blocks*f_frsize, used = capacity - f_bavail*f_frsize, as
// upstream computes them). Other writers can change the used bytes between
// the readings, so the reply must lie between a statfs before and one after
// it, and a mismatch is retried up to five times.
func (r *runner) checkFSUsageMatchesStatfs() error {
	var lastErr error
	for range 5 {
		low, err := statfsUsage(r.volumePath)
		if err != nil {
			return err
		}
		reply, err := r.fsUsage()
		if err != nil {
			return err
		}
		high, err := statfsUsage(r.volumePath)
		if err != nil {
			return err
		}
		if low.UsedBytes > high.UsedBytes {
			low, high = high, low
		}
		if reply.CapacityBytes == low.CapacityBytes && reply.UsedBytes >= low.UsedBytes && reply.UsedBytes <= high.UsedBytes {
			return nil
		}
		lastErr = fmt.Errorf("GET /folder/fs-usage returned capacity %d and used %d bytes, but statfs of %s gives capacity %d and used between %d and %d",
			reply.CapacityBytes, reply.UsedBytes, r.volumePath, low.CapacityBytes, low.UsedBytes, high.UsedBytes)
	}
	return lastErr
}

func statfsUsage(p string) (fsUsage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(p, &st); err != nil {
		return fsUsage{}, fmt.Errorf("statfs %s: %w", p, err)
	}
	frsize := st.Frsize
	if frsize == 0 {
		frsize = st.Bsize
	}
	capacity := int64(st.Blocks) * frsize
	return fsUsage{CapacityBytes: capacity, UsedBytes: capacity - int64(st.Bavail)*frsize}, nil
}
