package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// mkdirBatch is the manager's limit on relpaths in one mkdir call.
const mkdirBatch = 50

type mkdirResults struct {
	Results struct {
		Success []mkdirItem `json:"success"`
		Failed  []mkdirItem `json:"failed"`
	} `json:"results"`
}

type mkdirItem struct {
	Msg  *string `json:"msg"`
	Item string  `json:"item"`
}

// phaseManager prepares the vfolder as the 24.09 manager does when a user
// creates a folder and uploads a tree into it. It lists the volumes, sets
// the quota scope (which creates it), creates the folder and requests its
// mount path. Then it creates the directories and opens one upload session
// per file.
func (r *runner) phaseManager() error {
	started := time.Now()
	m, vol := r.manager, r.target.volume

	if err := r.checkVolumes(); err != nil {
		return err
	}

	r.qsid = "user:" + newUUID()
	r.vfid = r.qsid + "/" + folderUUID()
	quota := map[string]any{"volume": vol, "qsid": r.qsid, "options": map[string]any{"limit_bytes": int64(1) << 40}}
	if err := m.call("PATCH", "/quota-scope", quota, 204, nil); err != nil {
		return err
	}
	var scope struct {
		UsedBytes  *int64 `json:"used_bytes"`
		LimitBytes *int64 `json:"limit_bytes"`
	}
	if err := m.call("GET", "/quota-scope", map[string]any{"volume": vol, "qsid": r.qsid}, 200, &scope); err != nil {
		return err
	}

	create := map[string]any{"volume": vol, "vfid": r.vfid, "options": map[string]any{}}
	if err := m.call("POST", "/folder/create", create, 204, nil); err != nil {
		return err
	}
	if err := r.checkMount(); err != nil {
		return err
	}
	if err := r.makeDirectories(); err != nil {
		return err
	}
	if err := r.openUploadSessions(); err != nil {
		return err
	}

	summary("manager", m.wireBytes.Load(), len(r.uploadTokens), started,
		fmt.Sprintf("%d calls (JSON bytes on the wire): volumes, quota scope, folder %s, mount, mkdir of %d directories, %d upload sessions",
			m.calls.Load(), r.vfid, len(r.data.dirs), len(r.uploadTokens)))
	return nil
}

// checkVolumes requires GET /volumes to list the target volume with the
// fields the manager reads.
func (r *runner) checkVolumes() error {
	var reply struct {
		Volumes []struct {
			Name         string   `json:"name"`
			Backend      string   `json:"backend"`
			Path         string   `json:"path"`
			FSPrefix     *string  `json:"fsprefix"`
			Capabilities []string `json:"capabilities"`
		} `json:"volumes"`
	}
	if err := r.manager.call("GET", "/volumes", nil, 200, &reply); err != nil {
		return err
	}
	var names []string
	for _, v := range reply.Volumes {
		names = append(names, v.Name)
		if v.Name != r.target.volume {
			continue
		}
		if v.Backend == "" || v.Path == "" || v.FSPrefix == nil || !slices.Contains(v.Capabilities, "vfolder") {
			return fmt.Errorf("GET /volumes: volume %q lacks backend, path, fsprefix or the vfolder capability: %+v", v.Name, v)
		}
		r.volumePath = v.Path
		return nil
	}
	return fmt.Errorf("GET /volumes does not list volume %q (it lists %q)", r.target.volume, names)
}

// checkMount requests the mount path as the manager does at session start.
// When the path exists on this machine it must be an empty directory, and
// later phases check the disk through it.
func (r *runner) checkMount() error {
	var mount struct {
		Path string `json:"path"`
	}
	body := map[string]any{"volume": r.target.volume, "vfid": r.vfid, "subpath": "."}
	if err := r.manager.call("GET", "/folder/mount", body, 200, &mount); err != nil {
		return err
	}
	if !filepath.IsAbs(mount.Path) {
		return fmt.Errorf("GET /folder/mount returned %q, want an absolute path", mount.Path)
	}
	r.mountPath = mount.Path
	entries, err := os.ReadDir(mount.Path)
	if os.IsNotExist(err) {
		return nil // the proxy runs elsewhere
	}
	if err != nil {
		return fmt.Errorf("read the mount path %s: %w", mount.Path, err)
	}
	if len(entries) != 0 {
		return fmt.Errorf("new vfolder %s at %s is not empty: it contains %s", r.vfid, mount.Path, entries[0].Name())
	}
	r.mountLocal = true
	return nil
}

