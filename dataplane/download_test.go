package dataplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/bai-storage/storage-proxy/control/token"
)

// pattern returns n bytes that differ at every position modulo 251, so a
// misplaced range shows up.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i%251) ^ seed
	}
	return b
}

func (e *env) downloadURL(rel string, query string, edit ...func(*token.Download)) string {
	u := e.base + "/download?token=" + e.downloadToken(rel, edit...)
	if query != "" {
		u += "&" + query
	}
	return u
}

// problem decodes a problem+json body.
func problem(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	return p
}

func TestDownloadRange(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		content := pattern(1000, 7)
		e.writeFile("data.bin", content)
		e.writeFile("empty.bin", nil)
		many := make([]string, 1000)
		for i := range many {
			many[i] = fmt.Sprintf("%d-%d", i, i)
		}

		cases := []struct {
			name         string
			file         string
			rangeHeader  string
			status       int
			contentRange string
			from, to     int // expected body = content[from:to]
		}{
			{"no range", "data.bin", "", 200, "", 0, 1000},
			{"first byte", "data.bin", "bytes=0-0", 206, "bytes 0-0/1000", 0, 1},
			{"last byte", "data.bin", "bytes=999-999", 206, "bytes 999-999/1000", 999, 1000},
			{"suffix one", "data.bin", "bytes=-1", 206, "bytes 999-999/1000", 999, 1000},
			{"whole file", "data.bin", "bytes=0-999", 206, "bytes 0-999/1000", 0, 1000},
			{"open range", "data.bin", "bytes=500-", 206, "bytes 500-999/1000", 500, 1000},
			{"end past the end", "data.bin", "bytes=900-5000", 206, "bytes 900-999/1000", 900, 1000},
			{"suffix larger than file", "data.bin", "bytes=-5000", 206, "bytes 0-999/1000", 0, 1000},
			{"unit in upper case", "data.bin", "BYTES=10-19", 206, "bytes 10-19/1000", 10, 20},
			{"start at size", "data.bin", "bytes=1000-", 416, "bytes */1000", 0, 0},
			{"start past the end", "data.bin", "bytes=2000-3000", 416, "bytes */1000", 0, 0},
			{"zero suffix", "data.bin", "bytes=-0", 416, "bytes */1000", 0, 0},
			{"two ranges", "data.bin", "bytes=0-0,5-9", 200, "", 0, 1000},
			{"overlapping ranges", "data.bin", "bytes=0-499,100-599", 200, "", 0, 1000},
			{"thousand ranges", "data.bin", "bytes=" + strings.Join(many, ","), 200, "", 0, 1000},
			{"malformed", "data.bin", "bytes=abc", 200, "", 0, 1000},
			{"reversed", "data.bin", "bytes=5-1", 200, "", 0, 1000},
			{"empty spec", "data.bin", "bytes=", 200, "", 0, 1000},
			{"no equals sign", "data.bin", "bytes 0-1", 200, "", 0, 1000},
			{"double dash", "data.bin", "bytes=--1", 200, "", 0, 1000},
			{"signed start", "data.bin", "bytes=+1-2", 200, "", 0, 1000},
			{"unknown unit", "data.bin", "items=0-1", 200, "", 0, 1000},
			{"zero-byte file open range", "empty.bin", "bytes=0-", 200, "", 0, 0},
			{"zero-byte file suffix", "empty.bin", "bytes=-5", 200, "", 0, 0},
			{"zero-byte file no range", "empty.bin", "", 200, "", 0, 0},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				u := e.downloadURL(c.file, "")
				headers := map[string]string{}
				if c.rangeHeader != "" {
					headers["Range"] = c.rangeHeader
				}
				want := content[c.from:c.to]
				if c.file == "empty.bin" {
					want = nil
				}
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					resp, body := e.do(method, u, nil, headers)
					if resp.StatusCode != c.status {
						t.Fatalf("%s: status %d, want %d", method, resp.StatusCode, c.status)
					}
					if got := resp.Header.Get("Content-Range"); got != c.contentRange {
						t.Errorf("%s: Content-Range %q, want %q", method, got, c.contentRange)
					}
					wantLength := int64(len(want))
					if c.status == 416 {
						wantLength = 0
					}
					if resp.ContentLength != wantLength {
						t.Errorf("%s: Content-Length %d, want %d", method, resp.ContentLength, wantLength)
					}
					if method == http.MethodGet && c.status != 416 && !bytes.Equal(body, want) {
						t.Errorf("GET: body of %d bytes differs from the expected %d bytes", len(body), len(want))
					}
					if method == http.MethodHead && len(body) != 0 {
						t.Errorf("HEAD: got a body of %d bytes", len(body))
					}
				}
			})
		}
	})
}

