package config

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// samplePath is the deployment guide's example config, shipped unchanged.
var samplePath = filepath.Join("..", "..", "configs", "sample.toml")

// sampleVolumeLine is the only line of the sample that tests rewrite, because
// /vfroot/local does not exist on test machines.
const sampleVolumeLine = `path = "/vfroot/local"`

// copySample writes the sample into a new temporary directory with the
// volume path pointing at an existing directory there, and returns the path
// of the copy and of the volume directory.
func copySample(t *testing.T) (string, string) {
	t.Helper()
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), sampleVolumeLine) != 1 {
		t.Fatalf("%s must contain the line %s exactly once", samplePath, sampleVolumeLine)
	}

	dir := resolvedTempDir(t)
	volume := filepath.Join(dir, "vfroot-local")
	if err := os.Mkdir(volume, 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), sampleVolumeLine, "path = "+quoteString(volume), 1)
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, volume
}

// resolvedTempDir returns t.TempDir with symbolic links resolved, so that
// paths Load returns can be compared with paths built from it.
func resolvedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoadGuideSample(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skipf("the sample sets num-proc = 2, which needs 2 CPUs, and this host has %d", runtime.NumCPU())
	}
	path, volume := copySample(t)
	cfg, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(sample): %v", err)
	}
	dir := filepath.Dir(path)

	checks := []struct {
		name      string
		got, want any
	}{
		{"File", cfg.File, path},
		{"Dir", cfg.Dir, dir},
		{"etcd.namespace", cfg.Etcd.Namespace, "local"},
		{"etcd.addr", cfg.Etcd.Addr, HostPort{Host: "bai-m1", Port: 8120}},
		{"etcd.user", cfg.Etcd.User, ""},
		{"etcd.password", cfg.Etcd.Password, ""},
		{"etcd.embedded", cfg.Etcd.Embedded, false},
		{"node-id", cfg.StorageProxy.NodeID, "i-bai-m1"},
		{"num-proc", cfg.StorageProxy.NumProc, 2},
		{"event-loop", cfg.StorageProxy.EventLoop, "uvloop"},
		{"scandir-limit", cfg.StorageProxy.ScandirLimit, 1000},
		{"max-upload-size", cfg.StorageProxy.MaxUploadSize, int64(107374182400)},
		{"secret", cfg.StorageProxy.Secret, "secure-token-for-users-download-upload-sessions"},
		{"session-expire", cfg.StorageProxy.SessionExpire, Duration{Seconds: 86400}},
		{"user", cfg.StorageProxy.UID, 1100},
		{"group", cfg.StorageProxy.GID, 1100},
		{"api.client.service-addr", cfg.ClientAPI.ServiceAddr, HostPort{Host: "0.0.0.0", Port: 6021}},
		{"api.client.ssl-enabled", cfg.ClientAPI.SSLEnabled, false},
		{"api.manager.service-addr", cfg.ManagerAPI.ServiceAddr, HostPort{Host: "0.0.0.0", Port: 6022}},
		{"api.manager.ssl-enabled", cfg.ManagerAPI.SSLEnabled, false},
		{"api.manager.secret", cfg.ManagerAPI.Secret, "secure-token-to-authenticate-manager-request"},
		{"debug.enabled", cfg.Debug.Enabled, false},
		{"debug.asyncio", cfg.Debug.Asyncio, false},
		{"debug.enhanced-aiomonitor-task-info", cfg.Debug.EnhancedAiomonitorTaskInfo, true},
		{"logging.level", cfg.Logging.Level, "INFO"},
		{"logging.drivers", cfg.Logging.Drivers, []string{"console", "file"}},
		{"logging.pkg-ns", cfg.Logging.PkgNS, map[string]string{"": "WARNING", "aiotools": "INFO", "aiohttp": "INFO", "ai.backend": "INFO"}},
		{"logging.console.colored", *cfg.Logging.Console.Colored, true},
		{"logging.console.format", cfg.Logging.Console.Format, "simple"},
		{"logging.file", cfg.Logging.File, LoggingFile{Path: filepath.Join(dir, "logs"), Filename: "storage-proxy.log", BackupCount: 10, RotationSize: 10 << 20}},
		{"volumes", cfg.Volumes, []Volume{{Name: "local", Backend: "vfs", Path: volume, FSPrefix: "."}}},
		{"ignored", cfg.Ignored, []string{"storage-proxy.event-loop", "debug.asyncio", "debug.enhanced-aiomonitor-task-info"}},
		{"unknown", len(cfg.Unknown), 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, expected %#v", c.name, c.got, c.want)
		}
	}
	if !strings.HasSuffix(cfg.StorageProxy.PIDFile, "/bai/storage-proxy/storage_proxy.pid") || !filepath.IsAbs(cfg.StorageProxy.PIDFile) {
		t.Errorf("pid-file = %q, expected the absolute sample path", cfg.StorageProxy.PIDFile)
	}
}

