package dataplane

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/token"
)

const mib = 1 << 20

func headerInt(t *testing.T, resp *http.Response, name string) int64 {
	t.Helper()
	v := resp.Header.Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s header %q is not an integer", name, v)
	}
	return n
}

func expectStatus(t *testing.T, request string, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body %s", request, resp.StatusCode, status, body)
	}
}

func expectOffset(t *testing.T, request string, resp *http.Response, offset int64) {
	t.Helper()
	if got := headerInt(t, resp, "Upload-Offset"); got != offset {
		t.Fatalf("%s: Upload-Offset %d, want %d", request, got, offset)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestUploadOptions(t *testing.T) {
	e := newEnv(t, testModes[0])
	resp, body := e.do(http.MethodOptions, e.base+"/upload", nil, nil)
	expectStatus(t, "OPTIONS", resp, body, 200)
	want := map[string]string{
		"Access-Control-Allow-Origin":   "*",
		"Access-Control-Allow-Headers":  "Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, Content-Type",
		"Access-Control-Expose-Headers": "Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, Content-Type",
		"Access-Control-Allow-Methods":  "*",
		"Tus-Resumable":                 "1.0.0",
		"Tus-Version":                   "1.0.0",
		"Tus-Max-Size":                  "107374182400",
		"X-Content-Type-Options":        "nosniff",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if len(body) != 0 {
		t.Errorf("body %q, want none", body)
	}

	unlimited := newEnv(t, testModes[0], func(o *Options) { o.MaxUploadSize = -1 })
	resp, _ = unlimited.do(http.MethodOptions, unlimited.base+"/upload", nil, nil)
	if v, ok := resp.Header["Tus-Max-Size"]; ok {
		t.Errorf("unlimited: Tus-Max-Size %q, want none", v)
	}
}

// TestUploadSequence sends chunks in order, replayed, with a gap and early,
// then checks completion and the responses for the finished session.
func TestUploadSequence(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		source := pattern(3*mib, 5)
		u, session := e.uploadSession("sub/dir/data.bin", int64(len(source)))

		resp := e.head(u)
		expectStatus(t, "HEAD of a new session", resp, nil, 200)
		expectOffset(t, "HEAD of a new session", resp, 0)
		for k, v := range map[string]string{"Upload-Length": "3145728", "Cache-Control": "no-store", "Tus-Resumable": "1.0.0", "Access-Control-Allow-Origin": "*"} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("HEAD %s: %q, want %q", k, got, v)
			}
		}

		resp, body := e.patch(u, mib, source[mib:2*mib])
		expectStatus(t, "early chunk", resp, body, 409)
		expectOffset(t, "early chunk", resp, 0)

		resp, body = e.patch(u, 0, source[:mib])
		expectStatus(t, "first chunk", resp, body, 204)
		expectOffset(t, "first chunk", resp, mib)

		resp, body = e.patch(u, 0, source[:mib])
		expectStatus(t, "replayed chunk", resp, body, 409)
		expectOffset(t, "replayed chunk", resp, mib)
		p := problem(t, body)
		if p["type"] != typeOffsetMismatch {
			t.Errorf("replayed chunk: type %v", p["type"])
		}
		if data, _ := p["data"].(map[string]any); data["upload_offset"] != float64(mib) {
			t.Errorf("replayed chunk: data %v, want upload_offset %d", p["data"], mib)
		}
		if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Upload-Offset") {
			t.Errorf("409 without the upload CORS headers: %q", got)
		}

		resp, body = e.patch(u, 2*mib, source[2*mib:])
		expectStatus(t, "gap", resp, body, 409)
		expectOffset(t, "gap", resp, mib)
		if got := fileSize(t, filepath.Join(e.staging, session)); got != mib {
			t.Fatalf("partial file is %d bytes after rejected PATCHes, want %d", got, mib)
		}

		resp, body = e.patch(u, mib, source[mib:2*mib])
		expectStatus(t, "second chunk", resp, body, 204)
		resp, body = e.patch(u, 2*mib, source[2*mib:])
		expectStatus(t, "last chunk", resp, body, 204)
		expectOffset(t, "last chunk", resp, 3*mib)

		got, err := os.ReadFile(filepath.Join(e.vfPath, "sub/dir/data.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(got) != sha256.Sum256(source) {
			t.Fatalf("uploaded file differs from the source")
		}
		if _, err := os.Stat(filepath.Join(e.staging, session)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("partial file still exists: %v", err)
		}
		if _, err := os.Stat(filepath.Join(e.staging, session+doneSuffix)); err != nil {
			t.Errorf("done marker: %v", err)
		}

		resp = e.head(u)
		expectStatus(t, "HEAD after completion", resp, nil, 200)
		expectOffset(t, "HEAD after completion", resp, 3*mib)
		// A retried last chunk is an offset mismatch, as on an open
		// session: the client learns the final offset and HEAD confirms
		// it, and a different body racing through another node is never
		// reported as stored.
		resp, body = e.patch(u, 2*mib, source[2*mib:])
		expectStatus(t, "retried last chunk", resp, body, 409)
		expectOffset(t, "retried last chunk", resp, 3*mib)
		if got, _ := os.ReadFile(filepath.Join(e.vfPath, "sub/dir/data.bin")); !bytes.Equal(got, source) {
			t.Errorf("a retried last chunk changed the file")
		}
	})
}