func TestDownloadHeaders(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		p := e.writeFile("dir/report.csv", pattern(20000, 1))
		mtime := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}

		resp, body := e.get(e.downloadURL("dir/report.csv", "unknown=1&no_cache=true"), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		want := map[string]string{
			"Content-Type":        "application/octet-stream",
			"Content-Disposition": `attachment;filename="report.csv"; filename*=UTF-8''report.csv`,
			"Content-Length":      "20000",
			"Last-Modified":       "Mon, 06 May 2024 07:08:09 GMT",
			"Accept-Ranges":       "bytes",
			"Cache-Control":       "no-store",
		}
		for k, v := range want {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		etag := resp.Header.Get("ETag")
		if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
			t.Errorf("ETag %q is not a strong entity tag", etag)
		}

		resp, _ = e.get(e.downloadURL("dir/report.csv", "no_cache=false"), nil)
		if got := resp.Header.Get("Cache-Control"); got != "" {
			t.Errorf("no_cache=false: Cache-Control %q, want none", got)
		}
		resp, _ = e.get(e.downloadURL("dir/report.csv", "dst_dir=dir")+"", nil)
		if resp.StatusCode != 404 {
			t.Errorf("dst_dir=dir with relpath dir/report.csv: status %d, want 404", resp.StatusCode)
		}
		resp, body = e.get(e.downloadURL("report.csv", "dst_dir=dir"), nil)
		if resp.StatusCode != 200 || len(body) != 20000 {
			t.Errorf("dst_dir=dir: status %d with %d bytes, want 200 with 20000", resp.StatusCode, len(body))
		}

		// A rewrite of the same size within the same second of mtime gets
		// another ETag, because the ETag hashes mtime in nanoseconds.
		e.writeFile("dir/report.csv", pattern(20000, 2))
		if err := os.Chtimes(p, mtime, mtime.Add(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		resp, _ = e.get(e.downloadURL("dir/report.csv", ""), nil)
		if got := resp.Header.Get("ETag"); got == etag {
			t.Errorf("ETag %q did not change for a new file", got)
		}
	})
}

