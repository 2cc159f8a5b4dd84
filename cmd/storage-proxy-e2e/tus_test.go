package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// tusSessions is a minimal tus 1.0 server without the creation extension,
// like the storage proxy's /upload. Each token names a session of a fixed
// size. HEAD returns the offset, and PATCH appends at the given offset and
// keeps the bytes of a body that breaks off.
type tusSessions struct {
	mu   sync.Mutex
	data map[string][]byte
	size map[string]int64
}

func (s *tusSessions) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token := req.URL.Query().Get("token")
	s.mu.Lock()
	size, ok := s.size[token]
	offset := int64(len(s.data[token]))
	s.mu.Unlock()
	if req.URL.Path != "/upload" || !ok {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Tus-Resumable", "1.0.0")
	w.Header().Set("Upload-Length", strconv.FormatInt(size, 10))

	switch req.Method {
	case http.MethodHead:
		w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
		w.WriteHeader(http.StatusOK)
	case http.MethodPatch:
		if req.Header.Get("Upload-Offset") != strconv.FormatInt(offset, 10) {
			http.Error(w, "offset mismatch", http.StatusConflict)
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := req.Body.Read(buf)
			s.mu.Lock()
			s.data[token] = append(s.data[token], buf[:n]...)
			offset = int64(len(s.data[token]))
			s.mu.Unlock()
			if err == io.EOF {
				break
			}
			if err != nil {
				return
			}
		}
		w.Header().Set("Upload-Offset", strconv.FormatInt(offset, 10))
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// tusRunner returns a runner whose tus-dir is this package's tus folder,
// or skips the test when node or tus-js-client is missing.
func tusRunner(t *testing.T) *runner {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("tus", "node_modules", "tus-js-client")); err != nil {
		t.Skip("tus-js-client is not installed: run npm ci in cmd/storage-proxy-e2e/tus")
	}
	return &runner{opts: options{tusDir: "tus"}}
}

func TestTusUploadResumesAfterCut(t *testing.T) {
	testTusResume(t, false)
}

func TestTusUploadResumesAfterCutOverTLS(t *testing.T) {
	testTusResume(t, true)
}

// testTusResume uploads a 5 MiB file through a relay that cuts it after
// 2 MiB, and a 0-byte file directly, and requires checkResume to accept
// the trace and the server to hold the file. With useTLS the server speaks
// HTTPS with a generated certificate that node trusts only through the
// runner's CA file.
func testTusResume(t *testing.T, useTLS bool) {
	r := tusRunner(t)
	dir := t.TempDir()
	const size = 5<<20 + 77
	src := filepath.Join(dir, "big file ①.bin")
	want, err := writePattern(src, size)
	if err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "empty")
	os.WriteFile(small, nil, 0o644)

	sessions := &tusSessions{data: map[string][]byte{}, size: map[string]int64{"big": size, "empty": 0}}
	var server *httptest.Server
	if useTLS {
		files, _ := newTLSFiles(t)
		server = startTLSServer(t, files, sessions)
		r.caFile = files.caFile
	} else {
		server = httptest.NewServer(sessions)
		defer server.Close()
	}
	serverURL, _ := url.Parse(server.URL)
	const cutAfter = 2<<20 + 1234
	relay, err := startCutRelay(serverURL.Host, cutAfter, useTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	relayURL := *serverURL
	relayURL.Host = relay.addr()

	results, err := r.runTus(tusJob{
		Concurrency: 2,
		ChunkSize:   1 << 20,
		RetryDelays: []int{0, 100},
		Files: []tusFile{
			{Path: src, UploadURL: uploadURL(&relayURL, "big"), Size: size, Trace: true},
			{Path: small, UploadURL: uploadURL(serverURL, "empty"), Size: 0},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 {
		t.Fatalf("%d results, want 2: %+v", len(results), results)
	}
	var big *tusResult
	for i := range results {
		if !results[i].OK {
			t.Fatalf("upload of %s failed: %s", results[i].Path, deref(results[i].Error))
		}
		if results[i].Path == src {
			big = &results[i]
		}
	}
	if big == nil {
		t.Fatal("no result for the big file")
	}

	description, err := checkResume(big, relay, size)
	if err != nil {
		t.Fatalf("checkResume: %v\nrequests: %+v", err, big.Requests)
	}
	t.Log(description)
	if !strings.Contains(description, "resumed at server offset") {
		t.Errorf("description %q", description)
	}
	if got := strings.Contains(description, "TLS records"); got != useTLS {
		t.Errorf("description %q mentions TLS records: %v, want %v", description, got, useTLS)
	}
	got, _ := hashReader(strings.NewReader(string(sessions.data["big"])))
	if got != want {
		t.Errorf("server holds %v, want %v", got, want)
	}
}

func TestTusRejectsUntrustedCertificate(t *testing.T) {
	r := tusRunner(t)
	src := filepath.Join(t.TempDir(), "a.txt")
	os.WriteFile(src, []byte("abc"), 0o644)
	files, _ := newTLSFiles(t)
	sessions := &tusSessions{data: map[string][]byte{}, size: map[string]int64{"a": 3}}
	server := startTLSServer(t, files, sessions)
	serverURL, _ := url.Parse(server.URL)

	// No CA file: node has only its default roots.
	results, err := r.runTus(tusJob{
		Concurrency: 1,
		ChunkSize:   1 << 20,
		RetryDelays: []int{},
		Files:       []tusFile{{Path: src, UploadURL: uploadURL(serverURL, "a"), Size: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].OK {
		t.Fatalf("results = %+v, want one failed upload", results)
	}
	if len(sessions.data["a"]) != 0 {
		t.Errorf("the server received %d bytes from a client that cannot verify it", len(sessions.data["a"]))
	}
}

func TestTusReportsUnreachableServer(t *testing.T) {
	r := tusRunner(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "a.txt")
	os.WriteFile(src, []byte("abc"), 0o644)

	// A listener that is closed at once gives a port with nothing behind it.
	server := httptest.NewServer(http.NotFoundHandler())
	serverURL, _ := url.Parse(server.URL)
	server.Close()

	results, err := r.runTus(tusJob{
		Concurrency: 1,
		ChunkSize:   1 << 20,
		RetryDelays: []int{0},
		Files:       []tusFile{{Path: src, UploadURL: uploadURL(serverURL, "x"), Size: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].OK || results[0].Error == nil {
		t.Fatalf("results = %+v, want one failure with an error", results)
	}
	if len(results[0].Retries) != 1 {
		t.Errorf("retries = %+v, want the one that retryDelays [0] allows", results[0].Retries)
	}
}

// resumeTrace returns a traced large-file upload of 100 bytes whose second
// PATCH the relay broke after it had carried 60 bytes, followed by the
// given requests. The relay's counts are those of a resume from offset 55.
func resumeTrace(after ...tusRequest) (*tusResult, *cutRelay) {
	relay := &cutRelay{cutAfter: 60}
	relay.cuts.Store(1)
	relay.upstreamBytes.Store(110)
	relay.payloadBytes.Store(110)
	relay.cutPayload.Store(60)
	res := &tusResult{
		Retries: []tusRetry{{Message: "socket hang up"}},
		Requests: append([]tusRequest{
			{Method: "HEAD", Status: ptr(200), Offset: ptr("0")},
			{Method: "PATCH", UploadOffset: ptr("0"), Status: ptr(204), Offset: ptr("40")},
			{Method: "PATCH", UploadOffset: ptr("40")},
		}, after...),
	}
	return res, relay
}

func ptr[T any](v T) *T { return &v }

func TestCheckResumeAcceptsResume(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("55")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("55"), Status: ptr(204), Offset: ptr("100")},
	)
	if _, err := checkResume(res, relay, 100); err != nil {
		t.Error(err)
	}
}

func TestCheckResumeAcceptsConflictThenHead(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("50")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("50"), Status: ptr(409)},
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("55")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("55"), Status: ptr(204), Offset: ptr("100")},
	)
	if _, err := checkResume(res, relay, 100); err != nil {
		t.Error(err)
	}
}

func TestCheckResumeRejectsRestart(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("0")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("0"), Status: ptr(204), Offset: ptr("100")},
	)
	if _, err := checkResume(res, relay, 100); err == nil {
		t.Error("checkResume accepted a resume from offset 0")
	}
}

func TestCheckResumeRejectsWrongOffset(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("55")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("40"), Status: ptr(204), Offset: ptr("100")},
	)
	if _, err := checkResume(res, relay, 100); err == nil {
		t.Error("checkResume accepted a PATCH from an offset the server never returned")
	}
}

func TestCheckResumeRejectsIncomplete(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("55")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("55"), Status: ptr(204), Offset: ptr("90")},
	)
	if _, err := checkResume(res, relay, 100); err == nil {
		t.Error("checkResume accepted an upload that ended at offset 90 of 100")
	}
}