func TestUploadRequestChecks(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		u, session := e.uploadSession("f.bin", mib)
		partial := filepath.Join(e.staging, session)
		chunk := pattern(1000, 1)
		patchWith := func(headers map[string]string) (*http.Response, []byte) {
			h := map[string]string{"Tus-Resumable": "1.0.0"}
			for k, v := range headers {
				h[k] = v
			}
			return e.do(http.MethodPatch, u, bytes.NewReader(chunk), h)
		}

		cases := []struct {
			name    string
			headers map[string]string
			status  int
		}{
			{"missing offset", map[string]string{"Content-Type": "application/offset+octet-stream"}, 400},
			{"negative offset", map[string]string{"Content-Type": "application/offset+octet-stream", "Upload-Offset": "-1"}, 400},
			{"non-numeric offset", map[string]string{"Content-Type": "application/offset+octet-stream", "Upload-Offset": "abc"}, 400},
			{"missing content type", map[string]string{"Upload-Offset": "0"}, 415},
			{"wrong content type", map[string]string{"Upload-Offset": "0", "Content-Type": "application/octet-stream"}, 415},
		}
		for _, c := range cases {
			resp, body := patchWith(c.headers)
			expectStatus(t, c.name, resp, body, c.status)
			if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Tus-Resumable") != "1.0.0" {
				t.Errorf("%s: error answer without the tus CORS headers", c.name)
			}
			if got := fileSize(t, partial); got != 0 {
				t.Fatalf("%s: wrote %d bytes", c.name, got)
			}
		}
		resp, body := patchWith(map[string]string{"Upload-Offset": "0", "Content-Type": "Application/Offset+Octet-Stream; x=1"})
		expectStatus(t, "content type with parameters", resp, body, 204)
	})
}

func TestUploadOversize(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode, func(o *Options) { o.MaxUploadSize = 8 * mib })
		u, session := e.uploadSession("f.bin", mib)
		partial := filepath.Join(e.staging, session)

		resp, body := e.patch(u, 0, pattern(5*mib, 1))
		expectStatus(t, "body longer than the session", resp, body, 413)
		expectOffset(t, "body longer than the session", resp, 0)
		if got := fileSize(t, partial); got != 0 {
			t.Errorf("stored %d bytes of an oversized body", got)
		}

		// A chunked body has no length to check up front.
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < 5; i++ {
				if _, err := pw.Write(pattern(mib, byte(i))); err != nil {
					return
				}
			}
			pw.Close()
		}()
		resp, body = e.do(http.MethodPatch, u, pr, map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
		pr.Close()
		expectStatus(t, "chunked body longer than the session", resp, body, 413)
		if got := fileSize(t, partial); got != 0 {
			t.Errorf("stored %d bytes of an oversized chunked body", got)
		}
		if _, err := os.Stat(filepath.Join(e.vfPath, "f.bin")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("an oversized upload was finalized: %v", err)
		}

		// A chunked body that fits is stored.
		resp, body = e.do(http.MethodPatch, u, io.MultiReader(bytes.NewReader(pattern(mib, 2))),
			map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
		expectStatus(t, "chunked body that fits", resp, body, 204)
		expectOffset(t, "chunked body that fits", resp, mib)

		big, _ := e.uploadSession("big.bin", 9*mib)
		resp, body = e.patch(big, 0, pattern(1000, 1))
		expectStatus(t, "session above the maximum upload size", resp, body, 413)
	})
}