func TestDownloadConditional(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		p := e.writeFile("f.bin", pattern(4096, 3))
		old := time.Now().Add(-time.Hour).Truncate(time.Second)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		u := e.downloadURL("f.bin", "")
		resp, _ := e.get(u, nil)
		etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		earlier := old.Add(-time.Hour).UTC().Format(http.TimeFormat)
		later := old.Add(time.Hour).UTC().Format(http.TimeFormat)

		cases := []struct {
			name    string
			headers map[string]string
			status  int
			bodyLen int
		}{
			{"if-none-match current", map[string]string{"If-None-Match": etag}, 304, 0},
			{"if-none-match weak current", map[string]string{"If-None-Match": "W/" + etag}, 304, 0},
			{"if-none-match in list", map[string]string{"If-None-Match": `"x", ` + etag}, 304, 0},
			{"if-none-match star", map[string]string{"If-None-Match": "*"}, 304, 0},
			{"if-none-match other", map[string]string{"If-None-Match": `"other"`}, 200, 4096},
			{"if-modified-since equal", map[string]string{"If-Modified-Since": lastMod}, 304, 0},
			{"if-modified-since later", map[string]string{"If-Modified-Since": later}, 304, 0},
			{"if-modified-since earlier", map[string]string{"If-Modified-Since": earlier}, 200, 4096},
			{"if-modified-since invalid", map[string]string{"If-Modified-Since": "yesterday"}, 200, 4096},
			{"if-none-match wins over if-modified-since", map[string]string{"If-None-Match": `"other"`, "If-Modified-Since": lastMod}, 200, 4096},
			{"if-match current", map[string]string{"If-Match": etag}, 200, 4096},
			{"if-match star", map[string]string{"If-Match": "*"}, 200, 4096},
			{"if-match other", map[string]string{"If-Match": `"other"`}, 412, 0},
			{"if-match weak", map[string]string{"If-Match": "W/" + etag}, 412, 0},
			{"if-unmodified-since equal", map[string]string{"If-Unmodified-Since": lastMod}, 200, 4096},
			{"if-unmodified-since earlier", map[string]string{"If-Unmodified-Since": earlier}, 412, 0},
			{"if-match checked before if-none-match", map[string]string{"If-Match": `"other"`, "If-None-Match": etag}, 412, 0},
			{"if-range current etag", map[string]string{"Range": "bytes=100-", "If-Range": etag}, 206, 3996},
			{"if-range other etag", map[string]string{"Range": "bytes=100-", "If-Range": `"other"`}, 200, 4096},
			{"if-range weak etag", map[string]string{"Range": "bytes=100-", "If-Range": "W/" + etag}, 200, 4096},
			{"if-range last-modified", map[string]string{"Range": "bytes=100-", "If-Range": lastMod}, 206, 3996},
			{"if-range earlier date", map[string]string{"Range": "bytes=100-", "If-Range": earlier}, 200, 4096},
			{"if-range later date", map[string]string{"Range": "bytes=100-", "If-Range": later}, 200, 4096},
			{"if-range garbage", map[string]string{"Range": "bytes=100-", "If-Range": "garbage"}, 200, 4096},
			{"if-range without range", map[string]string{"If-Range": `"other"`}, 200, 4096},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					resp, body := e.do(method, u, nil, c.headers)
					if resp.StatusCode != c.status {
						t.Fatalf("%s: status %d, want %d", method, resp.StatusCode, c.status)
					}
					if method == http.MethodGet && len(body) != c.bodyLen {
						t.Errorf("GET: body %d bytes, want %d", len(body), c.bodyLen)
					}
					if c.status == 304 && resp.Header.Get("ETag") != etag {
						t.Errorf("%s: 304 ETag %q, want %q", method, resp.Header.Get("ETag"), etag)
					}
				}
			})
		}
	})
}

// TestDownloadIfRangeChangedFile is the resumed-download case: the file was
// replaced by one of the same size within the same second.
func TestDownloadIfRangeChangedFile(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		p := e.writeFile("model.bin", pattern(1<<20, 1))
		u := e.downloadURL("model.bin", "")
		resp, _ := e.get(u, nil)
		oldETag, oldLastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")

		replacement := pattern(1<<20, 2)
		if err := os.WriteFile(p, replacement, 0o644); err != nil {
			t.Fatal(err)
		}
		resp, body := e.get(u, map[string]string{"Range": "bytes=100-", "If-Range": oldETag})
		if resp.StatusCode != 200 || !bytes.Equal(body, replacement) {
			t.Errorf("stale ETag: status %d with %d bytes, want 200 with the whole new file", resp.StatusCode, len(body))
		}
		resp, body = e.get(u, map[string]string{"Range": "bytes=100-", "If-Range": oldLastMod})
		if resp.StatusCode != 200 || !bytes.Equal(body, replacement) {
			t.Errorf("date of a file changed under a second ago: status %d, want 200 with the whole new file", resp.StatusCode)
		}
		resp, _ = e.get(u, nil)
		newETag := resp.Header.Get("ETag")
		resp, body = e.get(u, map[string]string{"Range": "bytes=100-", "If-Range": newETag})
		if resp.StatusCode != 206 || !bytes.Equal(body, replacement[100:]) {
			t.Errorf("current ETag: status %d, want 206 with the rest of the new file", resp.StatusCode)
		}
	})
}

