package dataplane

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// clientSecret is the content of every file placed outside the vfolder. No
// response of the client API may carry it.
var clientSecret = []byte("SECRET-OUTSIDE-THE-VFOLDER")

// clientHostilePath is one hostile relpath or dst_dir value. Paths with
// escape set climb out, run through a symlink that leads out, or cannot
// name a file, so every route must reject them with 4xx. The others only
// look hostile ("%2e%2e" is a name like any other): any status below 500
// is fine as long as nothing outside the vfolder is touched.
type clientHostilePath struct {
	label, path string
	escape      bool
}

func clientHostilePaths(otherVFolderRel string) []clientHostilePath {
	return []clientHostilePath{
		{"absolute", "/etc/hostname", true},
		{"root", "/", true},
		{"dotdot", "..", true},
		{"dotdot chain", "../../../../../../etc/hostname", true},
		{"dotdot to the mount", "../../../../../secret.txt", true},
		{"a dotdot dotdot b", "a/../../b", true},
		{"dot dotdot", "./../x", true},
		{"nul", "a\x00b", true},
		{"name of 256 bytes", strings.Repeat("n", 256), true},
		{"path of 4097 bytes", strings.Repeat("a/", 2048) + "b", true},
		{"through a link to /", "root_link/etc/hostname", true},
		{"through a link out", "out_dir/secret.txt", true},
		{"through a link to the parent", "up/secret.txt", true},
		{"through a link to another vfolder", "other_link/secret.txt", true},
		{"into another vfolder by dotdot", "../../../../" + otherVFolderRel + "/secret.txt", true},
		{"through a symlink loop", "loop/x", true},

		{"percent-encoded dots", "%2e%2e/%2e%2e/secret.txt", false},
		{"percent-encoded separator", "..%2f..%2fsecret.txt", false},
		{"double-encoded separator", "..%252f..%252fsecret.txt", false},
		{"backslashes", `..\..\secret.txt`, false},
		{"invalid UTF-8", "bad\xff\xfename", false},
		{"double slash", "a//b", false},
	}
}

// hostileTree lays out the links and outside files the hostile paths aim
// at, and returns the path of another vfolder relative to the mount.
func hostileTree(t *testing.T, e *env) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.mount, "secret.txt"), clientSecret, 0o644); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(e.mount, "outside")
	mustMkdir(t, outDir)
	if err := os.WriteFile(filepath.Join(outDir, "secret.txt"), clientSecret, 0o644); err != nil {
		t.Fatal(err)
	}
	qs := vfid.QuotaScopeID{Type: vfid.ScopeUser, UUID: randomUUID(t)}
	other := vfid.VFolderID{QuotaScope: &qs, Folder: randomUUID(t)}

	otherPath := other.Path(e.mount)
	mustMkdir(t, otherPath)
	if err := os.WriteFile(filepath.Join(otherPath, "secret.txt"), clientSecret, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"root_link":  "/",
		"out_dir":    outDir,
		"up":         "..",
		"other_link": otherPath,
		"loop":       "loop",
	} {
		if err := os.Symlink(target, filepath.Join(e.vfPath, link)); err != nil {
			t.Fatal(err)
		}
	}

	e.writeFile("inside.txt", []byte("inside"))
	rel, err := filepath.Rel(e.mount, otherPath)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// outsideSnapshot records every entry of the mount outside the vfolder and
