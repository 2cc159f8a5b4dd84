package config

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is a loaded, checked and defaulted storage-proxy.toml. Every path in
// it is absolute and has its symbolic links resolved.
type Config struct {
	// File is the absolute path of the loaded file.
	File string
	// Dir is the directory of File. Relative paths in the file are resolved
	// against it, whatever the working directory of the process is.
	Dir string

	Etcd         Etcd
	StorageProxy StorageProxy
	ClientAPI    Listener // [api.client]
	ManagerAPI   Listener // [api.manager]
	Debug        Debug
	Logging      Logging

	// Volumes are the [volume.NAME] tables in file order.
	Volumes []Volume

	// Ignored lists the key paths present in the file that only the Python
	// implementation uses (event-loop, aiomonitor ports and the like). They
	// are accepted and checked but change nothing. The caller logs each one
	// at debug level.
	Ignored []string

	// Unknown lists the key paths that tolerant tables ([etcd], [debug],
	// [logging*] and the top level) contain but no version of this service
	// reads. Upstream tolerates them too. They are often typos, so the
	// caller logs them as warnings.
	Unknown []string
}

// ServerTLS returns the TLS settings a listener serves with, or nil when
// ssl-enabled is false: the certificate chain and key of ssl-cert and
// ssl-privkey, TLS 1.2 or later, and HTTP/1.1, which is all that both
// APIs speak.
func (l Listener) ServerTLS() (*tls.Config, error) {
	if !l.SSLEnabled {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(l.SSLCert, l.SSLPrivkey)
	if err != nil {
		return nil, fmt.Errorf("load the TLS certificate %s and key %s: %w", l.SSLCert, l.SSLPrivkey, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}

// Etcd is the [etcd] table.
type Etcd struct {
	// Namespace is the key prefix, so keys live under /sorna/<Namespace>/.
	Namespace string
	// Addr is the etcd v3 endpoint, plain HTTP. Default 127.0.0.1:2379.
	Addr HostPort
	// User and Password are used only when User is non-empty.
	User, Password string

	// Embedded runs an etcd member inside this process on Addr, which must
	// then be a loopback address (`embedded`, strict bool, default false).
	Embedded bool
	// EmbeddedDir is the data directory of the embedded member
	// (`embedded-dir`, default "var/etcd" next to the config file).
	EmbeddedDir string
}

// StorageProxy is the [storage-proxy] table.
type StorageProxy struct {
	// NodeID is the cluster-unique id of this node (`node-id`, required).
	NodeID string
	// NumProc is the number of worker processes, 1 to the number of CPUs
	// (`num-proc`, default the number of CPUs).
	NumProc int
	// PIDFile receives the supervisor's PID (`pid-file`, default /dev/null).
	PIDFile string
	// EventLoop is accepted for compatibility and not used
	// (`event-loop`, "asyncio" or "uvloop", default "asyncio").
	EventLoop string
	// IPCBasePath is accepted for compatibility and not used
	// (`ipc-base-path`, default /tmp/backend.ai/ipc).
	IPCBasePath string
	// ScandirLimit is the maximum number of entries of one directory
	// listing, 0 for no limit (`scandir-limit`, default 1000).
	ScandirLimit int
	// MaxUploadSize is the largest upload in bytes, or Unlimited
	// (`max-upload-size`, default "100g").
	MaxUploadSize int64
	// Secret is the HMAC key of the upload and download JWTs (`secret`,
	// required). It is never sent to the manager.
	Secret string
	// SessionExpire is the lifetime of those JWTs (`session-expire`,
	// required).
	SessionExpire Duration
	// UID and GID are the ids a root process drops to (`user` and `group`,
	// default the owner of the running executable).
	UID, GID int
	// AiomonitorTermuiPort and AiomonitorWebuiPort are accepted for
	// compatibility and not used (`aiomonitor-termui-port`, alias
	// `aiomonitor-port`, default 48300, and `aiomonitor-webui-port`, default
	// 49300).
	AiomonitorTermuiPort, AiomonitorWebuiPort int
	// UseWatcher enables the privileged helper processes (`use-watcher`,
	// strict bool, default false).
	UseWatcher bool
	// WatcherInsockPathPrefix and WatcherOutsockPathPrefix are the ZeroMQ
	// socket prefixes of the watcher, required when UseWatcher is true.
	WatcherInsockPathPrefix, WatcherOutsockPathPrefix string
	// UseExperimentalRedisEventDispatcher is accepted for compatibility and
	// not used (`use-experimental-redis-event-dispatcher`, default false).
	UseExperimentalRedisEventDispatcher bool

	// IOEngine selects how files are read and written (`io-engine`: "auto",
	// "io_uring" or "syscall", default "auto"). BACKEND_IO_ENGINE overrides
	// it.
	IOEngine string
	// DataPath selects how download bodies move (`data-path`: "auto",
	// "sendfile" for sendfile/splice, "copy" for read and write, default
	// "auto"). BACKEND_DATA_PATH overrides it.
	DataPath string
	// ShutdownGrace is how long in-flight transfers may continue after
	// SIGTERM (`shutdown-grace`, default 60s).
	ShutdownGrace time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout are the net/http server
	// timeouts of the client API (`read-timeout`, default 60s,
	// `write-timeout`, default 0, and `idle-timeout`, default 120s). Zero
	// means no timeout.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// UploadIdleTimeout ends a PATCH whose body sends nothing for this long
	// and releases its session (`upload-idle-timeout`, default 10s). Zero
	// means no limit.
	UploadIdleTimeout time.Duration
	// RegisterNode writes this node's URLs to etcd (`register-node`, strict
	// bool, default false).
	RegisterNode bool
	// UploadLock selects what keeps the requests of one upload session
	// apart (`upload-lock`, default "flock"). "flock" locks the partial
	// file, which serves one node, or several nodes whose shared file system
	// passes flock(2) between them. "etcd" takes a lock per session in etcd
	// and records each session's durable offset there, for several proxies
	// on one volume whatever the file system.
	UploadLock string
	// ClientURL and ManagerURL are the base URLs written to etcd when
	// RegisterNode is true (`announce-client-url`, `announce-manager-url`).
	// The default is built from the listener's scheme and service-addr, with
	// the host name of this machine in place of an unspecified host. A
	// trailing slash is removed because the manager appends route paths.
	ClientURL, ManagerURL string
}

// Listener is an [api.client] or [api.manager] table.
type Listener struct {
	// ServiceAddr is the bind address. An empty host binds all interfaces.
	ServiceAddr HostPort
	// SSLEnabled serves HTTPS with SSLCert and SSLPrivkey, which are then
	// required.
	SSLEnabled bool
	// SSLCert and SSLPrivkey are PEM files, "" when not given.
	SSLCert, SSLPrivkey string
	// Secret is the value the manager sends in X-BackendAI-Storage-Auth-Token.
	// Only [api.manager] has it.
	Secret string
}

// Debug is the [debug] table.
type Debug struct {
	// Enabled is `enabled` from the file. Unlike upstream, a --debug flag
	// does not overwrite it, so the caller ORs the two.
	Enabled bool
	// Asyncio and EnhancedAiomonitorTaskInfo are accepted for compatibility
	// and not used.
	Asyncio, EnhancedAiomonitorTaskInfo bool
	// LogEvents logs every produced and dispatched event at debug level.
	LogEvents bool
}

// Logging is the [logging] table.
type Logging struct {
	// Level is the threshold of every driver: CRITICAL, ERROR, WARNING, INFO,
	// DEBUG or NOTSET, upper-case (default INFO).
	Level string
	// PkgNS maps a logger namespace ("" is the root) to its threshold, in
	// the same level names. Given tables replace the default
	// {"" = WARNING, "ai.backend" = INFO, "tests" = DEBUG} as a whole.
	PkgNS map[string]string
	// Drivers are the enabled drivers, without duplicates: "console",
	// "file" and "logstash" (default ["console"]).
	Drivers []string

	Console  LoggingConsole
	File     LoggingFile
	Logstash LoggingLogstash
}

// LoggingConsole is the [logging.console] table.
type LoggingConsole struct {
	// Colored forces ANSI colours on or off. nil colours the output when
	// stderr is a terminal.
	Colored *bool
	// Format is "simple" or "verbose" (default "verbose").
	Format string
}

// LoggingFile is the [logging.file] table.
type LoggingFile struct {
	// Path is the log directory, created by the logger when missing.
	Path string
	// Filename is the name of the current log file inside Path.
	Filename string
	// BackupCount is the number of rotated files kept, 1 to 100 (default 5).
	BackupCount int
	// RotationSize is the size in bytes at which the file rotates
	// (default "10M").
	RotationSize int64
}

// LoggingLogstash is the [logging.logstash] table.
type LoggingLogstash struct {
	// Endpoint is the logstash TCP input.
	Endpoint HostPort
	// Protocol is "tcp", the only protocol this build supports.
	Protocol string
	// SSLEnabled sends over TLS (default true), and SSLVerify checks the
	// server certificate (default true).
	SSLEnabled, SSLVerify bool
}

// Volume is one [volume.NAME] table.
type Volume struct {
	// Name is NAME, the volume name of every API call.
	Name string
	// Backend is the driver name. This build supports only "vfs".
	Backend string
	// Path is the mount point, an existing directory.
	Path string
	// FSPrefix is a relative path only echoed back by GET /volumes
	// (`fsprefix`, default ".").
	FSPrefix string
	// Options are the backend-specific options, nil when absent.
	Options map[string]any
}

// Load reads, checks and defaults the config file at path. env returns
// environment variables: os.Getenv in production, or nil for none. The
// overrides it supplies replace keys of the file before the check.
//
// Load does not change the working directory and creates nothing. A file
// that is not valid TOML returns the parse error. A file with bad keys
// returns a *ValidationError that lists all of them.
func Load(path string, env func(string) string) (*Config, error) {
	file, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve config path %q: %w", path, err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var raw map[string]any
	meta, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, fmt.Errorf("parse config %s: %w", file, err)
	}
	if raw == nil {
		raw = map[string]any{}
	}

	c := &checker{
		dir:       filepath.Dir(file),
		position:  keyPositions(meta),
		envSource: applyEnv(raw, env),
	}
	cfg := &Config{File: file, Dir: c.dir}
	c.checkFile(cfg, raw, volumeOrder(meta, raw))
	if len(c.errors) > 0 {
		return nil, &ValidationError{File: file, Errors: c.errors}
	}
	cfg.Ignored = c.ignored
	cfg.Unknown = c.unknown
	return cfg, nil
}

// keyPositions maps each key path of the file to its index in the file.
func keyPositions(meta toml.MetaData) map[string]int {
	keys := meta.Keys()
	positions := make(map[string]int, len(keys))
	for i, key := range keys {
		positions[key.String()] = i
	}
	return positions
}

// volumeOrder returns the names under [volume] in the order the file
// defines them. The decoded map has no order, so the names come from the
// metadata.
func volumeOrder(meta toml.MetaData, raw map[string]any) []string {
	volumes, _ := raw["volume"].(map[string]any)
	seen := map[string]bool{}
	var names []string
	for _, key := range meta.Keys() {
		if len(key) < 2 || key[0] != "volume" || seen[key[1]] {
			continue
		}
		if _, ok := volumes[key[1]]; ok {
			seen[key[1]] = true
			names = append(names, key[1])
		}
	}
	return names
}
