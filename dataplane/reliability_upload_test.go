package dataplane

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/token"
)

// TestUploadRandomCuts disconnects a PATCH at random points of its body,
// several times in one upload. After each cut HEAD reports an offset no
// larger than the bytes sent and equal to the partial file's size, and the
// finished file equals the source.
func TestUploadRandomCuts(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		source := pattern(6*mib+333, 11)
		u, session := e.uploadSession("cut.bin", int64(len(source)))
		partial := filepath.Join(e.staging, session)
		rng := rand.New(rand.NewPCG(uint64(len(mode.name)), 7))

		offset := int64(0)
		for cut := 0; cut < 6; cut++ {
			rest := int64(len(source)) - offset
			sent := offset + 1 + rng.Int64N(rest/2)
			conn := rawPatch(t, e, u, offset, rest)
			if _, err := conn.Write(source[offset:sent]); err != nil {
				t.Fatal(err)
			}
			conn.Close()
			e.waitForAccessLog("method=PATCH", cut+1)

			resp := e.head(u)
			expectStatus(t, "HEAD after a cut", resp, nil, 200)
			got := headerInt(t, resp, "Upload-Offset")
			if got < offset || got > sent {
				t.Fatalf("cut %d: offset %d, want between %d and the %d bytes sent", cut, got, offset, sent)
			}
			if size := fileSize(t, partial); size != got {
				t.Fatalf("cut %d: HEAD reports %d but the partial file has %d bytes", cut, got, size)
			}
			offset = got
		}
		resp, body := e.patch(u, offset, source[offset:])
		expectStatus(t, "last PATCH", resp, body, 204)
		got, err := os.ReadFile(filepath.Join(e.vfPath, "cut.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, source) {
			t.Errorf("the finished file differs from the source")
		}
	})
}

// TestUploadAdvertisesExpiry checks that HEAD and PATCH of a session carry
// Upload-Expires (tus Expiration extension) with the token's expiry, after
// which the session cannot be resumed.
func TestUploadAdvertisesExpiry(t *testing.T) {
	e := newEnv(t, testModes[0])
	expires := time.Now().Add(90 * time.Minute).Truncate(time.Second)
	u, _ := e.uploadSession("exp.bin", 10, func(u *token.Upload) { u.Expires = expires })

	check := func(request string, resp *http.Response) {
		t.Helper()
		value := resp.Header.Get("Upload-Expires")
		got, err := http.ParseTime(value)
		if err != nil {
			t.Fatalf("%s: Upload-Expires %q is not an HTTP date: %v", request, value, err)
		}
		if !got.Equal(expires) {
			t.Errorf("%s: Upload-Expires %v, want the token's expiry %v", request, got, expires)
		}
	}
	check("HEAD", e.head(u))
	resp, body := e.patch(u, 0, []byte("01234"))
	expectStatus(t, "PATCH", resp, body, 204)
	check("PATCH", resp)
}

// TestUploadNonASCIINames uploads and downloads names in Korean, with
// emoji, a trailing space and 255 bytes of multi-byte UTF-8. Each is stored
// under its exact name and named by an RFC 5987 filename* on download.
func TestUploadNonASCIINames(t *testing.T) {
	e := newEnv(t, testModes[0])
	names := []string{
		"데이터 세트 ①.csv",
		"emoji 🚀📦.bin",
		"trailing space ",
		strings.Repeat("가", 85),      // 255 bytes
		`naïve "quoted" \ name;.txt`, // quotes, backslash and semicolon
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			content := []byte("content of " + name)
			u, _ := e.uploadSession(name, int64(len(content)))
			resp, body := e.patch(u, 0, content)
			expectStatus(t, "PATCH", resp, body, 204)
			got, err := os.ReadFile(filepath.Join(e.vfPath, name))
			if err != nil {
				t.Fatalf("the file is not stored under its exact name: %v", err)
			}
			if !bytes.Equal(got, content) {
				t.Errorf("stored %q", got)
			}

			resp, body = e.get(e.downloadURL(name, ""), nil)
			expectStatus(t, "download", resp, body, 200)
			if len(resp.Header.Values("Content-Disposition")) != 1 {
				t.Fatalf("Content-Disposition %q, want exactly one", resp.Header.Values("Content-Disposition"))
			}
			if got := resp.Header.Get("Content-Disposition"); !strings.Contains(got, "filename*=UTF-8''") {
				t.Errorf("Content-Disposition %q lacks an RFC 5987 filename*", got)
			}
		})
	}

	// A name of 256 bytes does not fit a directory entry.
	long := strings.Repeat("가", 85) + "x"
	u, _ := e.uploadSession(long, 3)
	resp, body := e.patch(u, 0, []byte("abc"))
	if resp.StatusCode < 400 || resp.StatusCode >= 500 {
		t.Errorf("a 256-byte name: status %d, want 4xx; body %s", resp.StatusCode, body)
	}
}