// TestSampleDocumentsDefaults uncomments the documentation of our keys at the
// end of the sample, adds it to the sample and checks that every documented
// value loads and, except the example URLs, equals the default.
func TestSampleDocumentsDefaults(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skipf("the sample sets num-proc = 2, which needs 2 CPUs, and this host has %d", runtime.NumCPU())
	}
	path, _ := copySample(t)
	defaults, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(sample): %v", err)
	}

	documented := uncommentedDocumentation(t)
	if len(documented) != 2 || len(documented["storage-proxy"]) == 0 {
		t.Fatalf("documentation of our keys = %v, expected [etcd] and [storage-proxy] tables", documented)
	}
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		t.Fatal(err)
	}
	for table, keys := range documented {
		for key, value := range keys {
			raw[table].(map[string]any)[key] = value
		}
	}
	withDocs := filepath.Join(filepath.Dir(path), "with-docs.toml")
	writeTOML(t, withDocs, raw)

	cfg, err := Load(withDocs, nil)
	if err != nil {
		t.Fatalf("Load(sample with documented keys): %v", err)
	}
	if cfg.StorageProxy.ClientURL != "http://storage1.example.com:6021" {
		t.Errorf("announce-client-url = %q, expected the documented example", cfg.StorageProxy.ClientURL)
	}
	cfg.StorageProxy.ClientURL = defaults.StorageProxy.ClientURL
	cfg.StorageProxy.ManagerURL = defaults.StorageProxy.ManagerURL
	if !reflect.DeepEqual(cfg.StorageProxy, defaults.StorageProxy) {
		t.Errorf("documented [storage-proxy] values differ from the defaults:\n got %+v\nwant %+v", cfg.StorageProxy, defaults.StorageProxy)
	}
	if !reflect.DeepEqual(cfg.Etcd, defaults.Etcd) {
		t.Errorf("documented [etcd] values differ from the defaults:\n got %+v\nwant %+v", cfg.Etcd, defaults.Etcd)
	}
}

// uncommentedDocumentation returns the commented-out keys after the guide's
// block of the sample, by table.
func uncommentedDocumentation(t *testing.T) map[string]map[string]any {
	t.Helper()
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	_, docs, found := strings.Cut(string(data), "# Keys added by the Go storage proxy.")
	if !found {
		t.Fatal("sample has no documentation of our keys")
	}
	var lines []string
	for _, line := range strings.Split(docs, "\n") {
		text, isComment := strings.CutPrefix(line, "# ")
		if isComment && !strings.HasPrefix(text, "#") && (strings.HasPrefix(text, "[") || strings.Contains(text, " = ")) {
			lines = append(lines, text)
		}
	}
	var documented map[string]map[string]any
	if _, err := toml.Decode(strings.Join(lines, "\n"), &documented); err != nil {
		t.Fatalf("documented keys are not valid TOML: %v\n%s", err, strings.Join(lines, "\n"))
	}
	return documented
}

func writeTOML(t *testing.T, path string, v any) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := toml.NewEncoder(f).Encode(v); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSampleKeepsGuideKeys(t *testing.T) {
	data, err := os.ReadFile(samplePath)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	meta, err := toml.Decode(string(data), &raw)
	if err != nil {
		t.Fatal(err)
	}
	// The keys the deployment guide's example uses, in its order.
	want := []string{
		"etcd", "etcd.namespace", "etcd.addr", "etcd.addr.host", "etcd.addr.port", "etcd.user", "etcd.password",
		"storage-proxy", "storage-proxy.node-id", "storage-proxy.num-proc", "storage-proxy.pid-file",
		"storage-proxy.event-loop", "storage-proxy.scandir-limit", "storage-proxy.max-upload-size",
		"storage-proxy.secret", "storage-proxy.session-expire", "storage-proxy.user", "storage-proxy.group",
	}
	var got []string
	for _, key := range meta.Keys() {
		got = append(got, key.String())
	}
	if !slices.Equal(got[:len(want)], want) {
		t.Errorf("first keys of the sample = %v, expected %v", got[:len(want)], want)
	}
}
