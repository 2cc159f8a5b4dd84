package manager

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bai-storage/storage-proxy/control/config"
	"github.com/bai-storage/storage-proxy/control/testcert"
	"github.com/bai-storage/storage-proxy/control/vfid"
	"github.com/bai-storage/storage-proxy/control/volume"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testSecret  = "manager-secret-for-tests"
	testVersion = "24.09.14"
	qsidText    = "user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11"
	qsHex       = "3e1c7c7a5f0a4c519a2d0c6a2b7f4e11"
	folderA     = "9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e"
	folderB     = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	vfidA       = qsidText + "/" + folderA
	vfidB       = qsidText + "/" + folderB
)

var testTokenSecret = []byte("token-secret-for-tests")

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is the real handler behind an httptest server on 127.0.0.1,
// serving real vfs volumes in temporary directories.
type harness struct {
	t      *testing.T
	srv    *httptest.Server
	mounts map[string]string
	vols   map[string]volume.Volume
	logs   *logBuffer
	now    time.Time
}

// harnessOptions change what newHarness builds.
type harnessOptions struct {
	// volumes are the volume names, in config order; default "local".
	volumes []string
	// mounts gives the mount path of a volume name instead of a new one.
	mounts       map[string]string
	scandirLimit int
	maxUpload    int64
	ready        func(context.Context) []Check
}

func newHarness(t *testing.T, ho harnessOptions) *harness {
	t.Helper()
	if len(ho.volumes) == 0 {
		ho.volumes = []string{"local"}
	}
	h := &harness{t: t, mounts: map[string]string{}, vols: map[string]volume.Volume{}, logs: &logBuffer{},
		now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var vols []volume.Volume
	for _, name := range ho.volumes {
		mount := ho.mounts[name]
		if mount == "" {
			mount = memTempDir(t)
			writeFile(t, filepath.Join(mount, "version.txt"), "3")
		}
		v, err := volume.Open(volume.Config{Name: name, Backend: "vfs", Path: mount},
			volume.Options{Logger: logger, ScandirLimit: ho.scandirLimit})
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := v.Close(); err != nil {
				t.Errorf("close volume %s: %v", name, err)
			}
		})
		h.mounts[name], h.vols[name] = mount, v
		vols = append(vols, v)
	}

	handler, err := New(Options{
		Secret:        testSecret,
		Volumes:       vols,
		TokenSecret:   testTokenSecret,
		SessionExpiry: func(t time.Time) time.Time { return t.Add(time.Hour) },
		MaxUploadSize: ho.maxUpload,
		Version:       testVersion,
		Logger:        logger,
		Ready:         ho.ready,
		Now:           func() time.Time { return h.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewUnstartedServer(handler)
	if os.Getenv(tlsEnv) != "" {
		// The listener's TLS settings exactly as the binary builds them
		// from ssl-enabled, ssl-cert and ssl-privkey.
		certPath, keyPath, _ := testcert.Write(t, t.TempDir())
		l := config.Listener{SSLEnabled: true, SSLCert: certPath, SSLPrivkey: keyPath}
		tlsConfig, err := l.ServerTLS()
		if err != nil {
			t.Fatal(err)
		}
		h.srv.TLS = tlsConfig
		h.srv.StartTLS()
	} else {
		h.srv.Start()
	}
	t.Cleanup(h.srv.Close)
	return h
}

// tlsEnv, when set, makes every harness serve over HTTPS. The package's
// tests run once without it, and once more with it, in a child process
// that TestSuiteOverHTTPS starts.
const tlsEnv = "MANAGER_TEST_OVER_HTTPS"

// TestSuiteOverHTTPS runs every other test of this package again with the
// manager API served over TLS, as with [api.manager] ssl-enabled = true.
func TestSuiteOverHTTPS(t *testing.T) {
	if os.Getenv(tlsEnv) != "" {
		t.Skip("this is the run over HTTPS")
	}
	if testing.Short() {
		t.Skip("-short: the suite runs over plain HTTP only")
	}
	cmd := exec.Command(os.Args[0], "-test.count=1", "-test.v", "-test.skip=^TestSuiteOverHTTPS$")
	cmd.Env = append(os.Environ(), tlsEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the suite over HTTPS failed (%v):\n%s", err, out)
	}
	passed := bytes.Count(out, []byte("\n--- PASS: "))
	if passed < 20 {
		t.Fatalf("the suite over HTTPS passed only %d tests:\n%s", passed, out)
	}
	t.Logf("%d tests passed over HTTPS", passed)
}

// memTempDir returns a new directory on /dev/shm, where creating files is
// fast, or a t.TempDir where there is no /dev/shm.
func memTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "manager-test-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// response is one HTTP response of the server.
type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends body as JSON with the auth token. A string or []byte body is
// sent as it is, and nil sends no body.
func (h *harness) call(method, path string, body any) *response {
	h.t.Helper()
	return h.send(method, path, body, http.Header{authHeader: {testSecret}})
}

func (h *harness) send(method, path string, body any, header http.Header) *response {
	h.t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			h.t.Fatal(err)
		}
	}

	req, err := http.NewRequest(method, h.srv.URL+path, bytes.NewReader(data))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}

	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	if (resp.TLS != nil) != (os.Getenv(tlsEnv) != "") {
		h.t.Fatalf("%s %s: answered with TLS state %v, but %s=%q", method, path, resp.TLS != nil, tlsEnv, os.Getenv(tlsEnv))
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	r := &response{status: resp.StatusCode, header: resp.Header, body: out}
	h.checkNoServerPath(method, path, r)
	return r
}

