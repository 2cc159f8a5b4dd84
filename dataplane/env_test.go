package dataplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bai-storage/storage-proxy/control/testcert"
	"github.com/bai-storage/storage-proxy/control/token"
	"github.com/bai-storage/storage-proxy/control/vfid"
	"github.com/bai-storage/storage-proxy/uring"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// net/http's client keeps idle connections' goroutines until the
		// transport is closed, which each env does; these may still be
		// winding down.
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		// fasthttp's worker pool cleaner notices Stop only after its
		// sleep of MaxIdleWorkerDuration (10 s) ends.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		// fasthttp's process-wide Date header clock runs forever.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}

const testSecret = "test-secret-for-dataplane"

// testMode is one data path configuration. Every transfer test runs once
// per mode.
type testMode struct {
	name     string
	dataPath string
	// tls serves the client API over TLS, as a worker does with
	// ssl-enabled: the copy data path behind crypto/tls.
	tls bool
	// fileIO returns the upload engine and a function that closes it.
	fileIO func(t testing.TB) FileIO
}

var testModes = []testMode{
	{name: "sendfile+syscall", dataPath: DataPathSendfile, fileIO: func(testing.TB) FileIO { return SyscallFileIO{} }},
	{name: "copy+syscall", dataPath: DataPathCopy, fileIO: func(testing.TB) FileIO { return SyscallFileIO{} }},
	{name: "sendfile+uring-syscall", dataPath: DataPathSendfile, fileIO: func(t testing.TB) FileIO {
		e := uring.NewSyscall()
		t.Cleanup(func() { e.Close() })
		return e
	}},
	{name: "copy+io_uring", dataPath: DataPathCopy, fileIO: func(t testing.TB) FileIO {
		e, err := uring.NewRing(uring.Options{})
		if err != nil {
			t.Skipf("io_uring is not available here: %v", err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}},
	{name: "tls+copy+syscall", dataPath: DataPathCopy, tls: true, fileIO: func(testing.TB) FileIO { return SyscallFileIO{} }},
}

// forEachMode runs f as a subtest per mode.
func forEachMode(t *testing.T, f func(t *testing.T, mode testMode)) {
	for _, mode := range testModes {
		t.Run(mode.name, func(t *testing.T) { f(t, mode) })
	}
}

// env is one running Server on 127.0.0.1 with one volume holding one
// vfolder in a quota scope, laid out as the vfs backend does.
type env struct {
	t       testing.TB
	mount   string
	vf      vfid.VFolderID
	vfPath  string
	staging string
	server  *Server
	base    string // "http://127.0.0.1:port", or https:// under TLS
	addr    string // "127.0.0.1:port"
	client  *http.Client
	// tls is the client side of a TLS mode, nil for plain TCP.
	tls  *tls.Config
	logs *syncBuffer
}

// syncBuffer collects log output; it is printed when a test fails.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func randomUUID(t testing.TB) vfid.UUID {
	var u vfid.UUID
	if _, err := rand.Read(u[:]); err != nil {
		t.Fatal(err)
	}
	return u
}

// newEnv starts a Server for mode on a fresh volume; edit adjusts Options.
func newEnv(t testing.TB, mode testMode, edit ...func(*Options)) *env {
	return newEnvAt(t, t.TempDir(), mode, edit...)
}

func newEnvAt(t testing.TB, dir string, mode testMode, edit ...func(*Options)) *env {
	mount, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	qs := vfid.QuotaScopeID{Type: vfid.ScopeUser, UUID: randomUUID(t)}
	vf := vfid.VFolderID{QuotaScope: &qs, Folder: randomUUID(t)}
	e := &env{t: t, mount: mount, vf: vf, vfPath: vf.Path(mount), staging: vf.StagingDir(mount), logs: &syncBuffer{}}
	mustMkdir(t, e.vfPath)
	mustMkdir(t, e.staging)

	opts := Options{
		TokenSecret: []byte(testSecret),
		Volumes:     map[string]string{"local": mount},
		DataPath:    mode.dataPath,
		FileIO:      mode.fileIO(t),
		Version:     "24.09.14-test",
		Logger:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mode.tls {
		pair := testcert.New(t)
		opts.TLS = pair.Server(t)
		e.tls = pair.Client()
	}
	for _, f := range edit {
		f(&opts)
	}
	e.server, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.base = "http://" + e.addr
	if mode.tls {
		e.base = "https://" + e.addr
	}
	served := make(chan error, 1)
	go func() { served <- e.server.Serve(ln) }()

	transport := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16, TLSClientConfig: e.tls}
	e.client = &http.Client{Transport: transport, Timeout: 2 * time.Minute}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.server.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

// dial opens a connection to the server for hand-written requests, with a
// finished TLS handshake in a TLS mode.
func (e *env) dial() (net.Conn, error) {
	if e.tls == nil {
		return net.Dial("tcp", e.addr)
	}
	return tls.Dial("tcp", e.addr, e.tls)
}

func mustMkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// writeFile creates rel inside the vfolder with content.
func (e *env) writeFile(rel string, content []byte) string {
	e.t.Helper()
	p := filepath.Join(e.vfPath, rel)
	mustMkdir(e.t, filepath.Dir(p))
	if err := os.WriteFile(p, content, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) downloadToken(rel string, edit ...func(*token.Download)) string {
	e.t.Helper()
	d := token.Download{Volume: "local", VFID: e.vf, Relpath: rel, Expires: time.Now().Add(time.Hour)}
	for _, f := range edit {
		f(&d)
	}
	tok, err := token.MintDownload([]byte(testSecret), d)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// uploadSession creates an upload session the way the manager API does:
// an empty partial file, or for size 0 the empty target and the done
// marker. It returns the /upload URL with the token.
func (e *env) uploadSession(rel string, size int64, edit ...func(*token.Upload)) (url, session string) {
	e.t.Helper()
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		e.t.Fatal(err)
	}
	session = hex.EncodeToString(id[:])
	u := token.Upload{Volume: "local", VFID: e.vf, Relpath: rel, Size: size, Session: session, Expires: time.Now().Add(time.Hour)}
	for _, f := range edit {
		f(&u)
	}
	tok, err := token.MintUpload([]byte(testSecret), u)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.staging, session), nil, 0o644); err != nil {
		e.t.Fatal(err)
	}
	if size == 0 {
		e.writeFile(rel, nil)
		if err := os.WriteFile(filepath.Join(e.staging, session+doneSuffix), nil, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.base + "/upload?token=" + tok, session
}

// do sends a request and returns the response with its body read.
func (e *env) do(method, url string, body io.Reader, headers map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, redactToken(url), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, redactToken(url), err)
	}
	return resp, data
}

func (e *env) get(url string, headers map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	return e.do(http.MethodGet, url, nil, headers)
}

// patch sends one tus PATCH with a known length.
func (e *env) patch(url string, offset int64, data []byte) (*http.Response, []byte) {
	e.t.Helper()
	return e.do(http.MethodPatch, url, bytes.NewReader(data), map[string]string{
		"Tus-Resumable": "1.0.0",
		"Upload-Offset": itoa64(offset),
		"Content-Type":  "application/offset+octet-stream",
	})
}

func (e *env) head(url string) *http.Response {
	e.t.Helper()
	resp, _ := e.do(http.MethodHead, url, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	return resp
}

func redactToken(url string) string {
	if i := strings.Index(url, "token="); i >= 0 {
		return url[:i] + "token=…"
	}
	return url
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// waitForAccessLog waits up to 10 s until the access log has n lines
// containing substr, which marks requests whose handlers have finished.
func (e *env) waitForAccessLog(substr string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		count := 0
		for _, line := range strings.Split(e.logs.String(), "\n") {
			if strings.Contains(line, "logger=http.access") && strings.Contains(line, substr) {
				count++
			}
		}
		if count >= n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("found %d access log lines with %q after 10 s, want %d", count, substr, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