func TestUploadEmptySession(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		u, _ := e.uploadSession("empty.txt", 0)
		if got := fileSize(t, filepath.Join(e.vfPath, "empty.txt")); got != 0 {
			t.Fatalf("empty.txt is %d bytes", got)
		}
		resp := e.head(u)
		expectStatus(t, "HEAD", resp, nil, 200)
		expectOffset(t, "HEAD", resp, 0)
		resp, body := e.patch(u, 0, nil)
		expectStatus(t, "empty PATCH", resp, body, 204)
		expectOffset(t, "empty PATCH", resp, 0)

		// A 0-byte upload over an existing file empties it, even if only
		// the partial file exists when the first HEAD comes.
		e.writeFile("old.txt", []byte("old content"))
		u2, session := e.uploadSession("other.txt", 0, func(u *token.Upload) { u.Relpath = "old.txt" })
		if err := os.Remove(filepath.Join(e.staging, session+doneSuffix)); err != nil {
			t.Fatal(err)
		}
		e.writeFile("old.txt", []byte("old content"))
		resp = e.head(u2)
		expectStatus(t, "HEAD of a 0-byte session over a file", resp, nil, 200)
		if got := fileSize(t, filepath.Join(e.vfPath, "old.txt")); got != 0 {
			t.Errorf("old.txt is %d bytes after a 0-byte upload", got)
		}
	})
}

func TestUploadCompletionTargets(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)

		// An existing file is replaced.
		e.writeFile("existing.txt", []byte("old"))
		u, _ := e.uploadSession("existing.txt", 5)
		resp, body := e.patch(u, 0, []byte("fresh"))
		expectStatus(t, "over an existing file", resp, body, 204)
		if got, _ := os.ReadFile(filepath.Join(e.vfPath, "existing.txt")); string(got) != "fresh" {
			t.Errorf("existing.txt holds %q", got)
		}

		// A directory is never replaced; the bytes already sent are kept.
		u, session := e.uploadSession("target", 10)
		resp, body = e.patch(u, 0, []byte("01234"))
		expectStatus(t, "first half", resp, body, 204)
		mustMkdir(t, filepath.Join(e.vfPath, "target"))
		resp, body = e.patch(u, 5, []byte("56789"))
		expectStatus(t, "onto a directory", resp, body, 409)
		if p := problem(t, body); p["type"] != typeTargetConflict {
			t.Errorf("onto a directory: type %v", p["type"])
		}
		if got := fileSize(t, filepath.Join(e.staging, session)); got != 5 {
			t.Errorf("partial file is %d bytes, want the 5 sent before", got)
		}
		if st, err := os.Stat(filepath.Join(e.vfPath, "target")); err != nil || !st.IsDir() {
			t.Errorf("the directory was replaced: %v", err)
		}

		// A complete partial file left by a stop between flush and rename
		// is finalized by HEAD, which also refuses a directory target.
		u, session = e.uploadSession("late", 4)
		if err := os.WriteFile(filepath.Join(e.staging, session), []byte("done"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustMkdir(t, filepath.Join(e.vfPath, "late"))
		resp = e.head(u)
		expectStatus(t, "HEAD finalizing onto a directory", resp, nil, 409)
		if got := fileSize(t, filepath.Join(e.staging, session)); got != 4 {
			t.Errorf("partial file is %d bytes after a failed finalization", got)
		}
		if err := os.Remove(filepath.Join(e.vfPath, "late")); err != nil {
			t.Fatal(err)
		}
		resp = e.head(u)
		expectStatus(t, "HEAD finalizing", resp, nil, 200)
		expectOffset(t, "HEAD finalizing", resp, 4)
		if got, _ := os.ReadFile(filepath.Join(e.vfPath, "late")); string(got) != "done" {
			t.Errorf("late holds %q", got)
		}
	})
}

