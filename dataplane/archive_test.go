package dataplane

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bai-storage/storage-proxy/control/token"
)

// archiveTree builds a mixed tree under the vfolder's "tree" directory and
// returns the regular files by their path relative to it.
func archiveTree(t *testing.T, e *env) map[string][]byte {
	t.Helper()
	random := make([]byte, 3*mib)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"top.bin":              random,
		"notes.txt":            bytes.Repeat([]byte("compressible text line\n"), 20000),
		"a/b/c.txt":            []byte("deep"),
		"a/photo.JPG":          random[:100000],
		"데이터/설명 \"1\".md":      []byte("unicode name"),
		"empty-file":           nil,
		"only-links/.hidden":   []byte("dotfile"),
		"spaces in name/x y.z": []byte("spaces"),
	}
	for rel, content := range files {
		e.writeFile("tree/"+rel, content)
	}
	mustMkdir(t, filepath.Join(e.vfPath, "tree/a/empty"))
	mustMkdir(t, filepath.Join(e.vfPath, "tree/links-only"))
	outside := filepath.Join(e.mount, "secret.txt")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"tree/link":             outside,
		"tree/a/link2":          "../../../../../../secret.txt",
		"tree/links-only/inner": "../top.bin",
		"tree/dirlink":          "a",
	} {
		if err := os.Symlink(target, filepath.Join(e.vfPath, link)); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func TestArchiveDownload(t *testing.T) {
	unzip, err := exec.LookPath("unzip")
	if err != nil {
		t.Log("unzip is not installed (apt-get install -y unzip); checking archives with archive/zip only")
	}
	for _, compression := range []string{ArchiveStore, ArchiveDeflate} {
		t.Run(compression, func(t *testing.T) {
			forEachMode(t, func(t *testing.T, mode testMode) {
				e := newEnv(t, mode, func(o *Options) { o.ArchiveCompression = compression })
				files := archiveTree(t, e)

				resp, body := e.get(e.downloadURL("tree", "archive=true"), nil)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/zip" {
					t.Errorf("Content-Type %q", got)
				}
				if got := resp.Header.Get("Content-Disposition"); got != `attachment;filename="tree.zip"; filename*=UTF-8''tree.zip` {
					t.Errorf("Content-Disposition %q", got)
				}
				if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 || resp.TransferEncoding[0] != "chunked" {
					t.Errorf("Content-Length %d, Transfer-Encoding %v; want chunked", resp.ContentLength, resp.TransferEncoding)
				}
				checkArchive(t, body, files, []string{"a/empty/", "links-only/"})
				if unzip != "" {
					zipPath := filepath.Join(t.TempDir(), "tree.zip")
					if err := os.WriteFile(zipPath, body, 0o644); err != nil {
						t.Fatal(err)
					}
					if out, err := exec.Command(unzip, "-t", zipPath).CombinedOutput(); err != nil {
						t.Errorf("unzip -t: %v\n%s", err, out)
					}
				}

				// The token's archive claim works like the parameter; HEAD
				// sends the headers only.
				u := e.downloadURL("tree/a", "", func(d *token.Download) { d.Archive = true })
				resp, body = e.get(u, nil)
				if resp.StatusCode != 200 {
					t.Fatalf("archive claim: status %d", resp.StatusCode)
				}
				checkArchive(t, body, map[string][]byte{"b/c.txt": []byte("deep"), "photo.JPG": files["a/photo.JPG"]}, []string{"empty/"})
				resp, body = e.do(http.MethodHead, u, nil, nil)
				if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Type") != "application/zip" {
					t.Errorf("HEAD: status %d, %d body bytes, Content-Type %q", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
				}

				mustMkdir(t, filepath.Join(e.vfPath, "void"))
				resp, body = e.get(e.downloadURL("void", "archive=1"), nil)
				if resp.StatusCode != 200 {
					t.Fatalf("empty directory: status %d", resp.StatusCode)
				}
				checkArchive(t, body, nil, []string{"./"})

				resp, body = e.get(e.downloadURL(".", "archive=yes"), nil)
				if resp.StatusCode != 200 {
					t.Fatalf("vfolder root: status %d", resp.StatusCode)
				}
				if want := filepath.Base(e.vfPath) + ".zip"; !strings.Contains(resp.Header.Get("Content-Disposition"), `filename="`+want+`"`) {
					t.Errorf("vfolder root archive named %q, want %s", resp.Header.Get("Content-Disposition"), want)
				}
			})
		})
	}
}

// checkArchive reads a ZIP and compares it with the expected files and
// directory entries; symlinks must not appear.
func checkArchive(t *testing.T, data []byte, files map[string][]byte, dirs []string) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("not a ZIP: %v", err)
	}
	var gotDirs []string
	seen := map[string]bool{}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			gotDirs = append(gotDirs, f.Name)
			continue
		}
		want, ok := files[f.Name]
		if !ok {
			t.Errorf("unexpected entry %q", f.Name)
			continue
		}
		seen[f.Name] = true
		rc, err := f.Open()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the %d on disk", f.Name, len(got), len(want))
		}
		if strings.HasSuffix(strings.ToLower(f.Name), ".jpg") && f.Method != zip.Store {
			t.Errorf("%s: method %d, want Store for a compressed format", f.Name, f.Method)
		}
	}
	for name := range files {
		if !seen[name] {
			t.Errorf("missing entry %q", name)
		}
	}
	sort.Strings(gotDirs)
	sort.Strings(dirs)
	if strings.Join(gotDirs, "|") != strings.Join(dirs, "|") {
		t.Errorf("directory entries %q, want %q", gotDirs, dirs)
	}
	if len(files) > 0 && !strings.Contains(zr.Comment, "link") {
		t.Errorf("ZIP comment %q does not list the skipped symlinks", zr.Comment)
	}
}