// checkNoServerPath fails the test when a response names a mount path.
// The exceptions are successful responses of GET /volumes and GET
// /folder/mount, which carry one, and of fetch, which carry file bytes.
func (h *harness) checkNoServerPath(method, path string, r *response) {
	h.t.Helper()
	if r.status < 300 && (path == "/volumes" || path == "/folder/mount" || path == "/folder/file/fetch") {
		return
	}
	for _, mount := range h.mounts {
		if strings.Contains(string(r.body), mount) {
			h.t.Errorf("%s %s response %d names the server path %s: %s", method, path, r.status, mount, r.body)
		}
	}
}

// object decodes the response body as a JSON object.
func (r *response) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// expect fails the test unless the response has the status.
func (r *response) expect(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// expectProblem checks status, problem+json content type and the type URI
// suffix, and returns the decoded body.
func (r *response) expectProblem(t *testing.T, status int, code string) map[string]any {
	t.Helper()
	r.expect(t, status)
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	m := r.object(t)
	if want := problemTypePrefix + code; m["type"] != want {
		t.Errorf("type = %v, want %s", m["type"], want)
	}
	if msg, _ := m["msg"].(string); msg == "" {
		t.Errorf("problem without msg: %s", r.body)
	}
	return m
}

// expectFSError checks a 400 {"msg", "errno", "paths"} response. errno 0
// means null.
func (r *response) expectFSError(t *testing.T, errno int) map[string]any {
	t.Helper()
	r.expect(t, http.StatusBadRequest)
	m := r.object(t)
	if errno == 0 {
		if v, ok := m["errno"]; !ok || v != nil {
			t.Errorf("errno = %v (present %v), want null", v, ok)
		}
	} else if m["errno"] != float64(errno) {
		t.Errorf("errno = %v, want %d; body: %s", m["errno"], errno, r.body)
	}
	if _, ok := m["paths"].([]any); !ok {
		t.Errorf("paths is not a list: %s", r.body)
	}
	if _, ok := m["msg"].(string); !ok {
		t.Errorf("msg is not a string: %s", r.body)
	}
	return m
}

// folder creates the quota scope and vfolder id on volume "local" through
// the API and returns the vfolder's directory.
func (h *harness) folder(id string) string {
	h.t.Helper()
	h.call("POST", "/folder/create", map[string]any{"volume": "local", "vfid": id, "options": map[string]any{}}).expect(h.t, http.StatusNoContent)
	return h.dir("local", id)
}

// dir returns the directory of vfolder id on the named volume.
func (h *harness) dir(volumeName, id string) string {
	h.t.Helper()
	parsed, err := vfid.Parse(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return parsed.Path(h.mounts[volumeName])
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}