func TestUploadTargetContainment(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		outside := filepath.Join(e.mount, "elsewhere")
		mustMkdir(t, outside)
		if err := os.Symlink(outside, filepath.Join(e.vfPath, "out")); err != nil {
			t.Fatal(err)
		}
		e.writeFile("afile", []byte("x"))

		cases := []struct {
			name, relpath, dstDir string
			status                int
		}{
			{"dst_dir climbing out", "x.bin", "../../../../tmp", 400},
			{"dst_dir absolute", "x.bin", "/tmp", 400},
			{"relpath climbing out", "../other/x.bin", "", 400},
			{"relpath absolute", "/etc/x.bin", "", 400},
			{"vfolder root", ".", "", 400},
			{"dst_dir and relpath meeting at the root", "..", "a", 400},
			{"dst_dir through a symlink out", "x.bin", "out", 400},
			{"dst_dir through a symlink out, deeper", "x.bin", "out/new/dir", 400},
			{"file in the way", "x.bin", "afile/sub", 409},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				u, session := e.uploadSession(c.relpath, 3)
				if c.dstDir != "" {
					u += "&dst_dir=" + url.QueryEscape(c.dstDir)
				}
				resp, body := e.patch(u, 0, []byte("abc"))
				expectStatus(t, "PATCH", resp, body, c.status)
				if got := fileSize(t, filepath.Join(e.staging, session)); got != 0 {
					t.Errorf("wrote %d bytes before rejecting", got)
				}
			})
		}
		entries, err := os.ReadDir(outside)
		if err != nil || len(entries) != 0 {
			t.Errorf("files appeared outside the vfolder: %v %v", entries, err)
		}

		u, _ := e.uploadSession("x.bin", 3)
		resp, body := e.patch(u+"&dst_dir=inside/deeper", 0, []byte("abc"))
		expectStatus(t, "dst_dir inside", resp, body, 204)
		if got, _ := os.ReadFile(filepath.Join(e.vfPath, "inside/deeper/x.bin")); string(got) != "abc" {
			t.Errorf("inside/deeper/x.bin holds %q", got)
		}
	})
}

func TestUploadSessionErrors(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		u, session := e.uploadSession("f.bin", 10)

		expired, _ := e.uploadSession("f.bin", 10, func(u *token.Upload) { u.Expires = time.Now().Add(-time.Second) })
		resp, body := e.patch(expired, 0, []byte("0123456789"))
		expectStatus(t, "expired token", resp, body, 400)
		if data, _ := problem(t, body)["data"].(map[string]any); !strings.Contains(fmt.Sprint(data["token"]), "Signature has expired") {
			t.Errorf("expired token: data %v", data)
		}

		resp, body = e.patch(e.base+"/upload", 0, []byte("x"))
		expectStatus(t, "missing token", resp, body, 400)

		if err := os.Remove(filepath.Join(e.staging, session)); err != nil {
			t.Fatal(err)
		}
		resp = e.head(u)
		expectStatus(t, "HEAD of an unknown session", resp, nil, 404)
		resp, body = e.patch(u, 0, []byte("0123456789"))
		expectStatus(t, "PATCH of an unknown session", resp, body, 404)
		if string(body) != `{"type":"https://api.backend.ai/probs/storage/no-such-upload-session","title":"No such upload session"}` {
			t.Errorf("unknown session body %s", body)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("404 without the upload CORS headers")
		}

		// A partial file that cannot be opened is a server fault: 503
		// with Retry-After, never 404.
		mustMkdir(t, filepath.Join(e.staging, session))
		resp, body = e.patch(u, 0, []byte("0123456789"))
		expectStatus(t, "unopenable partial file", resp, body, 503)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}

		// A volume whose mount went away is 503 as well.
		u2, _ := e.uploadSession("g.bin", 10)
		moved := e.mount + ".moved"
		if err := os.Rename(e.mount, moved); err != nil {
			t.Fatal(err)
		}
		resp = e.head(u2)
		if err := os.Rename(moved, e.mount); err != nil {
			t.Fatal(err)
		}
		expectStatus(t, "HEAD with the mount gone", resp, nil, 503)
	})
}