func TestContentDispositionValues(t *testing.T) {
	long := strings.Repeat("가", 83) + "x" // 250 bytes of UTF-8
	cases := []struct {
		name, want string
	}{
		{"report.csv", `attachment;filename="report.csv"; filename*=UTF-8''report.csv`},
		{`résumé "x".txt`, `attachment;filename="rsum \"x\".txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22x%22.txt`},
		{"한글 데이터.csv", `attachment;filename=" .csv"; filename*=UTF-8''%ED%95%9C%EA%B8%80%20%EB%8D%B0%EC%9D%B4%ED%84%B0.csv`},
		{`naïve "quoted" \ name;.txt`, `attachment;filename="nave \"quoted\" \\ name;.txt"; filename*=UTF-8''na%C3%AFve%20%22quoted%22%20%5C%20name%3B.txt`},
		{"100% 'sure'.txt", `attachment;filename="100% 'sure'.txt"; filename*=UTF-8''100%25%20%27sure%27.txt`},
		{"a\r\nX-Injected: 1.txt", `attachment;filename="aX-Injected: 1.txt"; filename*=UTF-8''a%0D%0AX-Injected%3A%201.txt`},
		{"데이터", `attachment;filename="download"; filename*=UTF-8''%EB%8D%B0%EC%9D%B4%ED%84%B0`},
		{"a~b_c-d.e", `attachment;filename="a~b_c-d.e"; filename*=UTF-8''a~b_c-d.e`},
	}
	for _, c := range cases {
		if got := contentDisposition(c.name); got != c.want {
			t.Errorf("contentDisposition(%q)\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	got := contentDisposition(long)
	if strings.ContainsAny(got, "\r\n") || !strings.HasPrefix(got, `attachment;filename="x"; filename*=UTF-8''%EA%B0%80`) {
		t.Errorf("contentDisposition of a 250-byte name: %s", got)
	}
}

func TestDownloadContentDisposition(t *testing.T) {
	names := []string{
		`résumé "x".txt`,
		"한글 데이터.csv",
		`naïve "quoted" \ name;.txt`,
		"100% 'sure'.txt",
		"a\r\nX-Injected: 1.txt",
		"tab\there.txt",
		strings.Repeat("가", 83) + "x",
	}
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		for _, name := range names {
			e.writeFile(name, []byte("content"))
			resp, body := e.get(e.downloadURL(name, ""), nil)
			if resp.StatusCode != 200 || string(body) != "content" {
				t.Errorf("%q: status %d, body %q", name, resp.StatusCode, body)
				continue
			}
			values := resp.Header.Values("Content-Disposition")
			if len(values) != 1 {
				t.Errorf("%q: %d Content-Disposition headers, want 1", name, len(values))
				continue
			}
			if resp.Header.Get("X-Injected") != "" {
				t.Errorf("%q: a header was injected", name)
			}
			_, params, err := mime.ParseMediaType(values[0])
			if err != nil {
				t.Errorf("%q: Content-Disposition %q does not parse: %v", name, values[0], err)
				continue
			}
			if params["filename"] != name {
				t.Errorf("%q: filename* decodes to %q", name, params["filename"])
			}
		}
	})
}

func TestDownloadErrors(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		e.writeFile("dir/file.txt", []byte("inside"))
		outside := filepath.Join(e.mount, "outside.txt")
		if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(e.vfPath, "out")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("..", filepath.Join(e.vfPath, "up")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("dir/file.txt", filepath.Join(e.vfPath, "alias.txt")); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(filepath.Join(e.vfPath, "fifo"), 0o644); err != nil {
			t.Fatal(err)
		}

		notFound := `{"type":"https://api.backend.ai/probs/storage/file-not-found","title":"File not found"}`
		cases := []struct {
			name   string
			url    string
			status int
			body   string // exact body, if set
			check  func(t *testing.T, p map[string]any)
		}{
			{name: "missing token", url: e.base + "/download", status: 400, check: func(t *testing.T, p map[string]any) {
				data, _ := p["data"].(map[string]any)
				if data["token"] != "is required" {
					t.Errorf("data %v, want token: is required", p["data"])
				}
			}},
			{name: "expired token", url: e.downloadURL("dir/file.txt", "", func(d *token.Download) { d.Expires = time.Now().Add(-time.Minute) }), status: 400,
				check: func(t *testing.T, p map[string]any) {
					data, _ := p["data"].(map[string]any)
					if s, _ := data["token"].(string); !strings.Contains(s, "Signature has expired") {
						t.Errorf("data %v, want an expired signature", p["data"])
					}
				}},
			{name: "upload token", url: e.base + "/download?token=" + e.uploadTokenOnly(), status: 400, check: func(t *testing.T, p map[string]any) {
				data, _ := p["data"].(map[string]any)
				claims, _ := data["token"].(map[string]any)
				if claims["op"] != "value is not exactly 'download'" {
					t.Errorf("data %v, want the op claim error", p["data"])
				}
			}},
			{name: "unknown volume", url: e.downloadURL("dir/file.txt", "", func(d *token.Download) { d.Volume = "nfs" }), status: 400,
				check: func(t *testing.T, p map[string]any) {
					if p["type"] != typeInvalidVolume {
						t.Errorf("type %v, want %s", p["type"], typeInvalidVolume)
					}
				}},
			{name: "missing file", url: e.downloadURL("dir/nope.txt", ""), status: 404, body: notFound},
			{name: "relpath climbing out", url: e.downloadURL("../../../../etc/hostname", ""), status: 404, body: notFound},
			{name: "relpath climbing out midway", url: e.downloadURL("dir/../../x", ""), status: 404, body: notFound},
			{name: "dst_dir climbing out", url: e.downloadURL("file.txt", "dst_dir=../.."), status: 404, body: notFound},
			{name: "dst_dir absolute", url: e.downloadURL("hostname", "dst_dir=/etc"), status: 404, body: notFound},
			{name: "symlink to outside", url: e.downloadURL("out", ""), status: 404, body: notFound},
			{name: "symlink to parent", url: e.downloadURL("up/outside.txt", ""), status: 404, body: notFound},
			{name: "percent-encoded dots", url: e.downloadURL("%2e%2e/%2e%2e/etc/hostname", ""), status: 404, body: notFound},
			{name: "directory without archive", url: e.downloadURL("dir", ""), status: 400,
				body: `{"type":"https://api.backend.ai/probs/storage/invalid-api-params","title":"Invalid API parameters (The file is not a regular file.)"}`},
			{name: "fifo", url: e.downloadURL("fifo", ""), status: 400,
				body: `{"type":"https://api.backend.ai/probs/storage/invalid-api-params","title":"Invalid API parameters (The file is not a regular file.)"}`},
			{name: "invalid archive flag", url: e.downloadURL("dir/file.txt", "archive=maybe"), status: 400, check: func(t *testing.T, p map[string]any) {
				data, _ := p["data"].(map[string]any)
				if data["archive"] == nil {
					t.Errorf("data %v, want an archive error", p["data"])
				}
			}},
			{name: "empty dst_dir", url: e.downloadURL("dir/file.txt", "dst_dir="), status: 400},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp, body := e.get(c.url, nil)
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d; body %s", resp.StatusCode, c.status, body)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
					t.Errorf("Content-Type %q, want application/problem+json", got)
				}
				if c.body != "" && string(body) != c.body {
					t.Errorf("body %s, want %s", body, c.body)
				}
				if c.check != nil {
					c.check(t, problem(t, body))
				}
			})
		}

		resp, body := e.get(e.downloadURL("alias.txt", ""), nil)
		if resp.StatusCode != 200 || string(body) != "inside" {
			t.Errorf("symlink inside the folder: status %d, body %q", resp.StatusCode, body)
		}
		if got := resp.Header.Get("Content-Disposition"); !strings.Contains(got, `filename="alias.txt"`) {
			t.Errorf("symlink download named %q, want the link's own name", got)
		}
	})
}

