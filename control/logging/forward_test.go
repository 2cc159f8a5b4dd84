package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/config"
)

// relayThroughPipe runs log in a goroutine with a forward handler on one
// end of a pipe, and Relay on the other end, and returns Relay's error.
func relayThroughPipe(t *testing.T, l *Logging, level slog.Leveler, log func(h slog.Handler), attrs ...slog.Attr) error {
	t.Helper()
	reader, writer := io.Pipe()
	go func() {
		log(NewForwardHandler(writer, level))
		writer.Close()
	}()
	return l.Relay(reader, attrs...)
}

func TestRelayRoundTrip(t *testing.T) {
	l, path := newFileLogging(t, 1, 1<<20)
	when := time.Date(2024, 5, 1, 9, 30, 0, 123456000, time.UTC)

	err := relayThroughPipe(t, l, slog.LevelDebug, func(h slog.Handler) {
		logger := slog.New(WithName(h, "storage-proxy.dataplane")).With("session", "s1").WithGroup("req")
		logger.Warn("chunk written", "offset", int64(4096), "took", 250*time.Millisecond, "at", when, "ok", true)
		logger.Debug("debug detail")
	}, slog.Int("worker", 3))
	if err != nil {
		t.Fatalf("Relay: %v", err)
	}

	records := readJSONLines(t, path)
	if len(records) != 2 {
		t.Fatalf("file has %d records, expected 2: %v", len(records), records)
	}
	want := map[string]any{
		"level":       "WARNING",
		"name":        "storage-proxy.dataplane",
		"message":     "chunk written",
		"processName": filepath.Base(os.Args[0]),
		"worker":      3.0,
		"session":     "s1",
		"req":         map[string]any{"offset": 4096.0, "took": "250ms", "at": "2024-05-01T09:30:00.123456Z", "ok": true},
	}
	for key, value := range want {
		if !reflect.DeepEqual(records[0][key], value) {
			t.Errorf("record[%q] = %#v, expected %#v", key, records[0][key], value)
		}
	}
	if records[1]["level"] != "DEBUG" || records[1]["message"] != "debug detail" {
		t.Errorf("second record = %v, expected the debug record", records[1])
	}
}

func TestRelayKeepsPIDAndTime(t *testing.T) {
	console := newSyncBuffer()
	colored := false
	l, err := New(config.Logging{Level: "INFO", PkgNS: map[string]string{"": "INFO"}, Drivers: []string{"console"}, Console: config.LoggingConsole{Colored: &colored}}, Options{Stderr: console})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	forwarded := `{"time":"2024-05-01T09:30:00.5Z","level":0,"name":"http.access","msg":"GET /download 200","pid":4242,"process":"worker"}` + "\n"
	if err := l.Relay(strings.NewReader(forwarded)); err != nil {
		t.Fatal(err)
	}
	wantTime := time.Date(2024, 5, 1, 9, 30, 0, 500e6, time.UTC).Local().Format("2006-01-02 15:04:05.000")
	want := wantTime + " INFO http.access [4242] GET /download 200\n"
	if got := console.String(); got != want {
		t.Errorf("console line\n got %q\nwant %q", got, want)
	}
}

