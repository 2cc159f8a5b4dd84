package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/bai-storage/storage-proxy/control/testcert"
)

// minimalConfig returns testdata/good/minimal.toml, whose volume path "." is
// the directory of the config.
func minimalConfig(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "good", "minimal.toml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// writeConfig writes text as storage-proxy.toml into dir and returns its path.
func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// replaceOnce replaces old in text and fails the test when old is absent.
func replaceOnce(t *testing.T, text, old, replacement string) string {
	t.Helper()
	if !strings.Contains(text, old) {
		t.Fatalf("config text does not contain %q", old)
	}
	return strings.Replace(text, old, replacement, 1)
}

func TestLoadDefaults(t *testing.T) {
	dir := resolvedTempDir(t)
	cfg, err := Load(writeConfig(t, dir, minimalConfig(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := executableOwner()
	hostname, _ := os.Hostname()
	checks := []struct {
		name      string
		got, want any
	}{
		{"etcd.user", cfg.Etcd.User, ""},
		{"etcd.embedded-dir", cfg.Etcd.EmbeddedDir, filepath.Join(dir, "var", "etcd")},
		{"pid-file", cfg.StorageProxy.PIDFile, os.DevNull},
		{"event-loop", cfg.StorageProxy.EventLoop, "asyncio"},
		{"ipc-base-path", filepath.IsAbs(cfg.StorageProxy.IPCBasePath), true},
		{"scandir-limit", cfg.StorageProxy.ScandirLimit, 1000},
		{"user", cfg.StorageProxy.UID, uid},
		{"group", cfg.StorageProxy.GID, gid},
		{"aiomonitor-termui-port", cfg.StorageProxy.AiomonitorTermuiPort, 48300},
		{"aiomonitor-webui-port", cfg.StorageProxy.AiomonitorWebuiPort, 49300},
		{"io-engine", cfg.StorageProxy.IOEngine, "auto"},
		{"data-path", cfg.StorageProxy.DataPath, "auto"},
		{"shutdown-grace", cfg.StorageProxy.ShutdownGrace, 60 * time.Second},
		{"read-timeout", cfg.StorageProxy.ReadTimeout, 60 * time.Second},
		{"write-timeout", cfg.StorageProxy.WriteTimeout, time.Duration(0)},
		{"idle-timeout", cfg.StorageProxy.IdleTimeout, 120 * time.Second},
		{"upload-idle-timeout", cfg.StorageProxy.UploadIdleTimeout, 10 * time.Second},
		{"register-node", cfg.StorageProxy.RegisterNode, false},
		{"upload-lock", cfg.StorageProxy.UploadLock, "flock"},
		{"announce-client-url", cfg.StorageProxy.ClientURL, "http://" + hostname + ":6021"},
		{"announce-manager-url", cfg.StorageProxy.ManagerURL, "http://" + hostname + ":6022"},
		{"logging.pkg-ns", cfg.Logging.PkgNS, map[string]string{"": "WARNING", "ai.backend": "INFO", "tests": "DEBUG"}},
		{"logging.console", cfg.Logging.Console, LoggingConsole{Format: "verbose"}},
		{"logging.file", cfg.Logging.File, LoggingFile{BackupCount: 5, RotationSize: 10 << 20}},
		{"logging.logstash", cfg.Logging.Logstash, LoggingLogstash{Protocol: "tcp", SSLEnabled: true, SSLVerify: true}},
		{"volume fsprefix", cfg.Volumes[0].FSPrefix, "."},
		{"volume options", cfg.Volumes[0].Options, map[string]any(nil)},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, expected %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadEnvOverrides(t *testing.T) {
	logDir := resolvedTempDir(t)
	cases := []struct {
		name  string
		value string
		check func(*Config) (got, want any)
	}{
		{"BACKEND_NAMESPACE", "other", func(c *Config) (any, any) { return c.Etcd.Namespace, "other" }},
		{"BACKEND_ETCD_ADDR", "10.0.0.5:2400", func(c *Config) (any, any) { return c.Etcd.Addr, HostPort{"10.0.0.5", 2400} }},
		{"BACKEND_ETCD_USER", "bai", func(c *Config) (any, any) { return c.Etcd.User, "bai" }},
		{"BACKEND_ETCD_PASSWORD", "etcd-pass", func(c *Config) (any, any) { return c.Etcd.Password, "etcd-pass" }},
		{"BACKEND_LOG_FILE", filepath.Join(logDir, "sp.log"), func(c *Config) (any, any) {
			return c.Logging.File, LoggingFile{Path: logDir, Filename: "sp.log", BackupCount: 5, RotationSize: 10 << 20}
		}},
		{"BACKEND_LOG_FILE_COUNT", "7", func(c *Config) (any, any) { return c.Logging.File.BackupCount, 7 }},
		{"BACKEND_LOG_FILE_SIZE", "20", func(c *Config) (any, any) { return c.Logging.File.RotationSize, int64(20 << 20) }},
		{"BACKEND_IO_ENGINE", "syscall", func(c *Config) (any, any) { return c.StorageProxy.IOEngine, "syscall" }},
		{"BACKEND_DATA_PATH", "copy", func(c *Config) (any, any) { return c.StorageProxy.DataPath, "copy" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, resolvedTempDir(t), minimalConfig(t))
			cfg, err := Load(path, envOf(map[string]string{c.name: c.value}))
			if err != nil {
				t.Fatalf("Load with %s=%s: %v", c.name, c.value, err)
			}
			if got, want := c.check(cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("with %s=%s: got %#v, expected %#v", c.name, c.value, got, want)
			}
			if !slices.Equal(cfg.Logging.Drivers, []string{"console"}) {
				t.Errorf("drivers = %v, expected the file's [\"console\"]", cfg.Logging.Drivers)
			}
		})
	}
}

func TestLoadEnvOverrideReplacesFileValue(t *testing.T) {
	text := minimalConfig(t) + "\n[logging.file]\npath = \"./logs\"\nfilename = \"from-file.log\"\nbackup-count = 3\n"
	path := writeConfig(t, resolvedTempDir(t), text)
	cfg, err := Load(path, envOf(map[string]string{"BACKEND_LOG_FILE_COUNT": "9", "BACKEND_NAMESPACE": "from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logging.File.BackupCount != 9 {
		t.Errorf("backup-count = %d, expected 9 from BACKEND_LOG_FILE_COUNT", cfg.Logging.File.BackupCount)
	}
	if cfg.Logging.File.Filename != "from-file.log" {
		t.Errorf("filename = %q, expected the file's value", cfg.Logging.File.Filename)
	}
	if cfg.Etcd.Namespace != "from-env" {
		t.Errorf("namespace = %q, expected from-env", cfg.Etcd.Namespace)
	}
}

func TestLoadBadEnvOverrides(t *testing.T) {
	env := map[string]string{
		"BACKEND_LOG_FILE_COUNT": "many",
		"BACKEND_LOG_FILE_SIZE":  "10M",
		"BACKEND_IO_ENGINE":      "fast",
		"BACKEND_ETCD_ADDR":      "etcd:0",
	}
	path := writeConfig(t, resolvedTempDir(t), minimalConfig(t))
	_, err := Load(path, envOf(env))
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("Load returned %v, expected *ValidationError", err)
	}
	want := []string{
		`etcd.addr: invalid port "0" in "etcd:0" (use 1 to 65535), set by environment variable BACKEND_ETCD_ADDR`,
		`storage-proxy.io-engine: invalid value "fast" (use "auto", "io_uring" or "syscall"), set by environment variable BACKEND_IO_ENGINE`,
		`logging.file.backup-count: expected an integer, got string "many", set by environment variable BACKEND_LOG_FILE_COUNT`,
		`logging.file.rotation-size: invalid size "10MM" (use e.g. "100g"), set by environment variable BACKEND_LOG_FILE_SIZE`,
	}
	if got := strings.Split(verr.Error(), "\n"); !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nexpected:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, fe := range verr.Errors {
		if fe.Env == "" {
			t.Errorf("%s has no Env", fe.Key)
		}
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := resolvedTempDir(t)
	for _, sub := range []string{"vol", "certs"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeKeyPair(t, filepath.Join(dir, "certs", "client.pem"), filepath.Join(dir, "certs", "client.key"))

	text := minimalConfig(t)
	text = replaceOnce(t, text, "num-proc = 1\n", "num-proc = 1\npid-file = \"run/sp.pid\"\n")
	text = replaceOnce(t, text, "ssl-enabled = false\n", "ssl-enabled = true\nssl-cert = \"certs/client.pem\"\nssl-privkey = \"./certs/../certs/client.key\"\n")
	text = replaceOnce(t, text, `path = "."`, `path = "vol"`)
	text += "\n[logging.file]\npath = \"logs\"\nfilename = \"sp.log\"\n"

	// Load from another working directory with a relative config path.
	t.Chdir(filepath.Dir(dir))
	path := writeConfig(t, dir, text)
	cfg, err := Load(filepath.Join(filepath.Base(dir), FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"File":                      {cfg.File, path},
		"Dir":                       {cfg.Dir, dir},
		"pid-file":                  {cfg.StorageProxy.PIDFile, filepath.Join(dir, "run", "sp.pid")},
		"api.client.ssl-cert":       {cfg.ClientAPI.SSLCert, filepath.Join(dir, "certs", "client.pem")},
		"api.client.ssl-privkey":    {cfg.ClientAPI.SSLPrivkey, filepath.Join(dir, "certs", "client.key")},
		"volume.local.path":         {cfg.Volumes[0].Path, filepath.Join(dir, "vol")},
		"logging.file.path":         {cfg.Logging.File.Path, filepath.Join(dir, "logs")},
		"etcd.embedded-dir":         {cfg.Etcd.EmbeddedDir, filepath.Join(dir, "var", "etcd")},
		"announce-client-url https": {cfg.StorageProxy.ClientURL[:8], "https://"},
	}
	for name, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, expected %q", name, c[0], c[1])
		}
	}
	if wd, _ := os.Getwd(); wd != filepath.Dir(dir) {
		t.Errorf("working directory changed to %s", wd)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load created the log directory: %v", err)
	}
}

func TestLoadResolvesSymlinks(t *testing.T) {
	dir := resolvedTempDir(t)
	real := filepath.Join(dir, "real-volume")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(dir, "volume-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(dir, "dir-link")); err != nil {
		t.Fatal(err)
	}

	text := replaceOnce(t, minimalConfig(t), `path = "."`, `path = "volume-link"`)
	text = replaceOnce(t, text, "num-proc = 1\n", "num-proc = 1\npid-file = \"dir-link/not-yet/sp.pid\"\n")
	cfg, err := Load(writeConfig(t, dir, text), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Volumes[0].Path != real {
		t.Errorf("volume path = %q, expected the link target %q", cfg.Volumes[0].Path, real)
	}
	if want := filepath.Join(dir, "not-yet", "sp.pid"); cfg.StorageProxy.PIDFile != want {
		t.Errorf("pid-file = %q, expected %q with the existing part resolved", cfg.StorageProxy.PIDFile, want)
	}
}

func TestLoadVolumesInFileOrder(t *testing.T) {
	dir := resolvedTempDir(t)
	text := minimalConfig(t)
	for _, name := range []string{"zeta", "alpha", "nfs.home", "mid"} {
		text += "\n[volume." + renderKey(name) + "]\nbackend = \"vfs\"\npath = \".\"\n"
	}
	text += "\n[volume.alpha.options]\nquota = 10\n"
	cfg, err := Load(writeConfig(t, dir, text), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range cfg.Volumes {
		names = append(names, v.Name)
	}
	if want := []string{"local", "zeta", "alpha", "nfs.home", "mid"}; !slices.Equal(names, want) {
		t.Errorf("volume names = %v, expected %v", names, want)
	}
	if got := cfg.Volumes[2].Options; !reflect.DeepEqual(got, map[string]any{"quota": int64(10)}) {
		t.Errorf("alpha options = %v", got)
	}
}

func TestLoadListsUnknownAndIgnoredKeys(t *testing.T) {
	text := minimalConfig(t)
	text = replaceOnce(t, text, "[etcd]\n", "[etcd]\nnamspace = \"typo\"\n")
	text = replaceOnce(t, text, "num-proc = 1\n", "num-proc = 1\nevent-loop = \"uvloop\"\naiomonitor-port = 48301\nipc-base-path = \"ipc\"\n")
	text = replaceOnce(t, text, "enabled = false\n\n[logging]", "enabled = false\nasyncio = true\ncolour = 1\n\n[logging]")
	text = "[redis]\naddr = \"127.0.0.1:6379\"\n\n" + text

	cfg, err := Load(writeConfig(t, resolvedTempDir(t), text), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantIgnored := []string{"storage-proxy.event-loop", "storage-proxy.ipc-base-path", "storage-proxy.aiomonitor-port", "debug.asyncio"}
	if !slices.Equal(cfg.Ignored, wantIgnored) {
		t.Errorf("Ignored = %v, expected %v", cfg.Ignored, wantIgnored)
	}
	wantUnknown := []string{"etcd.namspace", "debug.colour", "redis"}
	if !slices.Equal(cfg.Unknown, wantUnknown) {
		t.Errorf("Unknown = %v, expected %v", cfg.Unknown, wantUnknown)
	}
	if cfg.StorageProxy.AiomonitorTermuiPort != 48301 {
		t.Errorf("aiomonitor-port alias gave termui port %d, expected 48301", cfg.StorageProxy.AiomonitorTermuiPort)
	}
}

func TestLoadAcceptsAllValueForms(t *testing.T) {
	dir := resolvedTempDir(t)
	writeKeyPair(t, filepath.Join(dir, "m.pem"), filepath.Join(dir, "m.key"))
	text := minimalConfig(t)
	text = replaceOnce(t, text, `addr = { host = "127.0.0.1", port = 2379 }`, `addr = ["::1", "2379"]`+"\nembedded = true")
	text = replaceOnce(t, text, `session-expire = "1d"`, "session-expire = 1.5\nuser = \"root\"\ngroup = -1\nscandir-limit = 0\nuse-watcher = true\nwatcher-insock-path-prefix = \"/tmp/in\"\nwatcher-outsock-path-prefix = \"/tmp/out\"")
	text = replaceOnce(t, text, `max-upload-size = "100g"`, "max-upload-size = \"inf\"\nregister-node = true\nannounce-manager-url = \"https://sp1.example.com:6022/\"\nshutdown-grace = 5\nwrite-timeout = \"1.5m\"")
	text = replaceOnce(t, text, `service-addr = { host = "0.0.0.0", port = 6022 }`, `service-addr = "[::]:6022"`)
	text = replaceOnce(t, text, "ssl-enabled = false\nsecret", "ssl-enabled = \"yes\"\nssl-cert = \"m.pem\"\nssl-privkey = \"m.key\"\nsecret")
	text = replaceOnce(t, text, `drivers = ["console"]`, "drivers = [\"console\", \"logstash\", \"console\"]\n\n[logging.console]\ncolored = \"off\"\nformat = \"simple\"\n\n[logging.logstash]\nendpoint = { host = \"127.0.0.1\", port = 5044 }\nssl-enabled = 0\n\n[logging.pkg-ns]\n\"\" = \"error\"\n\"storage-proxy.dataplane\" = \"Debug\"")
	text = replaceOnce(t, text, `level = "INFO"`, `level = "warning"`)

	cfg, err := Load(writeConfig(t, dir, text), nil)
	if err != nil {
		t.Fatal(err)
	}
	colored := false
	checks := []struct {
		name      string
		got, want any
	}{
		{"etcd.addr", cfg.Etcd.Addr, HostPort{"::1", 2379}},
		{"session-expire", cfg.StorageProxy.SessionExpire, Duration{Seconds: 1.5}},
		{"user", cfg.StorageProxy.UID, 0},
		{"group", cfg.StorageProxy.GID, os.Getgid()},
		{"scandir-limit", cfg.StorageProxy.ScandirLimit, 0},
		{"max-upload-size", cfg.StorageProxy.MaxUploadSize, Unlimited},
		{"use-watcher", cfg.StorageProxy.UseWatcher, true},
		{"watcher-insock-path-prefix", cfg.StorageProxy.WatcherInsockPathPrefix, "/tmp/in"},
		{"shutdown-grace", cfg.StorageProxy.ShutdownGrace, 5 * time.Second},
		{"write-timeout", cfg.StorageProxy.WriteTimeout, 90 * time.Second},
		{"announce-manager-url", cfg.StorageProxy.ManagerURL, "https://sp1.example.com:6022"},
		{"api.manager.service-addr", cfg.ManagerAPI.ServiceAddr, HostPort{"::", 6022}},
		{"api.manager.ssl-enabled", cfg.ManagerAPI.SSLEnabled, true},
		{"logging.level", cfg.Logging.Level, "WARNING"},
		{"logging.drivers", cfg.Logging.Drivers, []string{"console", "logstash"}},
		{"logging.console.colored", cfg.Logging.Console.Colored, &colored},
		{"logging.pkg-ns", cfg.Logging.PkgNS, map[string]string{"": "ERROR", "storage-proxy.dataplane": "DEBUG"}},
		{"logging.logstash", cfg.Logging.Logstash, LoggingLogstash{Endpoint: HostPort{"127.0.0.1", 5044}, Protocol: "tcp", SSLEnabled: false, SSLVerify: true}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, expected %#v", c.name, c.got, c.want)
		}
	}
}

func TestLoadSyntaxError(t *testing.T) {
	path := writeConfig(t, resolvedTempDir(t), "[etcd\nnamespace = 1\n")
	_, err := Load(path, nil)
	var parseErr toml.ParseError
	if !errors.As(err, &parseErr) {
		t.Fatalf("Load returned %T %v, expected a toml.ParseError", err, err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(resolvedTempDir(t), "none.toml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file returned %v, expected os.ErrNotExist", err)
	}
}

func TestEffectiveRoundTrip(t *testing.T) {
	dir := resolvedTempDir(t)
	text := minimalConfig(t)
	text = replaceOnce(t, text, `session-expire = "1d"`, `session-expire = "2mo"`)
	text = replaceOnce(t, text, `drivers = ["console"]`, "drivers = [\"console\", \"file\", \"logstash\"]\n\n[logging.file]\npath = \"logs\"\nfilename = \"sp.log\"\nrotation-size = \"1536k\"\n\n[logging.logstash]\nendpoint = \"[::1]:5044\"\n\n[logging.console]\ncolored = true")
	text += "\n[volume.\"vendor vol\"]\nbackend = \"vfs\"\npath = \".\"\nfsprefix = \"sub/dir\"\noptions = { api = \"https://x\", retries = 3, ratio = 0.5, verify = false, hosts = [\"a\", \"b\"], nested = { key = \"v\\n\\\"q\\\"\" } }\n"
	original, err := Load(writeConfig(t, dir, text), envOf(map[string]string{"BACKEND_ETCD_PASSWORD": "etcd-pass"}))
	if err != nil {
		t.Fatal(err)
	}

	effective := original.Effective(false)
	reloadedPath := filepath.Join(dir, "effective.toml")
	if err := os.WriteFile(reloadedPath, []byte(effective), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded, err := Load(reloadedPath, nil)
	if err != nil {
		t.Fatalf("Load(Effective(false)): %v\n%s", err, effective)
	}

	for _, cfg := range []*Config{original, reloaded} {
		cfg.File, cfg.Ignored, cfg.Unknown = "", nil, nil
	}
	if !reflect.DeepEqual(original, reloaded) {
		t.Errorf("Effective(false) does not load back to the same config\noriginal %+v\nreloaded %+v\n%s", original, reloaded, effective)
	}
}

func TestEffectiveMasksSecrets(t *testing.T) {
	path := writeConfig(t, resolvedTempDir(t), minimalConfig(t))
	cfg, err := Load(path, envOf(map[string]string{"BACKEND_ETCD_PASSWORD": "etcd-pass"}))
	if err != nil {
		t.Fatal(err)
	}
	masked := cfg.Effective(true)
	for _, secret := range []string{"upload-download-secret", "manager-secret", "etcd-pass"} {
		if strings.Contains(masked, secret) {
			t.Errorf("Effective(true) contains the secret %q", secret)
		}
		if !strings.Contains(cfg.Effective(false), secret) {
			t.Errorf("Effective(false) lacks %q", secret)
		}
	}
	if got := strings.Count(masked, `= "***"`); got != 3 {
		t.Errorf("Effective(true) has %d masked values, expected 3:\n%s", got, masked)
	}
}

func TestLoadEmptyDriversStayEmpty(t *testing.T) {
	text := replaceOnce(t, minimalConfig(t), `drivers = ["console"]`, `drivers = []`)
	cfg, err := Load(writeConfig(t, resolvedTempDir(t), text), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logging.Drivers == nil || len(cfg.Logging.Drivers) != 0 {
		t.Errorf("drivers = %#v, expected an empty non-nil slice", cfg.Logging.Drivers)
	}
}

// writeKeyPair writes a real certificate and key, which Load parses.
func writeKeyPair(t *testing.T, certPath, keyPath string) {
	t.Helper()
	p := testcert.New(t)
	if err := os.WriteFile(certPath, p.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, p.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsMismatchedKeyPair(t *testing.T) {
	dir := resolvedTempDir(t)
	writeKeyPair(t, filepath.Join(dir, "a.pem"), filepath.Join(dir, "a.key"))
	writeKeyPair(t, filepath.Join(dir, "b.pem"), filepath.Join(dir, "b.key"))
	text := minimalConfig(t)
	text = replaceOnce(t, text, "ssl-enabled = false\n", "ssl-enabled = true\nssl-cert = \"a.pem\"\nssl-privkey = \"b.key\"\n")
	path := filepath.Join(dir, "storage-proxy.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "ssl-privkey: does not load with ssl-cert") || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("Load with a key of another certificate: %v, want an error naming ssl-privkey and the mismatch", err)
	}
}