func TestCheckResumeRejectsOffsetBeyondCut(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("70")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("70"), Status: ptr(204), Offset: ptr("100")},
	)
	if _, err := checkResume(res, relay, 100); err == nil {
		t.Error("checkResume accepted a server offset of 70 after the relay delivered 60 bytes")
	}
}

func TestCheckResumeRejectsWholeResend(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("55")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("55"), Status: ptr(204), Offset: ptr("100")},
	)
	// 100 HTTP bytes after the cut: the whole file went through again.
	relay.upstreamBytes.Store(160)
	relay.payloadBytes.Store(160)
	if _, err := checkResume(res, relay, 100); err == nil {
		t.Error("checkResume accepted a relay that carried the whole file after the cut")
	}
}

func TestCheckResumeRejectsRecordError(t *testing.T) {
	res, relay := resumeTrace(
		tusRequest{Method: "HEAD", Status: ptr(200), Offset: ptr("55")},
		tusRequest{Method: "PATCH", UploadOffset: ptr("55"), Status: ptr(204), Offset: ptr("100")},
	)
	relay.tlsRecords = true
	relay.recordErr = errors.New("record header 50 4f 53 54 20 is not TLS")
	if _, err := checkResume(res, relay, 100); err == nil {
		t.Error("checkResume accepted a relay that could not follow the TLS records")
	}
}
