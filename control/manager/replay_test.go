package manager

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/token"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

// managerView reads a response the way the 24.09 manager does. A 2xx body
// is used as it is. Any other body must be a JSON object, from which the
// manager takes "msg" (absent is allowed) and keeps the rest as data.
func managerView(t *testing.T, call string, r *response) (ok bool, body map[string]any) {
	t.Helper()
	if r.status < 300 {
		if len(r.body) == 0 {
			return true, nil
		}
		var m map[string]any
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatalf("%s: 2xx body is not a JSON object: %s", call, r.body)
		}
		return true, m
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s: %d response is not a JSON object the manager can read: %s", call, r.status, r.body)
	}
	if msg, present := m["msg"]; present {
		if _, isString := msg.(string); !isString {
			t.Errorf("%s: msg is not a string: %v", call, msg)
		}
	}
	return false, m
}

func wantString(t *testing.T, call string, m map[string]any, key string) string {
	t.Helper()
	s, ok := m[key].(string)
	if !ok {
		t.Errorf("%s: %s = %v (%T), want a string", call, key, m[key], m[key])
	}
	return s
}

func wantInt(t *testing.T, call string, m map[string]any, key string) int64 {
	t.Helper()
	f, ok := m[key].(float64)
	if !ok || f != float64(int64(f)) {
		t.Errorf("%s: %s = %v (%T), want an integer", call, key, m[key], m[key])
	}
	return int64(f)
}

