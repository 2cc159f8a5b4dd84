package logging

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/bai-storage/storage-proxy/control/config"
)

// TestMain fails the package when a test leaves a goroutine running, such
// as the send loop of a logstash driver that Close did not stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newConsole returns a Logging with only the simple console driver, writing
// to the returned buffer.
func newConsole(t *testing.T, level string, pkgNS map[string]string) (*Logging, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	colored := false
	cfg := config.Logging{
		Level:   level,
		PkgNS:   pkgNS,
		Drivers: []string{"console"},
		Console: config.LoggingConsole{Colored: &colored, Format: "simple"},
	}
	l, err := New(cfg, Options{Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, &out
}

func TestParseLevel(t *testing.T) {
	cases := map[string]slog.Level{
		"CRITICAL": LevelCritical,
		"error":    slog.LevelError,
		"Warning":  slog.LevelWarn,
		"INFO":     slog.LevelInfo,
		"debug":    slog.LevelDebug,
		"NOTSET":   LevelNotset,
	}
	for name, want := range cases {
		got, err := ParseLevel(name)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v, expected %v", name, got, err, want)
		}
	}
	for _, name := range []string{"", "WARN", "verbose", "FATAL"} {
		if _, err := ParseLevel(name); err == nil {
			t.Errorf("ParseLevel(%q) succeeded, expected an error", name)
		}
	}
}

func TestLevelName(t *testing.T) {
	cases := map[slog.Level]string{
		LevelCritical + 10:  "CRITICAL",
		LevelCritical:       "CRITICAL",
		slog.LevelError:     "ERROR",
		slog.LevelWarn + 1:  "WARNING",
		slog.LevelWarn:      "WARNING",
		slog.LevelInfo:      "INFO",
		slog.LevelDebug:     "DEBUG",
		slog.LevelDebug - 4: "DEBUG",
	}
	for level, want := range cases {
		if got := LevelName(level); got != want {
			t.Errorf("LevelName(%d) = %q, expected %q", level, got, want)
		}
	}
}

func TestPkgNSFiltering(t *testing.T) {
	pkgNS := map[string]string{
		"":                        "WARNING",
		"ai.backend":              "INFO",
		"aiohttp":                 "ERROR",
		"storage-proxy.dataplane": "DEBUG",
		"storage-proxy.uring":     "NOTSET",
		"aiotools":                "DEBUG",
	}
	l, out := newConsole(t, "DEBUG", pkgNS)

	cases := []struct {
		logger  string
		level   slog.Level
		written bool
	}{
		{"storage-proxy", slog.LevelInfo, true},
		{"storage-proxy", slog.LevelDebug, false},
		{"storage-proxy.control", slog.LevelInfo, true},
		{"storage-proxy.control", slog.LevelDebug, false},
		{"storage-proxy.dataplane", slog.LevelDebug, true},
		// NOTSET inherits from "storage-proxy", which "ai.backend" set.
		{"storage-proxy.uring", slog.LevelDebug, false},
		{"storage-proxy.uring", slog.LevelInfo, true},
		{"http.access", slog.LevelWarn, false},
		{"http.access", slog.LevelError, true},
		{"other", slog.LevelInfo, false},
		{"other", slog.LevelWarn, true},
		{"storage-proxyx", slog.LevelInfo, false},
	}
	for _, c := range cases {
		out.Reset()
		message := "message of " + c.logger
		l.Logger(c.logger).Log(t.Context(), c.level, message)
		if got := strings.Contains(out.String(), message); got != c.written {
			t.Errorf("%s at %s: written = %v, expected %v", c.logger, LevelName(c.level), got, c.written)
		}
		if enabled := l.Logger(c.logger).Enabled(t.Context(), c.level); enabled != c.written {
			t.Errorf("%s at %s: Enabled = %v, expected %v", c.logger, LevelName(c.level), enabled, c.written)
		}
	}
}

func TestHandlerLevelAppliesToAllNamespaces(t *testing.T) {
	l, out := newConsole(t, "ERROR", map[string]string{"": "DEBUG", "storage-proxy": "DEBUG"})
	l.Logger("storage-proxy").Warn("hidden warning")
	l.Logger("other").Info("hidden info")
	l.Logger("storage-proxy").Error("shown error")
	if got := out.String(); got != "ERROR shown error\n" {
		t.Errorf("output = %q, expected only the error", got)
	}
	if got := l.MinLevel(); got != slog.LevelError {
		t.Errorf("MinLevel = %v, expected ERROR", got)
	}
}

func TestOwnNameWinsOverPython(t *testing.T) {
	l, out := newConsole(t, "DEBUG", map[string]string{"ai.backend": "ERROR", "storage-proxy": "DEBUG", "aiohttp": "DEBUG", "http.access": "ERROR"})
	l.Logger("storage-proxy").Debug("service debug")
	l.Logger("http.access").Info("access info")
	if got := out.String(); got != "DEBUG service debug\n" {
		t.Errorf("output = %q, expected only the service debug line", got)
	}
}

func TestRootNotsetAndDefaults(t *testing.T) {
	l, out := newConsole(t, "NOTSET", map[string]string{"": "NOTSET"})
	l.Logger("anything").Debug("low")
	if !strings.Contains(out.String(), "low") {
		t.Errorf("NOTSET root dropped a debug record: %q", out.String())
	}
	if got := l.MinLevel(); got != LevelNotset {
		t.Errorf("MinLevel = %v, expected LevelNotset", got)
	}

	// nil pkg-ns is upstream's default: root WARNING, service INFO.
	l, out = newConsole(t, "", nil)
	l.Logger("storage-proxy.control").Info("service info")
	l.Logger("http.access").Info("access info")
	if got := out.String(); got != "INFO service info\n" {
		t.Errorf("output = %q, expected only the service line", got)
	}
	if got := l.MinLevel(); got != slog.LevelInfo {
		t.Errorf("MinLevel = %v, expected INFO", got)
	}
}

// TestWorkerHandlerFiltersLikeTheSupervisor checks that a worker's handler
// enables exactly the records that the supervisor's Logging for the same
// config emits, per logger name, whether the name comes from WithName or
// from a "logger" attribute.
func TestWorkerHandlerFiltersLikeTheSupervisor(t *testing.T) {
	cases := []config.Logging{
		{Level: "INFO"},
		{Level: "ERROR", PkgNS: map[string]string{"": "DEBUG"}},
		{Level: "DEBUG", PkgNS: map[string]string{"": "WARNING", "storage-proxy.dataplane": "DEBUG"}},
		{Level: "DEBUG", PkgNS: map[string]string{"": "CRITICAL", "ai.backend": "INFO"}},
		{Level: "INFO", PkgNS: map[string]string{"": "WARNING", "aiohttp": "INFO", "aiohttp.access": "ERROR"}},
		{Level: "NOTSET", PkgNS: map[string]string{"": "NOTSET"}},
	}
	names := []string{"storage-proxy", "storage-proxy.dataplane", "storage-proxy.uring", "http", "http.access", "other"}
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
	for _, cfg := range cases {
		cfg.Drivers = []string{"console"}
		l, err := New(cfg, Options{Stderr: &bytes.Buffer{}})
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		worker, err := NewWorkerHandler(io.Discard, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range names {
			supervisor := l.Logger(name).Handler()
			byName := WithName(worker, name)
			byAttr := worker.WithAttrs([]slog.Attr{slog.String("logger", name)})
			for _, level := range levels {
				want := supervisor.Enabled(t.Context(), level)
				if got := byName.Enabled(t.Context(), level); got != want {
					t.Errorf("%+v: worker logger %s (WithName) enables %v: %v, the supervisor %v", cfg.PkgNS, name, level, got, want)
				}
				if got := byAttr.Enabled(t.Context(), level); got != want {
					t.Errorf("%+v: worker logger %s (logger attribute) enables %v: %v, the supervisor %v", cfg.PkgNS, name, level, got, want)
				}
			}
		}
	}
	if _, err := NewWorkerHandler(io.Discard, config.Logging{Level: "LOUD"}); err == nil {
		t.Error("NewWorkerHandler with an invalid level succeeded")
	}
}

// TestLoggerAttributeNamesTheLogger checks that With("logger", name) on the
// supervisor's handler selects the name's pkg-ns threshold, and that inside
// a group the attribute stays an attribute.
func TestLoggerAttributeNamesTheLogger(t *testing.T) {
	l, out := newConsole(t, "DEBUG", map[string]string{"": "INFO", "http.access": "ERROR"})
	root := slog.New(l.Handler())
	root.With("logger", "http.access").Info("access info")
	root.With("logger", "http.access").Error("access error")
	root.WithGroup("req").With("logger", "http.access").Info("grouped")
	if got, want := out.String(), "ERROR access error\nINFO grouped req.logger=http.access\n"; got != want {
		t.Errorf("output = %q, expected %q", got, want)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := map[string]config.Logging{
		"bad level":              {Level: "LOUD"},
		"bad pkg-ns":             {PkgNS: map[string]string{"": "LOUD"}},
		"graylog":                {Drivers: []string{"console", "graylog"}},
		"unknown driver":         {Drivers: []string{"syslog"}},
		"file without path":      {Drivers: []string{"file"}},
		"logstash udp":           {Drivers: []string{"logstash"}, Logstash: config.LoggingLogstash{Endpoint: config.HostPort{Host: "127.0.0.1", Port: 5044}, Protocol: "udp"}},
		"logstash no endpoint":   {Drivers: []string{"logstash"}},
		"logstash listed twice":  {Drivers: []string{"logstash", "logstash"}, Logstash: config.LoggingLogstash{Endpoint: config.HostPort{Host: "127.0.0.1", Port: 5044}}},
		"file in a regular file": {Drivers: []string{"file"}, File: config.LoggingFile{Path: "/dev/null/logs", Filename: "x.log"}},
	}
	for name, cfg := range cases {
		if l, err := New(cfg, Options{Stderr: &bytes.Buffer{}}); err == nil {
			l.Close()
			t.Errorf("New with %s succeeded, expected an error", name)
		}
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	l, _ := newConsole(t, "INFO", nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestDefaultOptions(t *testing.T) {
	opts := withDefaults(Options{})
	if opts.Stderr != os.Stderr {
		t.Errorf("Stderr default = %v, expected os.Stderr", opts.Stderr)
	}
	if opts.ProcessName == "" || opts.LogstashQueueSize != 1024 {
		t.Errorf("defaults = %+v", opts)
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a bytes.Buffer reported as a terminal")
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if isTerminal(devNull) {
		t.Error("/dev/null reported as a terminal")
	}
}

func TestEmptyDriversWriteNothing(t *testing.T) {
	var out bytes.Buffer
	l, err := New(config.Logging{Drivers: []string{}}, Options{Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Logger("storage-proxy").Error("nowhere")
	if out.Len() != 0 {
		t.Errorf("output with no drivers = %q", out.String())
	}
}
