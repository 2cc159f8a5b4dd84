package logging

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
)

// Levels of the config that slog lacks. LevelNotset as a threshold lets
// every record through.
const (
	LevelCritical = slog.LevelError + 4
	LevelNotset   = slog.Level(math.MinInt32)
)

// ParseLevel converts a config level name (CRITICAL, ERROR, WARNING, INFO,
// DEBUG or NOTSET, any case) to a slog level.
func ParseLevel(name string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "CRITICAL":
		return LevelCritical, nil
	case "ERROR":
		return slog.LevelError, nil
	case "WARNING":
		return slog.LevelWarn, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "DEBUG":
		return slog.LevelDebug, nil
	case "NOTSET":
		return LevelNotset, nil
	}
	return 0, fmt.Errorf("invalid level %q (use CRITICAL, ERROR, WARNING, INFO, DEBUG or NOTSET)", name)
}

// LevelName returns the name that log output shows for a record level. A
// level between two names takes the lower one, so slog.LevelWarn+1 is
// WARNING.
func LevelName(level slog.Level) string {
	switch {
	case level >= LevelCritical:
		return "CRITICAL"
	case level >= slog.LevelError:
		return "ERROR"
	case level >= slog.LevelWarn:
		return "WARNING"
	case level >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}

// pythonNamespaces maps the logger namespaces of the Python implementation
// that have a counterpart here. Other Python namespaces ("aiotools",
// "ai.backend.storage.api" and so on) match no logger of this service.
var pythonNamespaces = map[string]string{
	"ai.backend":     "storage-proxy",
	"aiohttp":        "http",
	"aiohttp.access": "http.access",
}

// thresholds holds the minimum level of each logger namespace. A logger
// named "a.b.c" uses the entry of "a.b.c", else "a.b", else "a", else the
// root "".
type thresholds map[string]slog.Level

// newThresholds translates pkg-ns. Python names are mapped first so that an
// entry under our own name wins over its Python counterpart. Like Python's
// logging module, a NOTSET namespace inherits the threshold of its parent, a
// NOTSET root lets every record through, and a missing root is WARNING.
func newThresholds(pkgNS map[string]string) (thresholds, error) {
	t := thresholds{"": slog.LevelWarn}
	apply := func(namespace, levelName string) error {
		level, err := ParseLevel(levelName)
		if err != nil {
			return fmt.Errorf("logging.pkg-ns.%q: %w", namespace, err)
		}
		if translated, ok := pythonNamespaces[namespace]; ok {
			namespace = translated
		}
		if level == LevelNotset && namespace != "" {
			delete(t, namespace)
			return nil
		}
		t[namespace] = level
		return nil
	}

	for namespace, levelName := range pkgNS {
		if _, isPython := pythonNamespaces[namespace]; isPython {
			if err := apply(namespace, levelName); err != nil {
				return nil, err
			}
		}
	}
	for namespace, levelName := range pkgNS {
		if _, isPython := pythonNamespaces[namespace]; !isPython {
			if err := apply(namespace, levelName); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// of returns the threshold of the logger called name.
func (t thresholds) of(name string) slog.Level {
	for namespace := name; ; {
		if level, ok := t[namespace]; ok {
			return level
		}
		i := strings.LastIndexByte(namespace, '.')
		if i < 0 {
			break
		}
		namespace = namespace[:i]
	}
	return t[""]
}

// min returns the lowest threshold of any namespace.
func (t thresholds) min() slog.Level {
	lowest := t[""]
	for _, level := range t {
		lowest = min(lowest, level)
	}
	return lowest
}