// TestReplayManager2409 replays, in order, the calls a 24.09 manager makes
// over a vfolder's life, and checks every field the manager parses.
func TestReplayManager2409(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	mount := h.mounts["local"]
	do := func(call, method, path string, body any) (bool, map[string]any) {
		t.Helper()
		return managerView(t, call, h.call(method, path, body))
	}

	// Host listing.
	ok, m := do("volumes", "GET", "/volumes", nil)
	vols, _ := m["volumes"].([]any)
	if !ok || len(vols) != 1 {
		t.Fatalf("GET /volumes = %v", m)
	}
	v := vols[0].(map[string]any)
	for _, key := range []string{"name", "backend", "path", "fsprefix"} {
		wantString(t, "volumes", v, key)
	}
	if caps, ok := v["capabilities"].([]any); !ok || len(caps) == 0 {
		t.Errorf("capabilities = %v", v["capabilities"])
	}

	// GraphQL StorageVolume fields.
	ok, m = do("hwinfo", "GET", "/volume/hwinfo", map[string]any{"volume": "local"})
	if !ok || wantString(t, "hwinfo", m, "status") != "healthy" || m["status_info"] != nil {
		t.Errorf("hwinfo = %v", m)
	}
	if md, isMap := m["metadata"].(map[string]any); !isMap {
		t.Errorf("metadata = %v, want an object of strings", m["metadata"])
	} else {
		for k, val := range md {
			if _, isString := val.(string); !isString {
				t.Errorf("metadata[%s] = %v is not a string", k, val)
			}
		}
	}
	ok, m = do("fs-usage", "GET", "/folder/fs-usage", map[string]any{"volume": "local"})
	if !ok || wantInt(t, "fs-usage", m, "capacity_bytes") <= 0 || wantInt(t, "fs-usage", m, "used_bytes") < 0 {
		t.Errorf("fs-usage = %v", m)
	}
	if ok, _ := do("perf-metric", "GET", "/volume/performance-metric", map[string]any{"volume": "local"}); ok {
		t.Errorf("performance metric of vfs must fail")
	}

	// SetQuotaScope, then QuotaScope.details.
	if ok, m := do("set quota scope", "PATCH", "/quota-scope", map[string]any{"volume": "local", "qsid": qsidText, "options": map[string]any{"limit_bytes": 10 << 30}}); !ok {
		t.Fatalf("PATCH /quota-scope: %v", m)
	}
	ok, m = do("quota scope", "GET", "/quota-scope", map[string]any{"volume": "local", "qsid": qsidText})
	if _, has := m["used_bytes"]; !ok || !has {
		t.Errorf("quota scope = %v", m)
	}
	if _, has := m["limit_bytes"]; !has {
		t.Errorf("quota scope lacks limit_bytes: %v", m)
	}

	// Vfolder creation and a session mounting it.
	if ok, m := do("create", "POST", "/folder/create", map[string]any{"volume": "local", "vfid": vfidA, "options": map[string]any{"initial_max_size_for_quota_scope": 10 << 30}}); !ok {
		t.Fatalf("create: %v", m)
	}
	ok, m = do("mount", "GET", "/folder/mount", map[string]any{"volume": "local", "vfid": vfidA, "subpath": "."})
	if host := wantString(t, "mount", m, "path"); !ok || host != h.dir("local", vfidA) {
		t.Errorf("mount path = %q", host)
	}
	r := h.call("POST", "/folder/file/mkdir?volume=local&vfid="+vfidA+"&relpaths="+folderB+"&exist_ok=true", nil)
	if r.status >= 300 {
		t.Errorf(".local mkdir in the query string: %d %s", r.status, r.body)
	}

	// The user's file operations.
	ok, m = do("mkdir", "POST", "/folder/file/mkdir", map[string]any{"volume": "local", "vfid": vfidA, "relpath": []string{"data", "data/raw"}, "parents": true, "exist_ok": false})
	if results, _ := m["results"].(map[string]any); !ok || len(results["success"].([]any)) != 2 {
		t.Errorf("mkdir = %v", m)
	}
	ok, m = do("request-upload", "POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "data/raw/x.csv", "size": 12})
	upload, err := token.VerifyUpload(testTokenSecret, wantString(t, "upload", m, "token"), h.now)
	if !ok || err != nil {
		t.Fatalf("upload token: %v", err)
	}
	finishUpload(t, mount, upload, "a,b,c\n1,2,3\n")
	if ok, _ := do("request-upload empty", "POST", "/folder/file/upload", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "model-definition.yaml", "size": 0}); !ok {
		t.Errorf("0-byte upload failed")
	}
	writeFile(t, filepath.Join(h.dir("local", vfidA), "model-definition.yaml"), "models: []\n")

	ok, m = do("list", "POST", "/folder/file/list", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "data/raw"})
	items, _ := m["items"].([]any)
	if !ok || len(items) != 1 {
		t.Fatalf("list = %v", m)
	}
	item := items[0].(map[string]any)
	if wantString(t, "list", item, "name") != "x.csv" || wantString(t, "list", item, "type") != "FILE" {
		t.Errorf("item = %v", item)
	}
	stat := item["stat"].(map[string]any)
	if wantInt(t, "list", stat, "size") != 12 || wantInt(t, "list", stat, "mode")&0o777 != 0o644 {
		t.Errorf("stat = %v", stat)
	}
	for _, key := range []string{"created", "modified"} {
		if _, err := time.Parse("2006-01-02T15:04:05.999999-07:00", wantString(t, "list", stat, key)); err != nil {
			t.Errorf("stat.%s does not parse as ISO-8601: %v", key, err)
		}
	}

	if ok, m := do("rename", "POST", "/folder/file/rename", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "data/raw/x.csv", "new_name": "y.csv"}); !ok {
		t.Errorf("rename: %v", m)
	}
	if ok, m := do("move", "POST", "/folder/file/move", map[string]any{"volume": "local", "vfid": vfidA, "src_relpath": "data/raw/y.csv", "dst_relpath": "data"}); !ok {
		t.Errorf("move: %v", m)
	}
	ok, m = do("request-download", "POST", "/folder/file/download", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "data/y.csv", "archive": false, "unmanaged_path": nil})
	if _, err := token.VerifyDownload(testTokenSecret, wantString(t, "download", m, "token"), h.now); !ok || err != nil {
		t.Errorf("download token: %v", err)
	}
	r = h.call("POST", "/folder/file/fetch", map[string]any{"volume": "local", "vfid": vfidA, "relpath": "./model-definition.yaml"})
	if r.status != 200 || string(r.body) != "models: []\n" {
		t.Errorf("fetch model definition: %d %q", r.status, r.body)
	}

	// Folder info: the .local directory, data, data/raw, data/y.csv and
	// model-definition.yaml.
	ok, m = do("usage", "GET", "/folder/usage", map[string]any{"volume": "local", "vfid": vfidA})
	if !ok || wantInt(t, "usage", m, "file_count") != 5 || wantInt(t, "usage", m, "used_bytes") <= 0 {
		t.Errorf("usage = %v", m)
	}
	ok, m = do("used-bytes", "GET", "/folder/used-bytes", map[string]any{"volume": "local", "vfid": vfidA})
	if !ok || wantInt(t, "used-bytes", m, "used_bytes") <= 0 {
		t.Errorf("used-bytes = %v", m)
	}
	if ok, _ := do("legacy quota", "GET", "/volume/quota", map[string]any{"volume": "local", "vfid": vfidA}); ok {
		t.Errorf("GET /volume/quota must fail")
	}
	if ok, _ := do("legacy set quota", "PATCH", "/volume/quota", map[string]any{"volume": "local", "vfid": vfidA, "size_bytes": 1 << 30}); ok {
		t.Errorf("PATCH /volume/quota must fail")
	}

	// Clone, cleanup and purge.
	if ok, m := do("clone", "POST", "/folder/clone", map[string]any{"src_volume": "local", "src_vfid": vfidA, "dst_volume": "local", "dst_vfid": vfidB}); !ok {
		t.Errorf("clone: %v", m)
	}
	if ok, m := do("delete-files", "POST", "/folder/file/delete", map[string]any{"volume": "local", "vfid": vfidA, "relpaths": []string{"data"}, "recursive": true}); !ok || m["status"] != "ok" {
		t.Errorf("delete files: %v", m)
	}
	if ok, m := do("unset quota", "DELETE", "/quota-scope/quota", map[string]any{"volume": "local", "qsid": qsidText}); !ok {
		t.Errorf("unset quota: %v", m)
	}
	for _, id := range []string{vfidA, vfidB} {
		if ok, m := do("purge", "POST", "/folder/delete", map[string]any{"volume": "local", "vfid": id}); !ok {
			t.Errorf("delete %s: %v", id, m)
		}
	}
	if ok, m := do("purge again", "POST", "/folder/delete", map[string]any{"volume": "local", "vfid": vfidA}); !ok {
		t.Errorf("second delete must succeed: %v", m)
	}
}

// finishUpload does what the data plane does when an upload completes:
// write the bytes into the partial file, rename it onto the target inside
// the vfolder and create the session's marker.
func finishUpload(t *testing.T, mount string, u token.Upload, content string) {
	t.Helper()
	staging := u.VFID.StagingDir(mount)
	partial := filepath.Join(staging, u.Session)
	if err := os.WriteFile(partial, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(u.VFID.Path(mount), u.Relpath)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(partial, target); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(staging, u.Session+".done"), "")
	if _, err := os.Stat(filepath.Join(mount, qsHex, vfid.StagingDirName)); err != nil {
		t.Errorf("staging directory: %v", err)
	}
}