func (e *env) uploadTokenOnly() string {
	tok, err := token.MintUpload([]byte(testSecret), token.Upload{
		Volume: "local", VFID: e.vf, Relpath: "x", Size: 1,
		Session: strings.Repeat("a", 32), Expires: time.Now().Add(time.Hour),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func TestDownloadUnmanagedPath(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		other := t.TempDir()
		if err := os.WriteFile(filepath.Join(other, "data.txt"), []byte("unmanaged"), 0o644); err != nil {
			t.Fatal(err)
		}
		resp, body := e.get(e.downloadURL("data.txt", "", func(d *token.Download) { d.UnmanagedPath = other }), nil)
		if resp.StatusCode != 200 || string(body) != "unmanaged" {
			t.Errorf("status %d, body %q", resp.StatusCode, body)
		}
		resp, _ = e.get(e.downloadURL("../x", "", func(d *token.Download) { d.UnmanagedPath = other }), nil)
		if resp.StatusCode != 404 {
			t.Errorf("escape from the unmanaged path: status %d, want 404", resp.StatusCode)
		}
	})
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, testModes[0])
	resp, body := e.get(e.base+"/", nil)
	if resp.StatusCode != 200 || string(body) != `{"status": "ok", "type": "client-facing", "storage-proxy": "24.09.14-test"}` {
		t.Errorf("GET /: status %d, body %s", resp.StatusCode, body)
	}
	resp, body = e.do(http.MethodPost, e.base+"/download", nil, nil)
	if resp.StatusCode != 405 || string(body) != "405: Method Not Allowed" {
		t.Errorf("POST /download: status %d, body %q", resp.StatusCode, body)
	}
	resp, body = e.do(http.MethodPost, e.base+"/upload", nil, nil)
	if resp.StatusCode != 405 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("POST /upload: status %d, ACAO %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	resp, body = e.get(e.base+"/nowhere", nil)
	if resp.StatusCode != 404 || string(body) != "404: Not Found" {
		t.Errorf("GET /nowhere: status %d, body %q", resp.StatusCode, body)
	}
}

// TestDownloadFileShrinks cuts a file while it is being sent: the client
// must see a broken response, never a complete-looking short one.
func TestDownloadFileShrinks(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		const size = 64 << 20
		p := e.writeFile("big.bin", pattern(size, 9))
		resp, err := e.client.Get(e.downloadURL("big.bin", ""))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		head := make([]byte, 64<<10)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 1<<20); err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil {
			t.Errorf("the response ended cleanly after %d of %d bytes", int64(len(head))+n, size)
		}
		if int64(len(head))+n >= size {
			t.Errorf("received %d bytes of a file cut to 1 MiB", int64(len(head))+n)
		}
	})
}

