package config

import (
	"path/filepath"
	"strconv"
)

// envOverride is one environment variable that replaces a key of the file.
type envOverride struct {
	name string
	key  []string
}

// envOverrides are the variables that replace a single key with the
// variable's text. BACKEND_LOG_FILE, BACKEND_LOG_FILE_COUNT and
// BACKEND_LOG_FILE_SIZE need a conversion and are handled in applyEnv.
var envOverrides = []envOverride{
	{"BACKEND_NAMESPACE", []string{"etcd", "namespace"}},
	{"BACKEND_ETCD_ADDR", []string{"etcd", "addr"}},
	{"BACKEND_ETCD_USER", []string{"etcd", "user"}},
	{"BACKEND_ETCD_PASSWORD", []string{"etcd", "password"}},
	{"BACKEND_IO_ENGINE", []string{"storage-proxy", "io-engine"}},
	{"BACKEND_DATA_PATH", []string{"storage-proxy", "data-path"}},
}

// applyEnv writes the environment overrides into the decoded file before it
// is checked, like upstream does, and returns which variable set each key
// path. Variables that are unset or empty change nothing, because env cannot
// tell the two apart.
//
// The BACKEND_LOG_FILE variables only fill [logging.file]. They do not add
// "file" to logging.drivers.
func applyEnv(raw map[string]any, env func(string) string) map[string]string {
	sources := map[string]string{}
	if env == nil {
		return sources
	}
	set := func(name string, value any, key ...string) {
		setKey(raw, key, value)
		sources[renderKeyPath(key...)] = name
	}

	for _, o := range envOverrides {
		if value := env(o.name); value != "" {
			set(o.name, value, o.key...)
		}
	}

	if value := env("BACKEND_LOG_FILE"); value != "" {
		set("BACKEND_LOG_FILE", filepath.Dir(value), "logging", "file", "path")
		set("BACKEND_LOG_FILE", filepath.Base(value), "logging", "file", "filename")
	}
	if value := env("BACKEND_LOG_FILE_COUNT"); value != "" {
		set("BACKEND_LOG_FILE_COUNT", integerOrText(value), "logging", "file", "backup-count")
	}
	if value := env("BACKEND_LOG_FILE_SIZE"); value != "" {
		// The variable is a number of MiB, as upstream reads it.
		set("BACKEND_LOG_FILE_SIZE", value+"M", "logging", "file", "rotation-size")
	}
	return sources
}

// integerOrText returns s as an int64 when it is one, so that it passes the
// integer check of the key, and as the string otherwise, so that the check
// reports it.
func integerOrText(s string) any {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	return s
}

// setKey stores value at key, creating missing tables and replacing values
// that are in the way.
func setKey(raw map[string]any, key []string, value any) {
	current := raw
	for _, part := range key[:len(key)-1] {
		next, ok := current[part].(map[string]any)
		if !ok {
			next = map[string]any{}
			current[part] = next
		}
		current = next
	}
	current[key[len(key)-1]] = value
}