func TestRelayAppliesSupervisorFilters(t *testing.T) {
	l, out := newConsole(t, "DEBUG", map[string]string{"": "WARNING", "storage-proxy.dataplane": "DEBUG"})
	err := relayThroughPipe(t, l, slog.LevelDebug, func(h slog.Handler) {
		slog.New(WithName(h, "storage-proxy.dataplane")).Debug("dataplane debug")
		slog.New(WithName(h, "storage-proxy.control")).Info("control info")
		slog.New(WithName(h, "storage-proxy.control")).Error("control error")
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "DEBUG dataplane debug\nERROR control error\n"; got != want {
		t.Errorf("relayed output = %q, expected %q", got, want)
	}
}

func TestForwardHandlerLevel(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(NewForwardHandler(&out, slog.LevelWarn))
	logger.Info("below")
	logger.Warn("at level")
	if got := strings.Count(out.String(), "\n"); got != 1 {
		t.Fatalf("forwarded %d lines, expected 1: %s", got, out.String())
	}
	if !strings.Contains(out.String(), `"msg":"at level"`) {
		t.Errorf("forwarded line %s lacks the warning", out.String())
	}
	if slog.New(NewForwardHandler(&out, nil)).Enabled(t.Context(), slog.LevelDebug) {
		t.Error("a nil level enabled DEBUG, expected INFO")
	}
}

func TestRelayReportsInvalidLines(t *testing.T) {
	l, out := newConsole(t, "INFO", map[string]string{"": "INFO"})
	valid := `{"time":"2024-05-01T09:30:00Z","level":0,"name":"storage-proxy","msg":"still relayed","pid":1,"process":"w"}`
	input := strings.Join([]string{
		"panic: not a record",
		`{"time":"2024-05-01T09:30:00Z","level":0,"name":"storage-proxy","msg":"bad kind","attrs":[{"k":"x","t":"Complex","v":1}]}`,
		strings.Repeat("x", maxForwardLine+10),
		valid,
	}, "\n")
	if err := l.Relay(strings.NewReader(input), slog.Int("worker", 2)); err != nil {
		t.Fatal(err)
	}

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("output has %d lines, expected 4:\n%s", len(lines), out.String())
	}
	for i, reason := range []string{"invalid character", `unknown kind \"Complex\"`, "line longer than 1 MiB"} {
		if !strings.HasPrefix(lines[i], "WARNING invalid forwarded log record worker=2 line=") || !strings.Contains(lines[i], reason) {
			t.Errorf("line %d = %.200q, expected a warning about %s", i, lines[i], reason)
		}
		if len(lines[i]) > 400 {
			t.Errorf("line %d has %d bytes, expected the invalid line cut to 200", i, len(lines[i]))
		}
	}
	if lines[3] != "INFO still relayed worker=2" {
		t.Errorf("last line = %q, expected the valid record", lines[3])
	}
}

func TestRelayReturnsReadError(t *testing.T) {
	l, _ := newConsole(t, "INFO", nil)
	failure := errors.New("pipe broken")
	if err := l.Relay(io.MultiReader(strings.NewReader("partial"), errorReader{failure})); !errors.Is(err, failure) {
		t.Errorf("Relay = %v, expected the read error", err)
	}
}

type errorReader struct{ err error }

func (r errorReader) Read([]byte) (int, error) { return 0, r.err }

func TestForwardAttrsRoundTrip(t *testing.T) {
	attrs := []slog.Attr{
		slog.String("s", "text \"quoted\"\n"),
		slog.Int64("i", math.MinInt64),
		slog.Uint64("u", math.MaxUint64),
		slog.Float64("f", 0.1),
		slog.Float64("nan", math.NaN()),
		slog.Float64("inf", math.Inf(-1)),
		slog.Bool("b", true),
		slog.Duration("d", 1500*time.Millisecond),
		slog.Time("t", time.Date(2024, 5, 1, 9, 30, 0, 1, time.UTC)),
		slog.Group("g", slog.String("inner", "v"), slog.Group("deeper", slog.Int("n", 1))),
		slog.Any("any", map[string]any{"list": []any{"a", 1.5}}),
		slog.Any("err", errors.New("boom")),
	}
	data, err := json.Marshal(encodeForwardAttrs(attrs))
	if err != nil {
		t.Fatal(err)
	}
	var encoded []forwardAttr
	if err := json.Unmarshal(data, &encoded); err != nil {
		t.Fatal(err)
	}
	decoded, err := decodeForwardAttrs(encoded)
	if err != nil {
		t.Fatal(err)
	}

	if len(decoded) != len(attrs) {
		t.Fatalf("decoded %d attributes, expected %d", len(decoded), len(attrs))
	}
	for i, a := range attrs {
		got := decoded[i]
		switch a.Key {
		case "nan":
			if !math.IsNaN(got.Value.Float64()) {
				t.Errorf("nan decoded as %v", got.Value)
			}
		case "any":
			if !reflect.DeepEqual(got.Value.Any(), a.Value.Any()) {
				t.Errorf("any decoded as %#v", got.Value.Any())
			}
		case "err":
			if got.Value.Any() != "boom" {
				t.Errorf("error decoded as %#v, expected its message", got.Value.Any())
			}
		default:
			if !got.Equal(a) {
				t.Errorf("attribute %s decoded as %v, expected %v", a.Key, got, a)
			}
		}
	}
}