// rawPatch starts a PATCH on a new connection and sends its headers; the
// caller writes the body.
func rawPatch(t *testing.T, e *env, u string, offset, contentLength int64) net.Conn {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := e.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n",
		parsed.RequestURI(), e.addr, offset, contentLength)
	return conn
}

func readRawResponse(t *testing.T, conn net.Conn, timeout time.Duration) *http.Response {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the raw response: %v", err)
	}
	resp.Body.Close()
	return resp
}

func TestUploadInterruptedThenResumed(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		source := pattern(4*mib, 3)
		u, _ := e.uploadSession("resumed.bin", int64(len(source)))

		conn := rawPatch(t, e, u, 0, int64(len(source)))
		sent := mib + 12345
		if _, err := conn.Write(source[:sent]); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		// The server may not have started on the PATCH yet; a HEAD before
		// it would rightly report 0.
		e.waitForAccessLog("method=PATCH", 1)

		resp := e.head(u)
		expectStatus(t, "HEAD after the interruption", resp, nil, 200)
		expectOffset(t, "HEAD after the interruption", resp, int64(sent))

		resp, body := e.patch(u, int64(sent), source[sent:])
		expectStatus(t, "resume", resp, body, 204)
		got, err := os.ReadFile(filepath.Join(e.vfPath, "resumed.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, source) {
			t.Errorf("resumed upload differs from the source")
		}
	})
}

// TestUploadConcurrentPatch sends a second PATCH while a first one is
// actively sending: the second gets 423 and writes nothing.
func TestUploadConcurrentPatch(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		first := pattern(2*mib, 1)
		u, session := e.uploadSession("c.bin", int64(len(first)))

		conn := rawPatch(t, e, u, 0, int64(len(first)))
		var stop atomic.Bool
		sent := make(chan int, 1)
		go func() {
			n := 0
			for !stop.Load() && n < len(first)-64<<10 {
				m, err := conn.Write(first[n : n+64<<10])
				n += m
				if err != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			sent <- n
		}()
		time.Sleep(300 * time.Millisecond)

		resp, body := e.patch(u, 0, pattern(2*mib, 2))
		stop.Store(true)
		n := <-sent
		expectStatus(t, "second PATCH", resp, body, 423)
		conn.Close()

		resp = e.head(u)
		offset := headerInt(t, resp, "Upload-Offset")
		if offset == 0 || offset > int64(n) {
			t.Fatalf("offset %d after the first PATCH sent %d bytes", offset, n)
		}
		got, err := os.ReadFile(filepath.Join(e.staging, session))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, first[:len(got)]) {
			t.Errorf("the partial file holds bytes of the rejected PATCH")
		}
	})
}

