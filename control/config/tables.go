package config

import (
	"crypto/tls"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// requiredTableHints maps the key path of each table that upstream requires
// to the fix shown when it is missing.
var requiredTableHints = map[string]string{
	"etcd":          "add [etcd] with at least namespace",
	"storage-proxy": "add [storage-proxy] with at least node-id, secret and session-expire",
	"api":           "add [api.client] and [api.manager]",
	"api.client":    "add [api.client] with service-addr and ssl-enabled",
	"api.manager":   "add [api.manager] with service-addr, ssl-enabled and secret",
	"debug":         "add an empty [debug] table",
	"logging":       "add an empty [logging] table",
	"volume":        "add [volume.NAME] tables with backend and path",
}

// checkFile checks every table of the decoded file into cfg.
func (c *checker) checkFile(cfg *Config, raw map[string]any, volumes []string) {
	root := c.newTable(raw)

	if t, ok := c.requiredTable(root, "etcd"); ok {
		cfg.Etcd = checkEtcd(t)
	}
	if t, ok := c.requiredTable(root, "storage-proxy"); ok {
		cfg.StorageProxy = checkStorageProxy(t)
	}
	if api, ok := c.requiredTable(root, "api"); ok {
		if t, ok := c.requiredTable(api, "client"); ok {
			cfg.ClientAPI = checkListener(t, false)
		}
		if t, ok := c.requiredTable(api, "manager"); ok {
			cfg.ManagerAPI = checkListener(t, true)
		}
		api.rejectUnknown()
	}
	if t, ok := c.requiredTable(root, "debug"); ok {
		cfg.Debug = checkDebug(t)
	}
	if t, ok := c.requiredTable(root, "logging"); ok {
		cfg.Logging = checkLogging(t)
	}
	if t, ok := c.requiredTable(root, "volume"); ok {
		cfg.Volumes = checkVolumes(t, volumes)
	}
	root.tolerateUnknown()

	// The announce URLs default to the listener addresses, so they are
	// derived after both listeners are checked.
	sp := &cfg.StorageProxy
	if sp.ClientURL == "" {
		sp.ClientURL = defaultAnnounceURL(cfg.ClientAPI)
	}
	if sp.ManagerURL == "" {
		sp.ManagerURL = defaultAnnounceURL(cfg.ManagerAPI)
	}
}

// requiredTable returns the table under key, recording an error when it is
// missing or not a table.
func (c *checker) requiredTable(parent *table, key string) (*table, bool) {
	if !parent.has(key) {
		parent.lookup(key)
		hint := requiredTableHints[parent.keyPath(key)]
		c.errors = append(c.errors, FieldError{Key: parent.keyPath(key), Msg: "missing table (" + hint + ")"})
		return nil, false
	}
	return parent.subTable(key)
}

func checkEtcd(t *table) Etcd {
	e := Etcd{Addr: HostPort{Host: "127.0.0.1", Port: 2379}}
	e.Namespace = t.requiredString("namespace", `set the etcd key prefix, e.g. "local"`)
	if addr, ok := t.hostPort("addr", false); ok {
		e.Addr = addr
	}
	e.User = t.str("user", "")
	e.Password = t.str("password", "")
	e.Embedded = t.strictBool("embedded", false)
	e.EmbeddedDir = t.path("embedded-dir", "var/etcd", optionalDir)

	if e.Embedded && !isLoopback(e.Addr.Host) {
		t.failf("addr", e.Addr.String(), "%s is not a loopback address (embedded = true serves etcd there, use e.g. \"127.0.0.1:2379\")", quoteString(e.Addr.String()))
	}
	t.tolerateUnknown()
	return e
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.IsLoopback()
}

func checkStorageProxy(t *table) StorageProxy {
	sp := StorageProxy{}
	sp.NodeID = t.requiredString("node-id", `set a cluster-unique id, e.g. "i-storage-1"`)
	sp.NumProc = checkNumProc(t)
	sp.PIDFile = t.path("pid-file", os.DevNull, optionalFile)
	sp.EventLoop = t.choice("event-loop", "asyncio", "asyncio", "uvloop")
	sp.IPCBasePath = t.path("ipc-base-path", "/tmp/backend.ai/ipc", optionalDir)
	sp.ScandirLimit = int(t.integer("scandir-limit", 1000, 0, math.MaxInt32, "use 0 for no limit or a positive number of entries"))
	sp.MaxUploadSize = t.size("max-upload-size", 100<<30)
	sp.Secret = t.requiredString("secret", "set a long random string that signs upload and download tokens")
	if d, ok := t.duration("session-expire"); ok {
		sp.SessionExpire = d
	} else if !t.has("session-expire") {
		t.missing("session-expire", `set the lifetime of upload and download tokens, e.g. "1d"`)
	}

	defaultUID, defaultGID := executableOwner()
	sp.UID = t.id("user", userKind, defaultUID)
	sp.GID = t.id("group", groupKind, defaultGID)

	// aiomonitor-port is the older name of aiomonitor-termui-port, which wins
	// when both are present.
	termuiPort := t.aiomonitorPort("aiomonitor-termui-port", 48300)
	aliasPort := t.aiomonitorPort("aiomonitor-port", 48300)
	sp.AiomonitorTermuiPort = termuiPort
	if !t.has("aiomonitor-termui-port") {
		sp.AiomonitorTermuiPort = aliasPort
	}
	sp.AiomonitorWebuiPort = t.aiomonitorPort("aiomonitor-webui-port", 49300)

	checkWatcher(t, &sp)
	sp.UseExperimentalRedisEventDispatcher = t.toBool("use-experimental-redis-event-dispatcher", false)
	for _, key := range []string{"event-loop", "ipc-base-path", "aiomonitor-termui-port", "aiomonitor-port", "aiomonitor-webui-port", "use-experimental-redis-event-dispatcher"} {
		t.noteIgnored(key)
	}

	checkStorageProxyExtensions(t, &sp)
	t.rejectUnknown()
	return sp
}

// checkNumProc checks num-proc against the CPUs this process may run on.
func checkNumProc(t *table) int {
	cpus := runtime.NumCPU()
	n := int(t.integer("num-proc", int64(cpus), 1, math.MaxInt32, "use 1 up to the number of CPUs"))
	if n > cpus {
		t.failf("num-proc", int64(n), "%d exceeds the %d CPUs of this host (use 1 to %d)", n, cpus, cpus)
		return cpus
	}
	return n
}

func checkWatcher(t *table, sp *StorageProxy) {
	sp.UseWatcher = t.strictBool("use-watcher", false)
	sp.WatcherInsockPathPrefix = t.optionalString("watcher-insock-path-prefix")
	sp.WatcherOutsockPathPrefix = t.optionalString("watcher-outsock-path-prefix")
	if !sp.UseWatcher {
		return
	}
	for _, key := range []string{"watcher-insock-path-prefix", "watcher-outsock-path-prefix"} {
		if !t.has(key) {
			t.missing(key, "use-watcher = true needs the ZeroMQ socket path prefix of the watcher")
		}
	}
}

// checkStorageProxyExtensions checks the keys that this implementation adds
// to [storage-proxy].
func checkStorageProxyExtensions(t *table, sp *StorageProxy) {
	sp.IOEngine = t.choice("io-engine", "auto", "auto", "io_uring", "syscall")
	sp.DataPath = t.choice("data-path", "auto", "auto", "sendfile", "copy")
	sp.ShutdownGrace = t.fixedDuration("shutdown-grace", 60*time.Second)
	sp.ReadTimeout = t.fixedDuration("read-timeout", 60*time.Second)
	sp.WriteTimeout = t.fixedDuration("write-timeout", 0)
	sp.IdleTimeout = t.fixedDuration("idle-timeout", 120*time.Second)
	sp.UploadIdleTimeout = t.fixedDuration("upload-idle-timeout", 10*time.Second)
	sp.RegisterNode = t.strictBool("register-node", false)
	sp.UploadLock = t.choice("upload-lock", "flock", "flock", "etcd")
	sp.ClientURL = t.announceURL("announce-client-url")
	sp.ManagerURL = t.announceURL("announce-manager-url")
}

// id returns a user or group id, or def when the key is absent or empty.
func (t *table) id(key string, kind idKind, def int) int {
	v, ok := t.lookup(key)
	if !ok || v == "" {
		return def
	}
	id, err := resolveID(kind, v)
	if err != nil {
		t.fail(key, v, err.Error())
		return def
	}
	return id
}

// aiomonitorPort checks a port that only the Python implementation uses.
func (t *table) aiomonitorPort(key string, def int) int {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	port, valid := portFromValue(v)
	if !valid {
		t.failf(key, v, "invalid port %s (use 1 to 65535)", renderValue(v))
		return def
	}
	return port
}

// noteIgnored records a present key that this implementation does not use.
func (t *table) noteIgnored(key string) {
	if t.has(key) {
		t.c.ignored = append(t.c.ignored, t.keyPath(key))
	}
}

// announceURL returns a checked base URL without its trailing slash, or ""
// when the key is absent or invalid.
func (t *table) announceURL(key string) string {
	if !t.has(key) {
		t.lookup(key)
		return ""
	}
	s := t.str(key, "")
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		t.failf(key, s, "invalid URL %s (use an absolute http or https URL, e.g. \"https://storage1.example.com:6021\")", quoteString(s))
		return ""
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		t.failf(key, s, "invalid URL %s (remove the user info, query and fragment)", quoteString(s))
		return ""
	}
	return strings.TrimRight(s, "/")
}

