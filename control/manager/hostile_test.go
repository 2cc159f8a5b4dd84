package manager

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// hostileKind is what a hostile path may achieve.
type hostileKind int

const (
	// mustReject paths escape lexically, run through a symlink that leads
	// out, or cannot name a file, so every route responds with 4xx.
	mustReject hostileKind = iota
	// finalLink paths name a symlink in the vfolder that points out of it.
	// Routes that act on the link itself (delete, rename, move, upload
	// target) may succeed, and routes that follow it respond with 4xx.
	finalLink
	// literal paths only look hostile: "%2e%2e" is a name like any other.
	// Any status below 500 is fine, as long as it stays inside the vfolder.
	literal
)

type hostilePath struct {
	label string
	// json is the path as a JSON value in the request body.
	json string
	kind hostileKind
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func hostilePaths() []hostilePath {
	otherRel := "up3/" + qsHex + "/" + folderB[0:2] + "/" + folderB[2:4] + "/" + folderB[4:] + "/secret.txt"
	paths := []hostilePath{
		{"absolute", jsonString("/etc/passwd"), mustReject},
		{"slash", jsonString("/"), mustReject},
		{"dotdot", jsonString(".."), mustReject},
		{"dotdot-slash", jsonString("../"), mustReject},
		{"dotdot-chain", jsonString("../../../../etc/hostname"), mustReject},
		{"a-dotdot-dotdot-b", jsonString("a/../../b"), mustReject},
		{"dot-dotdot", jsonString("./../x"), mustReject},
		{"dir-dotdot-dotdot", jsonString("dir/../../x"), mustReject},
		{"dir-dot-chain", jsonString("dir/./../../.."), mustReject},
		{"nul-inside", jsonString("a\x00b"), mustReject},
		{"nul-only", jsonString("\x00"), mustReject},
		{"path-4097-bytes", jsonString(strings.Repeat("a/", 2048) + "b"), mustReject},
		{"name-256-bytes", jsonString(strings.Repeat("n", 256)), mustReject},
		{"raw-invalid-utf8", "\"bad\xff\xfename\"", mustReject},
		{"lone-low-surrogate", `"bad\udcffname"`, mustReject},
		{"lone-high-surrogate", `"\ud800"`, mustReject},
		{"through-root-link", jsonString("root_link/etc/passwd"), mustReject},
		{"through-abs-link", jsonString("out_abs/canary.txt"), mustReject},
		{"through-up-link", jsonString("up/x"), mustReject},
		{"into-other-vfolder", jsonString(otherRel), mustReject},
		{"through-other-link", jsonString("other_link/secret.txt"), mustReject},
		{"through-loop", jsonString("loop_a/x"), mustReject},
		{"through-self-loop", jsonString("self_loop/x"), mustReject},
		{"through-dangling-abs", jsonString("dangling_abs/x"), mustReject},
		{"through-dangling-rel", jsonString("dangling_rel/x"), mustReject},

		{"link-to-root", jsonString("root_link"), finalLink},
		{"link-to-outside-dir", jsonString("out_abs"), finalLink},
		{"link-to-outside-file", jsonString("out_file"), finalLink},
		{"link-to-parent", jsonString("up"), finalLink},
		{"link-to-other-vfolder", jsonString("other_link"), finalLink},
		{"link-loop", jsonString("loop_a"), finalLink},
		{"link-dangling-abs", jsonString("dangling_abs"), finalLink},
		{"link-dangling-rel", jsonString("dangling_rel"), finalLink},

		{"percent-dotdot", jsonString("%2e%2e/%2e%2e/etc/hostname"), literal},
		{"percent-slash", jsonString("..%2f..%2fetc%2fpasswd"), literal},
		{"percent-only", jsonString("%2F"), literal},
		{"backslashes", jsonString(`..\..\etc`), literal},
		{"tilde", jsonString("~root"), literal},
		{"three-dots", jsonString("..."), literal},
		{"spaces", jsonString("   "), literal},
		{"newline", jsonString("a\nb"), literal},
	}
	return paths
}

// hostileRoute sends one hostile path in one position of one route.
type hostileRoute struct {
	name   string
	method string
	path   string
	// body returns the request body with p in the hostile position.
	body func(p string) string
	// followsLink is set for routes that resolve a final symlink, which
	// must therefore reject finalLink paths.
	followsLink bool
	// multiStatus routes report a rejected path as a failed item of a 207
	// response, next to the items that succeeded.
	multiStatus bool
}

func hostileRoutes() []hostileRoute {
	base := `"volume":"local","vfid":"` + vfidA + `"`
	return []hostileRoute{
		{"mkdir", "POST", "/folder/file/mkdir", func(p string) string { return `{` + base + `,"relpath":` + p + `}` }, true, false},
		{"mkdir-list", "POST", "/folder/file/mkdir", func(p string) string { return `{` + base + `,"relpath":["ok",` + p + `]}` }, true, true},
		{"list", "POST", "/folder/file/list", func(p string) string { return `{` + base + `,"relpath":` + p + `}` }, true, false},
		{"rename-relpath", "POST", "/folder/file/rename", func(p string) string { return `{` + base + `,"relpath":` + p + `,"new_name":"renamed"}` }, false, false},
		{"rename-new-name", "POST", "/folder/file/rename", func(p string) string { return `{` + base + `,"relpath":"file.txt","new_name":` + p + `}` }, false, false},
		{"move-src", "POST", "/folder/file/move", func(p string) string { return `{` + base + `,"src_relpath":` + p + `,"dst_relpath":"dir"}` }, false, false},
		{"move-dst", "POST", "/folder/file/move", func(p string) string { return `{` + base + `,"src_relpath":"file.txt","dst_relpath":` + p + `}` }, false, false},
		{"fetch", "POST", "/folder/file/fetch", func(p string) string { return `{` + base + `,"relpath":` + p + `}` }, true, false},
		{"download", "POST", "/folder/file/download", func(p string) string { return `{` + base + `,"relpath":` + p + `}` }, true, false},
		{"upload", "POST", "/folder/file/upload", func(p string) string { return `{` + base + `,"relpath":` + p + `,"size":5}` }, false, false},
		{"upload-empty", "POST", "/folder/file/upload", func(p string) string { return `{` + base + `,"relpath":` + p + `,"size":0}` }, false, false},
		{"delete", "POST", "/folder/file/delete", func(p string) string { return `{` + base + `,"relpaths":[` + p + `],"recursive":true}` }, false, false},
		{"mount", "GET", "/folder/mount", func(p string) string { return `{` + base + `,"subpath":` + p + `}` }, true, false},
		{"usage", "GET", "/folder/usage", func(p string) string { return `{` + base + `,"relpath":` + p + `}` }, true, false},
	}
}

// hostileFixture is vfolder A with symlinks that point out of it, vfolder B
// of the same quota scope, and a directory outside the volume, each with a
// canary file whose access time shows any read.
type hostileFixture struct {
	h       *harness
	dirA    string
	outside string
	canary  []string
	old     time.Time
}

const (
	canaryOutside = "CANARY-OUTSIDE-THE-VOLUME"
	canaryOther   = "CANARY-IN-THE-OTHER-VFOLDER"
)

func newHostileFixture(t *testing.T, h *harness) *hostileFixture {
	f := &hostileFixture{h: h, outside: memTempDir(t), old: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	f.dirA = h.folder(vfidA)
	dirB := h.folder(vfidB)
	writeFile(t, filepath.Join(f.outside, "canary.txt"), canaryOutside)
	writeFile(t, filepath.Join(dirB, "secret.txt"), canaryOther)
	f.canary = []string{filepath.Join(f.outside, "canary.txt"), filepath.Join(dirB, "secret.txt"), f.outside, dirB}
	f.resetTimes(t)
	return f
}

// resetTimes gives every canary an access time older than its
// modification time, so that with relatime any read or listing moves it.
func (f *hostileFixture) resetTimes(t *testing.T) {
	t.Helper()
	for _, name := range f.canary {
		if err := os.Chtimes(name, f.old, f.old.Add(24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}

// rebuildA recreates vfolder A's contents.
func (f *hostileFixture) rebuildA(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(f.dirA)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(f.dirA, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(f.dirA, "file.txt"), "inside")
	writeFile(t, filepath.Join(f.dirA, "dir", "inner.txt"), "inner")
	otherFromA := "../../../" + folderB[0:2] + "/" + folderB[2:4] + "/" + folderB[4:]
	for name, target := range map[string]string{
		"root_link":    "/",
		"out_abs":      f.outside,
		"out_file":     filepath.Join(f.outside, "canary.txt"),
		"up":           "..",
		"up3":          "../../../..",
		"other_link":   otherFromA,
		"loop_a":       "loop_b",
		"loop_b":       "loop_a",
		"self_loop":    "self_loop",
		"dangling_abs": "/nonexistent/x",
		"dangling_rel": "../../../../nonexistent",
	} {
		symlink(t, target, filepath.Join(f.dirA, name))
	}
}

// snapshot lists every entry of the volume outside vfolder A and outside
// the proxy's own staging, trash and clone directories, and every entry of
// the outside directory, with type, size and modification time.
func (f *hostileFixture) snapshot(t *testing.T) []string {
	t.Helper()
	qsDir := filepath.Join(f.h.mounts["local"], qsHex)
	own := map[string]bool{}
	for _, name := range []string{vfid.StagingDirName, vfid.TrashDirName, vfid.CloneDirName} {
		own[filepath.Join(qsDir, name)] = true
	}
	var list []string
	for _, root := range []string{f.h.mounts["local"], f.outside} {
		err := filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if name == f.dirA || own[name] {
				return filepath.SkipDir
			}
			if name == qsDir {
				// Creating the proxy's own directories changes its size and mtime.
				list = append(list, name)
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			list = append(list, fmt.Sprintf("%s %v %d %d", name, fi.Mode(), fi.Size(), fi.ModTime().UnixNano()))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(list)
	return list
}

// checkCanaries fails the test if a canary was read or changed, and then
// resets the canaries' times. Call it before snapshot, which lists the
// canary directories.
func (f *hostileFixture) checkCanaries(t *testing.T) {
	t.Helper()
	for _, name := range f.canary {
		var st unix.Stat_t
		if err := unix.Lstat(name, &st); err != nil {
			t.Fatalf("canary %s: %v", name, err)
		}
		if st.Atim.Sec != f.old.Unix() {
			t.Errorf("canary %s was read or listed (atime %d)", name, st.Atim.Sec)
		}
	}
	for name, want := range map[string]string{f.canary[0]: canaryOutside, f.canary[1]: canaryOther} {
		if data, err := os.ReadFile(name); err != nil || string(data) != want {
			t.Errorf("canary %s changed: %q, %v", name, data, err)
		}
	}
	f.resetTimes(t)
}

func TestHostilePaths(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	f := newHostileFixture(t, h)
	paths := hostilePaths()
	if len(paths) < 25 {
		t.Fatalf("only %d hostile paths", len(paths))
	}
	fixtureNames := map[string]bool{"file.txt": true, "dir": true, "inner.txt": true, "root_link": true, "out_abs": true, "out_file": true,
		"up": true, "up3": true, "other_link": true, "loop_a": true, "loop_b": true, "self_loop": true, "dangling_abs": true, "dangling_rel": true}

	for _, rt := range hostileRoutes() {
		for i, hp := range paths {
			t.Run(fmt.Sprintf("%s/%02d-%s", rt.name, i, hp.label), func(t *testing.T) {
				f.rebuildA(t)
				before := f.snapshot(t)
				f.resetTimes(t)

				r := h.call(rt.method, rt.path, rt.body(hp.json))
				f.checkCanaries(t)

				mustFail := hp.kind == mustReject || hp.kind == finalLink && rt.followsLink
				switch {
				case !mustFail:
				case rt.multiStatus && r.status == 207:
					failed := r.object(t)["results"].(map[string]any)["failed"].([]any)
					if len(failed) != 1 {
						t.Errorf("207 without the hostile path as its failed item: %s", r.body)
					}
				case r.status < 400 || r.status >= 500:
					t.Errorf("status %d, want 4xx; body %s", r.status, r.body)
				}
				if r.status >= 500 {
					t.Errorf("status %d: a hostile path must never cause a server error; body %s", r.status, r.body)
				}
				if strings.Contains(string(r.body), "CANARY") {
					t.Errorf("response contains canary content: %s", r.body)
				}
				if rt.name == "list" && r.status == 200 {
					for _, item := range r.object(t)["items"].([]any) {
						if name := item.(map[string]any)["name"].(string); !fixtureNames[name] {
							t.Errorf("listing shows %q, which is not in the vfolder", name)
						}
					}
				}
				if after := f.snapshot(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
					t.Errorf("entries outside the vfolder changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
				}
				if !exists(f.dirA) {
					t.Fatalf("the vfolder itself is gone")
				}
			})
		}
	}
}