func TestDownloadQueryRedactedInLog(t *testing.T) {
	e := newEnv(t, testModes[0])
	e.writeFile("f.txt", []byte("x"))
	tok := e.downloadToken("f.txt")
	resp, _ := e.get(e.base+"/download?tok%65n="+url.QueryEscape(tok)+"&x=1", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	logs := e.logs.String()
	if strings.Contains(logs, tok) {
		t.Errorf("the token appears in the log")
	}
	if !strings.Contains(logs, "logger=http.access") || !strings.Contains(logs, "token=REDACTED") {
		t.Errorf("no redacted access log line in:\n%s", logs)
	}
}

// TestReadSmallBody checks the one-write path for small files: the bytes
// land in the response, and a file shorter than its fstat size is left open
// for the streaming body, which reports it, with the response body empty.
func TestReadSmallBody(t *testing.T) {
	s := &Server{}
	path := filepath.Join(t.TempDir(), "small.bin")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ctx fasthttp.RequestCtx
	if !s.readSmallBody(&ctx, f, 2, 5) {
		t.Fatal("readSmallBody failed on a file that has the bytes")
	}
	if got := string(ctx.Response.Body()); got != "23456" {
		t.Errorf("body %q, want %q", got, "23456")
	}
	if _, err := f.Stat(); err == nil {
		t.Error("the file is still open after a successful read")
	}

	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var short fasthttp.RequestCtx
	if s.readSmallBody(&short, f, 4, 10) {
		t.Fatal("readSmallBody succeeded on a file shorter than the length")
	}
	if n := len(short.Response.Body()); n != 0 {
		t.Errorf("the response body has %d bytes after a short read, want 0", n)
	}
	if _, err := f.Stat(); err != nil {
		t.Errorf("the file was closed after a short read: %v", err)
	}
}