// defaultAnnounceURL builds the URL other hosts reach a listener at. An
// unspecified host (all interfaces) is replaced by this machine's host name.
func defaultAnnounceURL(l Listener) string {
	scheme := "http"
	if l.SSLEnabled {
		scheme = "https"
	}
	host := l.ServiceAddr.Host
	if addr, err := netip.ParseAddr(host); host == "" || (err == nil && addr.IsUnspecified()) {
		host = "localhost"
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(l.ServiceAddr.Port))
}

// executableOwner returns the owner of the running executable, the default
// of user and group. Upstream uses the owner of its installed server.py.
// It falls back to the ids of this process.
func executableOwner() (int, int) {
	uid, gid := os.Getuid(), os.Getgid()
	exe, err := os.Executable()
	if err != nil {
		return uid, gid
	}
	info, err := os.Stat(exe)
	if err != nil {
		return uid, gid
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return uid, gid
}

func checkListener(t *table, manager bool) Listener {
	var l Listener
	if addr, ok := t.hostPort("service-addr", true); ok {
		l.ServiceAddr = addr
	} else if !t.has("service-addr") {
		t.missing("service-addr", `set the bind address, e.g. { host = "0.0.0.0", port = `+defaultPort(manager)+` }`)
	}
	if !t.has("ssl-enabled") {
		t.missing("ssl-enabled", "set true or false")
	}
	l.SSLEnabled = t.toBool("ssl-enabled", false)
	before := len(t.c.errors)
	l.SSLCert = t.path("ssl-cert", "", existingFile)
	l.SSLPrivkey = t.path("ssl-privkey", "", existingFile)
	filesFound := len(t.c.errors) == before
	if l.SSLEnabled {
		if !t.has("ssl-cert") {
			t.missing("ssl-cert", "ssl-enabled = true needs a PEM certificate chain file")
		}
		if !t.has("ssl-privkey") {
			t.missing("ssl-privkey", "ssl-enabled = true needs a PEM private key file")
		}
		// Both files exist: they must also parse and belong together, or
		// the listeners would fail at start instead of the load failing
		// here.
		if filesFound && l.SSLCert != "" && l.SSLPrivkey != "" {
			if _, err := tls.LoadX509KeyPair(l.SSLCert, l.SSLPrivkey); err != nil {
				t.failf("ssl-privkey", l.SSLPrivkey, "does not load with ssl-cert %s: %v", quoteString(l.SSLCert), err)
			}
		}
	}
	if manager {
		l.Secret = t.requiredString("secret", "set the token the manager sends in X-BackendAI-Storage-Auth-Token")
	}
	t.rejectUnknown()
	return l
}

func defaultPort(manager bool) string {
	if manager {
		return "6022"
	}
	return "6021"
}

func checkDebug(t *table) Debug {
	d := Debug{
		Enabled:                    t.toBool("enabled", false),
		Asyncio:                    t.toBool("asyncio", false),
		EnhancedAiomonitorTaskInfo: t.toBool("enhanced-aiomonitor-task-info", false),
		LogEvents:                  t.toBool("log-events", false),
	}
	t.noteIgnored("asyncio")
	t.noteIgnored("enhanced-aiomonitor-task-info")
	t.tolerateUnknown()
	return d
}

// levelNames are the logging levels of the config, from most to least
// severe.
var levelNames = []string{"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"}

// supportedDrivers and knownDrivers are the values of logging.drivers that
// this build serves and that upstream accepts.
var (
	supportedDrivers = []string{"console", "file", "logstash"}
	knownDrivers     = []string{"console", "file", "logstash", "graylog"}
)

func checkLogging(t *table) Logging {
	lg := Logging{
		Level: t.level("level", "INFO"),
		PkgNS: map[string]string{"": "WARNING", "ai.backend": "INFO", "tests": "DEBUG"},
	}
	if ns, ok := t.subTable("pkg-ns"); ok {
		lg.PkgNS = map[string]string{}
		for _, name := range sortedKeys(ns.items) {
			lg.PkgNS[name] = ns.level(name, "")
		}
	}
	lg.Drivers = checkDrivers(t)

	lg.Console = LoggingConsole{Format: "verbose"}
	if console, ok := t.subTable("console"); ok {
		if console.has("colored") {
			colored := console.toBool("colored", false)
			lg.Console.Colored = &colored
		}
		lg.Console.Format = console.choice("format", "verbose", "simple", "verbose")
		console.tolerateUnknown()
	}

	lg.File = checkLogFile(t, slices.Contains(lg.Drivers, "file"))
	lg.Logstash = checkLogstash(t, slices.Contains(lg.Drivers, "logstash"))
	t.lookup("graylog")
	t.tolerateUnknown()
	return lg
}

// level returns the upper-case level name of key, or def when absent.
func (t *table) level(key, def string) string {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	if s, isString := v.(string); isString {
		upper := strings.ToUpper(strings.TrimSpace(s))
		if slices.Contains(levelNames, upper) {
			return upper
		}
	}
	t.failf(key, v, "invalid level %s (use %s)", renderValue(v), strings.Join(levelNames[:len(levelNames)-1], ", ")+" or NOTSET")
	return "INFO"
}

func checkDrivers(t *table) []string {
	v, ok := t.lookup("drivers")
	if !ok {
		return []string{"console"}
	}
	items, isArray := v.([]any)
	if !isArray {
		t.failf("drivers", v, "expected an array, e.g. [\"console\", \"file\"], got %s %s", typeName(v), renderValue(v))
		return []string{"console"}
	}
	// An empty array turns logging off, as in upstream, so it stays non-nil.
	drivers := []string{}
	for _, item := range items {
		name, _ := item.(string)
		switch {
		case slices.Contains(supportedDrivers, name):
			if !slices.Contains(drivers, name) {
				drivers = append(drivers, name)
			}
		case slices.Contains(knownDrivers, name):
			t.failf("drivers", v, "driver %s is not supported by this build (use %s)", quoteString(name), quotedList(supportedDrivers))
		default:
			t.failf("drivers", v, "unknown driver %s (use %s)", renderValue(item), quotedList(supportedDrivers))
		}
	}
	return drivers
}

func checkLogFile(t *table, enabled bool) LoggingFile {
	f := LoggingFile{BackupCount: 5, RotationSize: 10 << 20}
	ft, ok := t.subTable("file")
	if !ok {
		if enabled && !t.has("file") {
			t.c.errors = append(t.c.errors, FieldError{Key: t.keyPath("file"), Msg: `missing table (the "file" driver needs [logging.file] with path and filename)`})
		}
		return f
	}

	f.Path = ft.path("path", "", optionalDir)
	f.Filename = ft.str("filename", "")
	if strings.ContainsRune(f.Filename, '/') || f.Filename == "." || f.Filename == ".." {
		ft.failf("filename", f.Filename, "invalid file name %s (put directories in logging.file.path)", quoteString(f.Filename))
	}
	if enabled && !ft.has("path") {
		ft.missing("path", `the "file" driver needs the log directory, e.g. "./logs"`)
	}
	if enabled && !ft.has("filename") {
		ft.missing("filename", `the "file" driver needs the log file name, e.g. "storage-proxy.log"`)
	} else if enabled && ft.items["filename"] == "" {
		ft.fail("filename", "", `empty value (set the log file name, e.g. "storage-proxy.log")`)
	}

	f.BackupCount = int(ft.integer("backup-count", 5, 1, 100, "use 1 to 100"))
	f.RotationSize = ft.size("rotation-size", 10<<20)
	if f.RotationSize <= 0 {
		ft.failf("rotation-size", ft.items["rotation-size"], "invalid rotation size %s (use a positive size, e.g. \"10M\")", renderValue(ft.items["rotation-size"]))
		f.RotationSize = 10 << 20
	}
	ft.choice("format", "verbose", "simple", "verbose")
	ft.noteIgnored("format")
	ft.tolerateUnknown()
	return f
}

func checkLogstash(t *table, enabled bool) LoggingLogstash {
	ls := LoggingLogstash{Protocol: "tcp", SSLEnabled: true, SSLVerify: true}
	lt, ok := t.subTable("logstash")
	if !ok {
		if enabled && !t.has("logstash") {
			t.c.errors = append(t.c.errors, FieldError{Key: t.keyPath("logstash"), Msg: `missing table (the "logstash" driver needs [logging.logstash] with endpoint)`})
		}
		return ls
	}

	if endpoint, ok := lt.hostPort("endpoint", false); ok {
		ls.Endpoint = endpoint
	} else if enabled && !lt.has("endpoint") {
		lt.missing("endpoint", `the "logstash" driver needs an address, e.g. { host = "127.0.0.1", port = 5000 }`)
	}
	if v, ok := lt.lookup("protocol"); ok {
		switch v {
		case "tcp":
		case "udp", "zmq.push", "zmq.pub":
			lt.failf("protocol", v, "protocol %s is not supported by this build (use \"tcp\")", renderValue(v))
		default:
			lt.failf("protocol", v, "invalid protocol %s (use \"tcp\")", renderValue(v))
		}
	}
	ls.SSLEnabled = lt.toBool("ssl-enabled", true)
	ls.SSLVerify = lt.toBool("ssl-verify", true)
	lt.tolerateUnknown()
	return ls
}

// backendsSupported are the backends this build serves, and
// backendsUpstream the other names that upstream 24.09 registers.
var (
	backendsSupported = []string{"vfs"}
	backendsUpstream  = []string{"xfs", "cephfs", "purestorage", "netapp", "weka", "gpfs", "spectrumscale", "vast", "dellemc-onefs", "exascaler"}
)

func checkVolumes(t *table, order []string) []Volume {
	names := slices.Clone(order)
	for _, name := range sortedKeys(t.items) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}

	var volumes []Volume
	for _, name := range names {
		vt, ok := t.subTable(name)
		if !ok {
			continue
		}
		volumes = append(volumes, checkVolume(vt, name))
	}
	return volumes
}