// TestUploadStalledPatchTakenOver freezes a client mid-body. A new HEAD
// gets the durable offset within about a second, and the resumed PATCH is
// accepted. The frozen client's late bytes are never written.
func TestUploadStalledPatchTakenOver(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		source := pattern(4*mib, 4)
		u, _ := e.uploadSession("stalled.bin", int64(len(source)))

		conn := rawPatch(t, e, u, 0, int64(len(source)))
		if _, err := conn.Write(source[:mib]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)

		start := time.Now()
		resp := e.head(u)
		if elapsed := time.Since(start); elapsed > 2500*time.Millisecond {
			t.Errorf("HEAD took %v while a PATCH was stalled", elapsed)
		}
		expectStatus(t, "HEAD", resp, nil, 200)
		expectOffset(t, "HEAD", resp, mib)

		resp, body := e.patch(u, mib, source[mib:])
		expectStatus(t, "resumed PATCH", resp, body, 204)

		// The frozen client wakes up: its bytes go nowhere.
		_, _ = conn.Write(pattern(mib, 99))
		got, err := os.ReadFile(filepath.Join(e.vfPath, "stalled.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, source) {
			t.Errorf("the final file differs from the source")
		}
	})
}

func TestUploadIdleTimeout(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode, func(o *Options) { o.UploadIdleTimeout = time.Second })
		u, _ := e.uploadSession("idle.bin", 2*mib)
		conn := rawPatch(t, e, u, 0, 2*mib)
		if _, err := conn.Write(pattern(100000, 1)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp := readRawResponse(t, conn, 5*time.Second)
		if resp.StatusCode != 408 {
			t.Fatalf("status %d, want 408", resp.StatusCode)
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("the idle PATCH ended after %v", elapsed)
		}
		expectOffset(t, "idle PATCH", resp, 100000)
		resp = e.head(u)
		expectOffset(t, "HEAD after the idle PATCH", resp, 100000)
	})
}

// TestUploadConflictWithLargeBody checks that a wrong offset gets 409 before
// the body is sent, with the connection closed after at most about 1 MiB of
// the body was read.
func TestUploadConflictWithLargeBody(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		u, _ := e.uploadSession("big.bin", 2<<30)
		resp, body := e.patch(u, 0, pattern(mib, 1))
		expectStatus(t, "first chunk", resp, body, 204)

		conn := rawPatch(t, e, u, 0, 1<<30)
		var written atomic.Int64
		go func() {
			chunk := make([]byte, 256<<10)
			for {
				n, err := conn.Write(chunk)
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
		start := time.Now()
		resp = readRawResponse(t, conn, 5*time.Second)
		if resp.StatusCode != 409 {
			t.Fatalf("status %d, want 409", resp.StatusCode)
		}
		if !resp.Close {
			t.Errorf("409 without Connection: close")
		}
		expectOffset(t, "409", resp, mib)
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("409 took %v", elapsed)
		}
		conn.Close()
		if w := written.Load(); w > 64*mib {
			t.Errorf("the client could send %d bytes of a rejected body", w)
		}
		resp = e.head(u)
		expectOffset(t, "HEAD after the 409", resp, mib)
	})
}

// faultFileIO injects file system errors into a real FileIO: ENOSPC once
// budget bytes are written, and, while failFsync is set, EIO from every
// Fsync that follows a write.
type faultFileIO struct {
	FileIO
	budget    atomic.Int64
	failFsync atomic.Bool
	wrote     atomic.Bool
}