// TestDownloadNameHeaderInjection downloads a file whose name contains CR, LF
// and quotes: the response has one Content-Disposition and no header taken
// from the name.
func TestDownloadNameHeaderInjection(t *testing.T) {
	e := newEnv(t, testModes[0])
	for _, name := range []string{"a.txt\r\nX-Injected: 1", "a\"; filename*=UTF-8''evil.exe", "b\nX-Injected: 2"} {
		e.writeFile(name, []byte("x"))
		resp, body := e.get(e.downloadURL(name, ""), nil)
		expectStatus(t, fmt.Sprintf("download %q", name), resp, body, 200)
		if v := resp.Header.Values("Content-Disposition"); len(v) != 1 {
			t.Errorf("%q: Content-Disposition %q, want exactly one", name, v)
		}
		if resp.Header.Get("X-Injected") != "" {
			t.Errorf("%q: the name injected a header", name)
		}
		// The quotes stay inside the quoted-string and the filename*
		// parameter: a conforming parser gets the name back, not evil.exe.
		v := resp.Header.Get("Content-Disposition")
		_, params, err := mime.ParseMediaType(v)
		if err != nil {
			t.Errorf("%q: Content-Disposition %q does not parse: %v", name, v, err)
		} else if params["filename"] != name {
			t.Errorf("%q: Content-Disposition %q names %q", name, v, params["filename"])
		}
	}
}

// TestUploadBesideUserUploadFile puts a regular file named ".upload" at the
// vfolder root: it is an ordinary user file, and uploads still work
// because the staging directory lives outside the vfolder.
func TestUploadBesideUserUploadFile(t *testing.T) {
	e := newEnv(t, testModes[0])
	e.writeFile(".upload", []byte("a user's file"))
	u, _ := e.uploadSession("data.bin", 4)
	resp, body := e.patch(u, 0, []byte("data"))
	expectStatus(t, "PATCH", resp, body, 204)
	if got, _ := os.ReadFile(filepath.Join(e.vfPath, ".upload")); string(got) != "a user's file" {
		t.Errorf(".upload contains %q", got)
	}
	if strings.HasPrefix(e.staging, e.vfPath+"/") {
		t.Errorf("the staging directory %s is inside the vfolder %s", e.staging, e.vfPath)
	}
}

// TestDownloadSurvivesFolderDelete removes the vfolder's tree while a
// download of one of its files is in flight: the open descriptor keeps
// the bytes, so the download completes whole.
func TestDownloadSurvivesFolderDelete(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		content := pattern(8*mib, 4)
		e.writeFile("big.bin", content)
		resp, err := e.client.Get(e.downloadURL("big.bin", ""))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		head := make([]byte, 64<<10)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(e.vfPath); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("the download broke after the folder was deleted: %v", err)
		}
		if !bytes.Equal(append(head, rest...), content) {
			t.Errorf("the download differs from the file")
		}
	})
}

// TestManyConcurrentUploads runs 500 upload sessions of 64 KiB at once,
// cancels 10 of them midway, and uploads the same 10 paths again at once
// with new sessions. Every upload completes (or would be rejected with
// 429/423 and Retry-After, which does not happen here).
func TestManyConcurrentUploads(t *testing.T) {
	e := newEnv(t, testModes[0])
	const sessions, size = 500, 64 << 10
	type result struct {
		name   string
		status int
		err    error
	}
	// Sessions are created here, because a test may only fail from its own
	// goroutine.
	urls := make([]string, sessions)
	for i := range urls {
		urls[i], _ = e.uploadSession(fmt.Sprintf("many/%03d.bin", i), size)
	}
	results := make(chan result, sessions)
	var wg sync.WaitGroup
	for i := 0; i < sessions; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("many/%03d.bin", i)
			if i < 10 {
				// Cancelled midway: half the body, then the connection closes.
				results <- result{name: name, status: -1, err: sendHalfPatch(e, urls[i], size, pattern(size/2, byte(i)))}
				return
			}
			req, _ := http.NewRequest(http.MethodPatch, urls[i], bytes.NewReader(pattern(size, byte(i))))
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Offset", "0")
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			resp, err := e.client.Do(req)
			if err != nil {
				results <- result{name: name, err: err}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- result{name: name, status: resp.StatusCode}
		}(i)
	}
	wg.Wait()
	close(results)
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("%s: %v", r.name, r.err)
		case r.status == -1:
		case r.status != 204:
			t.Errorf("%s: status %d, want 204", r.name, r.status)
		}
	}

	// The cancelled sessions are unlocked and report what they stored, and
	// their paths take new sessions at once.
	for i := 0; i < 10; i++ {
		name := fmt.Sprintf("many/%03d.bin", i)
		resp := e.head(urls[i])
		expectStatus(t, "HEAD of cancelled "+name, resp, nil, 200)
		if offset := headerInt(t, resp, "Upload-Offset"); offset > size/2 {
			t.Errorf("%s: offset %d after half of the body was sent", name, offset)
		}
		u, _ := e.uploadSession(name, size)
		resp, body := e.patch(u, 0, pattern(size, byte(i)))
		expectStatus(t, "new session for "+name, resp, body, 204)
	}
	for i := 0; i < sessions; i++ {
		got, err := os.ReadFile(filepath.Join(e.vfPath, fmt.Sprintf("many/%03d.bin", i)))
		if err != nil || !bytes.Equal(got, pattern(size, byte(i))) {
			t.Errorf("many/%03d.bin: %d bytes, %v; want the source", i, len(got), err)
		}
	}
}

// sendHalfPatch starts a PATCH of contentLength bytes on a new connection,
// sends only part of the body and closes the connection.
func sendHalfPatch(e *env, uploadURL string, contentLength int, part []byte) error {
	parsed, err := url.Parse(uploadURL)
	if err != nil {
		return err
	}
	conn, err := e.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", parsed.RequestURI(), e.addr, contentLength)
	if err != nil {
		return err
	}
	_, err = conn.Write(part)
	return err
}