// makeDirectories creates the tree with mkdir calls of up to 50 leaf
// directories each (parents=true, exist_ok=false), which must all succeed.
func (r *runner) makeDirectories() error {
	leaves := r.data.leafDirs()
	for start := 0; start < len(leaves); start += mkdirBatch {
		batch := leaves[start:min(start+mkdirBatch, len(leaves))]
		body := map[string]any{"volume": r.target.volume, "vfid": r.vfid, "relpath": batch, "parents": true, "exist_ok": false}
		var reply mkdirResults
		if err := r.manager.call("POST", "/folder/file/mkdir", body, 200, &reply); err != nil {
			return err
		}
		if len(reply.Results.Failed) != 0 || len(reply.Results.Success) != len(batch) {
			return fmt.Errorf("POST /folder/file/mkdir of %d directories: %d succeeded, failed: %+v", len(batch), len(reply.Results.Success), reply.Results.Failed)
		}
		var got []string
		for _, item := range reply.Results.Success {
			if item.Msg != nil {
				return fmt.Errorf("POST /folder/file/mkdir: success item %q carries msg %q, want null", item.Item, *item.Msg)
			}
			got = append(got, item.Item)
		}
		want := slices.Clone(batch)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("POST /folder/file/mkdir: success items %q, want %q", got, want)
		}
	}
	return nil
}

// openUploadSessions requests one upload token per file, eight calls at a
// time.
func (r *runner) openUploadSessions() error {
	files := r.data.files
	tokens := make([]string, len(files))
	err := parallel(len(files), 8, func(i int) error {
		f := files[i]
		body := map[string]any{"volume": r.target.volume, "vfid": r.vfid, "relpath": f.rel, "size": f.want.size}
		var reply struct {
			Token string `json:"token"`
		}
		if err := r.manager.call("POST", "/folder/file/upload", body, 200, &reply); err != nil {
			return err
		}
		if strings.Count(reply.Token, ".") != 2 {
			return fmt.Errorf("POST /folder/file/upload for %q returned token %q, want a JWT", f.rel, truncate([]byte(reply.Token), 40))
		}
		tokens[i] = reply.Token
		return nil
	})
	if err != nil {
		return err
	}
	r.uploadTokens = make(map[string]string, len(files))
	for i, f := range files {
		r.uploadTokens[f.rel] = tokens[i]
	}
	return nil
}

// downloadTokens requests a download token per relpath (archive false, as
// the manager sends for single files), eight calls at a time.
func (r *runner) downloadTokens(vfid string, relpaths []string) (map[string]string, error) {
	var mu sync.Mutex
	tokens := make(map[string]string, len(relpaths))
	err := parallel(len(relpaths), 8, func(i int) error {
		token, err := r.downloadToken(vfid, relpaths[i], false)
		if err != nil {
			return err
		}
		mu.Lock()
		tokens[relpaths[i]] = token
		mu.Unlock()
		return nil
	})
	return tokens, err
}

func (r *runner) downloadToken(vfid, relpath string, archive bool) (string, error) {
	body := map[string]any{"volume": r.target.volume, "vfid": vfid, "relpath": relpath, "archive": archive, "unmanaged_path": nil}
	var reply struct {
		Token string `json:"token"`
	}
	if err := r.manager.call("POST", "/folder/file/download", body, 200, &reply); err != nil {
		return "", err
	}
	if reply.Token == "" {
		return "", fmt.Errorf("POST /folder/file/download for %q returned no token", relpath)
	}
	return reply.Token, nil
}
