package config

import (
	"slices"
	"strings"
	"time"
)

// tomlWriter builds a TOML document one table at a time.
type tomlWriter struct {
	b    strings.Builder
	mask bool
}

func (w *tomlWriter) table(path ...string) {
	if w.b.Len() > 0 {
		w.b.WriteByte('\n')
	}
	w.b.WriteString("[" + renderKeyPath(path...) + "]\n")
}

func (w *tomlWriter) comment(text string) {
	w.b.WriteString("# " + text + "\n")
}

func (w *tomlWriter) value(key string, v any) {
	w.b.WriteString(renderKey(key) + " = " + renderValue(v) + "\n")
}

// secret writes a secret as "***" when masking, unless it is empty.
func (w *tomlWriter) secret(key, v string) {
	if w.mask && v != "" {
		v = "***"
	}
	w.value(key, v)
}

// optional writes a string only when it is set, because TOML has no null.
func (w *tomlWriter) optional(key, v string) {
	if v != "" {
		w.value(key, v)
	}
}

func (w *tomlWriter) duration(key string, d time.Duration) {
	w.value(key, Duration{Seconds: d.Seconds()}.String())
}

// Effective returns the configuration as Load produced it, defaults included,
// as a TOML document that Load accepts again. With mask, the non-empty
// values of storage-proxy.secret, api.manager.secret and etcd.password are
// written as "***". Volume options are written unmasked, so NOTE: callers
// that print this must treat options of vendor backends as secret.
func (c *Config) Effective(mask bool) string {
	w := &tomlWriter{mask: mask}
	w.comment("Effective configuration of " + c.File)
	c.writeEtcd(w)
	c.writeStorageProxy(w)
	writeListener(w, c.ClientAPI, false, "api", "client")
	writeListener(w, c.ManagerAPI, true, "api", "manager")
	c.writeDebug(w)
	c.writeLogging(w)
	c.writeVolumes(w)
	return w.b.String()
}

func (c *Config) writeEtcd(w *tomlWriter) {
	e := c.Etcd
	w.table("etcd")
	w.value("namespace", e.Namespace)
	w.value("addr", e.Addr.String())
	w.value("user", e.User)
	w.secret("password", e.Password)
	w.value("embedded", e.Embedded)
	w.value("embedded-dir", e.EmbeddedDir)
}

func (c *Config) writeStorageProxy(w *tomlWriter) {
	sp := c.StorageProxy
	w.table("storage-proxy")
	w.value("node-id", sp.NodeID)
	w.value("num-proc", sp.NumProc)
	w.value("pid-file", sp.PIDFile)

	w.value("scandir-limit", sp.ScandirLimit)
	w.value("max-upload-size", FormatSize(sp.MaxUploadSize))
	w.secret("secret", sp.Secret)
	w.value("session-expire", sp.SessionExpire.String())
	w.value("user", sp.UID)
	w.value("group", sp.GID)

	w.value("use-watcher", sp.UseWatcher)
	w.optional("watcher-insock-path-prefix", sp.WatcherInsockPathPrefix)
	w.optional("watcher-outsock-path-prefix", sp.WatcherOutsockPathPrefix)

	w.value("io-engine", sp.IOEngine)
	w.value("data-path", sp.DataPath)
	w.duration("shutdown-grace", sp.ShutdownGrace)
	w.duration("read-timeout", sp.ReadTimeout)
	w.duration("write-timeout", sp.WriteTimeout)
	w.duration("idle-timeout", sp.IdleTimeout)
	w.duration("upload-idle-timeout", sp.UploadIdleTimeout)
	w.value("register-node", sp.RegisterNode)
	w.value("upload-lock", sp.UploadLock)
	w.value("announce-client-url", sp.ClientURL)
	w.value("announce-manager-url", sp.ManagerURL)

	w.comment("Accepted for compatibility with the Python implementation and not used:")
	w.value("event-loop", sp.EventLoop)
	w.value("ipc-base-path", sp.IPCBasePath)
	w.value("aiomonitor-termui-port", sp.AiomonitorTermuiPort)
	w.value("aiomonitor-webui-port", sp.AiomonitorWebuiPort)
	w.value("use-experimental-redis-event-dispatcher", sp.UseExperimentalRedisEventDispatcher)
}

func writeListener(w *tomlWriter, l Listener, manager bool, path ...string) {
	w.table(path...)
	w.value("service-addr", l.ServiceAddr.String())
	w.value("ssl-enabled", l.SSLEnabled)
	w.optional("ssl-cert", l.SSLCert)
	w.optional("ssl-privkey", l.SSLPrivkey)
	if manager {
		w.secret("secret", l.Secret)
	}
}

func (c *Config) writeDebug(w *tomlWriter) {
	d := c.Debug
	w.table("debug")
	w.value("enabled", d.Enabled)
	w.value("log-events", d.LogEvents)
	w.comment("Accepted for compatibility with the Python implementation and not used:")
	w.value("asyncio", d.Asyncio)
	w.value("enhanced-aiomonitor-task-info", d.EnhancedAiomonitorTaskInfo)
}

func (c *Config) writeLogging(w *tomlWriter) {
	lg := c.Logging
	w.table("logging")
	w.value("level", lg.Level)
	w.value("drivers", lg.Drivers)

	w.table("logging", "pkg-ns")
	names := make([]string, 0, len(lg.PkgNS))
	for name := range lg.PkgNS {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		w.value(name, lg.PkgNS[name])
	}

	w.table("logging", "console")
	if lg.Console.Colored != nil {
		w.value("colored", *lg.Console.Colored)
	}
	w.value("format", lg.Console.Format)

	if lg.File.Path != "" || lg.File.Filename != "" {
		w.table("logging", "file")
		w.optional("path", lg.File.Path)
		w.optional("filename", lg.File.Filename)
		w.value("backup-count", lg.File.BackupCount)
		w.value("rotation-size", FormatSize(lg.File.RotationSize))
	}

	if lg.Logstash.Endpoint.Host != "" {
		w.table("logging", "logstash")
		w.value("endpoint", lg.Logstash.Endpoint.String())
		w.value("protocol", lg.Logstash.Protocol)
		w.value("ssl-enabled", lg.Logstash.SSLEnabled)
		w.value("ssl-verify", lg.Logstash.SSLVerify)
	}
}

func (c *Config) writeVolumes(w *tomlWriter) {
	w.table("volume")
	for _, v := range c.Volumes {
		w.table("volume", v.Name)
		w.value("backend", v.Backend)
		w.value("path", v.Path)
		w.value("fsprefix", v.FSPrefix)
		if v.Options != nil {
			w.value("options", v.Options)
		}
	}
}