// its staging directory, with size and modification time, so a test can
// prove that nothing there was written, created or deleted.
func outsideSnapshot(t *testing.T, e *env) []string {
	t.Helper()
	var entries []string
	err := filepath.WalkDir(e.mount, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == e.vfPath || p == e.staging {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		entries = append(entries, p+" "+info.Mode().String()+" "+itoa64(info.Size())+" "+info.ModTime().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(entries)
	return entries
}

func expectSnapshotUnchanged(t *testing.T, before, after []string) {
	t.Helper()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("the tree outside the vfolder changed:\nbefore:\n%s\nafter:\n%s",
			strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// checkHostileStatus fails on a 5xx, and on a 2xx for an escaping path.
func checkHostileStatus(t *testing.T, route string, p clientHostilePath, status int, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Errorf("%s: status %d; body %s", route, status, body)
	}
	if p.escape && status < 400 {
		t.Errorf("%s: status %d for an escaping path, want 4xx; body %s", route, status, body)
	}
	if bytes.Contains(body, clientSecret) {
		t.Errorf("%s: the response carries a file from outside the vfolder", route)
	}
}

// TestHostileClientPaths runs every hostile path through every client API
// route that takes one: the download relpath (GET, HEAD, archive) and
// dst_dir, and the upload relpath and dst_dir (PATCH and HEAD). Nothing
// outside the vfolder is read, listed, written or deleted.
func TestHostileClientPaths(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		otherRel := hostileTree(t, e)
		before := outsideSnapshot(t, e)

		for _, p := range clientHostilePaths(otherRel) {
			t.Run(p.label, func(t *testing.T) {
				resp, body := e.get(e.downloadURL(p.path, ""), nil)
				checkHostileStatus(t, "GET /download relpath", p, resp.StatusCode, body)

				resp, body = e.do(http.MethodHead, e.downloadURL(p.path, ""), nil, nil)
				checkHostileStatus(t, "HEAD /download relpath", p, resp.StatusCode, body)

				resp, body = e.get(e.downloadURL(p.path, "archive=true"), nil)
				checkHostileStatus(t, "GET /download archive", p, resp.StatusCode, body)

				resp, body = e.get(e.downloadURL("secret.txt", "dst_dir="+url.QueryEscape(p.path)), nil)
				checkHostileStatus(t, "GET /download dst_dir", p, resp.StatusCode, body)

				u, session := e.uploadSession(p.path, 3)
				resp, body = e.patch(u, 0, []byte("abc"))
				checkHostileStatus(t, "PATCH /upload relpath", p, resp.StatusCode, body)
				// HEAD of an incomplete session writes nothing, so it may
				// return 200 for a target behind a symlink. The PATCH that
				// would write there is what must be rejected.
				resp = e.head(u)
				checkHostileStatus(t, "HEAD /upload relpath", clientHostilePath{label: p.label}, resp.StatusCode, nil)
				if p.escape {
					if got := fileSize(t, filepath.Join(e.staging, session)); got != 0 {
						t.Errorf("PATCH /upload relpath: the partial file has %d bytes", got)
					}
				}

				u, _ = e.uploadSession("hostile.bin", 3)
				u += "&dst_dir=" + url.QueryEscape(p.path)
				resp, body = e.patch(u, 0, []byte("abc"))
				checkHostileStatus(t, "PATCH /upload dst_dir", p, resp.StatusCode, body)
			})
		}

		expectSnapshotUnchanged(t, before, outsideSnapshot(t, e))
		for _, dir := range []string{"/", "/etc", "/tmp"} {
			if _, err := os.Lstat(filepath.Join(dir, "hostile.bin")); err == nil {
				t.Errorf("an upload landed at %s", filepath.Join(dir, "hostile.bin"))
			}
		}
	})
}

// TestHostileArchiveWalk archives a directory whose entries link to /, to
// another vfolder, to a directory outside and to the parent: the ZIP contains
// none of their content.
func TestHostileArchiveWalk(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		otherRel := hostileTree(t, e)
		e.writeFile("tree/ok.txt", []byte("inside"))
		for link, target := range map[string]string{
			"tree/root_link":        "/",
			"tree/deep/other_link":  filepath.Join(e.mount, otherRel),
			"tree/deep/up":          "../../..",
			"tree/deep/secret_link": filepath.Join(e.mount, "secret.txt"),
		} {
			mustMkdir(t, filepath.Dir(filepath.Join(e.vfPath, link)))
			if err := os.Symlink(target, filepath.Join(e.vfPath, link)); err != nil {
				t.Fatal(err)
			}
		}
		resp, body := e.get(e.downloadURL("tree", "archive=true"), nil)
		expectStatus(t, "archive", resp, body, 200)
		if bytes.Contains(body, clientSecret) {
			t.Errorf("the archive carries a file from outside the vfolder")
		}
		if !bytes.Contains(body, []byte("inside")) {
			t.Errorf("the archive lacks tree/ok.txt")
		}
		if bytes.Contains(body, []byte("etc/hostname")) || bytes.Contains(body, []byte("etc/passwd")) {
			t.Errorf("the archive walked through the link to /")
		}
	})
}

// TestDirectorySwappedForSymlink replaces a directory with a symlink out
// of the vfolder between the check and the use: between two PATCHes of one
// upload into it, and continuously while downloads read a file in it. No
// byte is written outside and no download returns the outside file.
func TestDirectorySwappedForSymlink(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		hostileTree(t, e)
		outDir := filepath.Join(e.mount, "outside")
		before := outsideSnapshot(t, e)

		// Upload: the first PATCH writes while "sub" is a real directory,
		// and the last one finds a symlink in its place.
		sub := filepath.Join(e.vfPath, "sub")
		mustMkdir(t, sub)
		u, session := e.uploadSession("sub/x.bin", 6)
		resp, body := e.patch(u, 0, []byte("abc"))
		expectStatus(t, "first PATCH", resp, body, 204)
		if err := os.Rename(sub, sub+".real"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outDir, sub); err != nil {
			t.Fatal(err)
		}
		resp, body = e.patch(u, 3, []byte("def"))
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("last PATCH into a swapped directory: status %d, want 4xx; body %s", resp.StatusCode, body)
		}
		if _, err := os.Lstat(filepath.Join(outDir, "x.bin")); err == nil {
			t.Errorf("the upload was renamed into the directory outside")
		}
		// The target is checked before the body is read, so the rejected
		// PATCH adds nothing and the first PATCH's bytes are kept.
		if got := fileSize(t, filepath.Join(e.staging, session)); got != 3 {
			t.Errorf("partial file has %d bytes, want the 3 of the first PATCH", got)
		}

		// Download: a goroutine flips "flip" between a directory that
		// contains an inside file and a symlink to the outside directory
		// while requests read flip/secret.txt. Both loops are bounded by
		// count and time.
		flip := filepath.Join(e.vfPath, "flip")
		real := filepath.Join(e.vfPath, "flip.real")
		mustMkdir(t, real)
		if err := os.WriteFile(filepath.Join(real, "secret.txt"), []byte("inside"), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(e.vfPath, "flip.link")
		if err := os.Symlink(outDir, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("flip.real", flip); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load() && i < 100000; i++ {
				// rename(2) swaps the name atomically between the inside
				// and the outside link.
				tmp := flip + ".tmp"
				target := "flip.real"
				if i%2 == 0 {
					target = "flip.link"
				}
				_ = os.Remove(tmp)
				if err := os.Symlink(target, tmp); err != nil {
					continue
				}
				_ = os.Rename(tmp, flip)
			}
		}()
		tok := e.downloadURL("flip/secret.txt", "")
		deadline := time.Now().Add(time.Second)
		served := 0
		for i := 0; i < 1000 && time.Now().Before(deadline); i++ {
			resp, body := e.get(tok, nil)
			if bytes.Contains(body, clientSecret) {
				t.Fatalf("request %d read the outside file through the swapped link", i)
			}
			if resp.StatusCode == 200 {
				served++
			}
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("%d downloads served the inside file while the link flipped", served)

		expectSnapshotUnchanged(t, before, outsideSnapshot(t, e))
	})
}