func checkVolume(t *table, name string) Volume {
	v := Volume{Name: name, FSPrefix: "."}
	v.Backend = t.requiredString("backend", `set the storage driver, e.g. "vfs"`)
	switch {
	case v.Backend == "" || slices.Contains(backendsSupported, v.Backend):
	case slices.Contains(backendsUpstream, v.Backend):
		t.failf("backend", v.Backend, "backend %s is not supported by this build (use %s)", quoteString(v.Backend), quotedList(backendsSupported))
	default:
		t.failf("backend", v.Backend, "unknown backend %s (use %s)", quoteString(v.Backend), quotedList(backendsSupported))
	}

	if !t.has("path") {
		t.missing("path", "set the mount point of the volume, an existing directory")
	}
	v.Path = t.path("path", "", existingDir)

	prefix := t.str("fsprefix", ".")
	if filepath.IsAbs(prefix) {
		t.failf("fsprefix", prefix, "%s is an absolute path (use a relative path, e.g. \".\")", quoteString(prefix))
	}
	v.FSPrefix = filepath.Clean(prefix)

	if opts, ok := t.lookup("options"); ok {
		table, isTable := opts.(map[string]any)
		if !isTable {
			t.failf("options", opts, "expected a table, got %s %s", typeName(opts), renderValue(opts))
		}
		v.Options = table
	}
	t.rejectUnknown()
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