func (f *faultFileIO) Pwrite(fd int, p []byte, off int64) (int, error) {
	left := f.budget.Load()
	if left <= 0 {
		return 0, unix.ENOSPC
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := f.FileIO.Pwrite(fd, p, off)
	f.budget.Add(-int64(n))
	f.wrote.Store(true)
	return n, err
}

func (f *faultFileIO) Fsync(fd int, datasync bool) error {
	if f.failFsync.Load() && f.wrote.Load() {
		return unix.EIO
	}
	return f.FileIO.Fsync(fd, datasync)
}

func TestUploadDiskFull(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		fault := &faultFileIO{FileIO: mode.fileIO(t)}
		fault.budget.Store(1<<62 - 1)
		e := newEnv(t, mode, func(o *Options) { o.FileIO = fault })
		source := pattern(3*mib, 8)
		u, session := e.uploadSession("full.bin", int64(len(source)))

		fault.budget.Store(mib + 777)
		resp, body := e.patch(u, 0, source[:2*mib])
		expectStatus(t, "PATCH on a full disk", resp, body, 507)
		expectOffset(t, "PATCH on a full disk", resp, mib+777)
		resp = e.head(u)
		expectOffset(t, "HEAD after a full disk", resp, mib+777)

		// A failed flush drops the PATCH's bytes: what reached the disk is
		// unknown.
		fault.budget.Store(1<<62 - 1)
		fault.wrote.Store(false)
		fault.failFsync.Store(true)
		resp, body = e.patch(u, mib+777, source[mib+777:2*mib])
		fault.failFsync.Store(false)
		expectStatus(t, "PATCH with a failing flush", resp, body, 503)
		expectOffset(t, "PATCH with a failing flush", resp, mib+777)
		if got := fileSize(t, filepath.Join(e.staging, session)); got != mib+777 {
			t.Errorf("partial file is %d bytes after a failed flush, want %d", got, mib+777)
		}

		resp, body = e.patch(u, mib+777, source[mib+777:])
		expectStatus(t, "PATCH after space came back", resp, body, 204)
		got, _ := os.ReadFile(filepath.Join(e.vfPath, "full.bin"))
		if !bytes.Equal(got, source) {
			t.Errorf("the final file differs from the source")
		}
	})
}

func TestShutdownLetsPatchFinish(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		source := pattern(2*mib, 6)
		u, _ := e.uploadSession("slow.bin", int64(len(source)))
		conn := rawPatch(t, e, u, 0, int64(len(source)))
		if _, err := conn.Write(source[:mib]); err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(300 * time.Millisecond)
			_, _ = conn.Write(source[mib:])
		}()
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		if err := e.server.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		resp := readRawResponse(t, conn, 5*time.Second)
		if resp.StatusCode != 204 {
			t.Errorf("PATCH during shutdown: status %d, want 204", resp.StatusCode)
		}
		if got, _ := os.ReadFile(filepath.Join(e.vfPath, "slow.bin")); !bytes.Equal(got, source) {
			t.Errorf("the upload did not finish during shutdown")
		}
	})
}

func TestShutdownDeadlineStopsPatch(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		u, session := e.uploadSession("stuck.bin", 4*mib)
		conn := rawPatch(t, e, u, 0, 4*mib)
		if _, err := conn.Write(pattern(mib, 1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		ctx, cancel := contextWithTimeout(300 * time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := e.server.Shutdown(ctx); err == nil {
			t.Errorf("Shutdown returned nil with a PATCH stuck")
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Errorf("Shutdown took %v", elapsed)
		}
		if got := fileSize(t, filepath.Join(e.staging, session)); got != mib {
			t.Errorf("partial file is %d bytes, want the %d sent", got, mib)
		}
		fd, err := unix.Open(filepath.Join(e.staging, session), unix.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Errorf("the session is still locked after Shutdown: %v", err)
		}
	})
}

// TestUploadOverlappedWrites runs the overlapped read and write pipeline,
// which is off by default, through a normal upload and a full disk.
func TestUploadOverlappedWrites(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		fault := &faultFileIO{FileIO: mode.fileIO(t)}
		fault.budget.Store(1<<62 - 1)
		e := newEnv(t, mode, func(o *Options) { o.FileIO = fault })
		e.server.overlapWrites = true
		source := pattern(5*mib+12345, 4)
		u, _ := e.uploadSession("overlap.bin", int64(len(source)))

		fault.budget.Store(2*mib + 99)
		resp, body := e.patch(u, 0, source[:3*mib])
		expectStatus(t, "PATCH on a full disk", resp, body, 507)
		expectOffset(t, "PATCH on a full disk", resp, 2*mib+99)
		fault.budget.Store(1<<62 - 1)
		resp, body = e.patch(u, 2*mib+99, source[2*mib+99:])
		expectStatus(t, "rest", resp, body, 204)
		got, err := os.ReadFile(filepath.Join(e.vfPath, "overlap.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, source) {
			t.Errorf("the uploaded file differs from the source")
		}
	})
}
