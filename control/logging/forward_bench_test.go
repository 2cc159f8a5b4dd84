package logging

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/config"
)

// accessAttrs are the attributes of one client API access log line.
func accessAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("method", "GET"),
		slog.String("path", "/download"),
		slog.String("query", "token=REDACTED"),
		slog.Int("status", 200),
		slog.Int64("bytes", 4096),
		slog.Duration("duration", 87*time.Microsecond),
		slog.String("remote", "127.0.0.1:53124"),
	}
}

// BenchmarkForwardAccessLine measures a worker's cost of one access log
// line: encoding it and writing it to the supervisor's pipe (io.Discard
// here).
func BenchmarkForwardAccessLine(b *testing.B) {
	logger := slog.New(NewForwardHandler(io.Discard, slog.LevelInfo)).With("logger", "http.access")
	attrs := accessAttrs()
	b.ReportAllocs()
	for b.Loop() {
		logger.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
	}
}

// BenchmarkRelayAccessLine measures the supervisor's cost of one forwarded
// access log line, decoded and written by a console driver to io.Discard.
func BenchmarkRelayAccessLine(b *testing.B) {
	var line []byte
	capture := writerFunc(func(p []byte) (int, error) { line = append(line[:0], p...); return len(p), nil })
	slog.New(NewForwardHandler(capture, slog.LevelInfo)).With("logger", "http.access").
		LogAttrs(context.Background(), slog.LevelInfo, "request", accessAttrs()...)
	l := discardLogging(b)
	b.ReportAllocs()
	for b.Loop() {
		l.relayLine(line[:len(line)-1], false, nil)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// discardLogging returns a Logging whose console driver writes the
// simple format to io.Discard, at INFO for every logger.
func discardLogging(b *testing.B) *Logging {
	b.Helper()
	cfg := config.Logging{
		Level:   "INFO",
		PkgNS:   map[string]string{"": "INFO"},
		Drivers: []string{"console"},
		Console: config.LoggingConsole{Format: "simple"},
	}
	l, err := New(cfg, Options{Stderr: io.Discard, ProcessName: "storage-proxy-bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}
