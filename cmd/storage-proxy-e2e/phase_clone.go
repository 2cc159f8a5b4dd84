package main

import (
	"fmt"
	"os"
	"path/filepath"
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
	if cloneUsage != r.usage {
		return fmt.Errorf("GET /folder/usage of the clone %s returned %+v, want the source's %+v", cloneVfid, cloneUsage, r.usage)
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
		fmt.Sprintf("clone took %.1f s and its usage equals the source's; source deleted, its directory gone and %d bytes freed %.1f s after the call",
			cloneSeconds, freed, deleteSeconds))
	return nil
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

// deleteSource deletes the source folder and waits until the volume's used
// bytes drop by at least 90% of the folder's used-bytes, because deletion
// may free the space in the background. When the folder is on this machine
// its directory must be gone as soon as the call returns. It returns the
// bytes freed and the seconds from the call until then.
func (r *runner) deleteSource() (int64, float64, error) {
	vol := r.target.volume
	before, err := r.fsUsage()
	if err != nil {
		return 0, 0, err
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
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		now, err := r.fsUsage()
		if err != nil {
			return 0, 0, err
		}
		freed := before.UsedBytes - now.UsedBytes
		if freed >= want {
			return freed, time.Since(called).Seconds(), nil
		}
		if time.Since(called) > deleteTimeout {
			return 0, 0, fmt.Errorf("%s after POST /folder/delete the volume's used bytes dropped by %d, want at least %d (90%% of the folder's %d used bytes)",
				deleteTimeout, freed, want, r.usedBytes)
		}
		<-tick.C
	}
}
