package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/config"
)

func TestConsoleSimple(t *testing.T) {
	l, out := newConsole(t, "DEBUG", map[string]string{"": "DEBUG"})
	logger := l.Logger("storage-proxy.control").With("volume", "local").WithGroup("req")
	logger.Warn("upload stalled", "offset", 1024, "path", "a b.txt", slog.Group("peer", "addr", "10.0.0.1:5000"), "empty", "")

	want := `WARNING upload stalled volume=local req.offset=1024 req.path="a b.txt" req.peer.addr=10.0.0.1:5000 req.empty=""` + "\n"
	if got := out.String(); got != want {
		t.Errorf("console line\n got %q\nwant %q", got, want)
	}
}

func TestConsoleVerbose(t *testing.T) {
	var out bytes.Buffer
	colored := false
	l, err := New(config.Logging{Level: "INFO", Drivers: []string{"console"}, Console: config.LoggingConsole{Colored: &colored, Format: "verbose"}}, Options{Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	l.Logger("storage-proxy").Info("Started service.", "pid", 7)
	line := out.String()
	pattern := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO storage-proxy \[(\d+)\] Started service\. pid=7\n$`)
	m := pattern.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("verbose line %q does not match %s", line, pattern)
	}
	if m[1] != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid in line = %s, expected %d", m[1], os.Getpid())
	}
}

func TestConsoleColours(t *testing.T) {
	colored, plain := true, false
	cases := []struct {
		name    string
		colored *bool
		tty     bool
		want    bool
	}{
		{"forced on", &colored, false, true},
		{"forced off", &plain, true, false},
		{"terminal", nil, true, true},
		{"not a terminal", nil, false, false},
	}
	for _, c := range cases {
		var out bytes.Buffer
		cfg := config.Logging{Drivers: []string{"console"}, Console: config.LoggingConsole{Colored: c.colored, Format: "simple"}}
		l, err := New(cfg, Options{Stderr: &out, IsTTY: func() bool { return c.tty }})
		if err != nil {
			t.Fatal(err)
		}
		l.Logger("storage-proxy").Error("disk failed")
		l.Close()

		wantLine := "ERROR disk failed\n"
		if c.want {
			wantLine = "\x1b[31mERROR\x1b[0m disk failed\n"
		}
		if got := out.String(); got != wantLine {
			t.Errorf("%s: line = %q, expected %q", c.name, got, wantLine)
		}
	}
}

// newFileLogging returns a Logging with only the file driver in a new
// directory, and the path of the log file.
func newFileLogging(t *testing.T, backups int, rotationSize int64) (*Logging, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "logs")
	cfg := config.Logging{
		Level:   "DEBUG",
		PkgNS:   map[string]string{"": "DEBUG"},
		Drivers: []string{"file"},
		File:    config.LoggingFile{Path: dir, Filename: "storage-proxy.log", BackupCount: backups, RotationSize: rotationSize},
	}
	l, err := New(cfg, Options{Stderr: &bytes.Buffer{}, ProcessName: "storage-proxy-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, filepath.Join(dir, "storage-proxy.log")
}

// readJSONLines decodes every line of the file at path.
func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var records []map[string]any
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		var record map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &record); err != nil {
			t.Fatalf("line %q of %s is not JSON: %v", scanner.Text(), path, err)
		}
		records = append(records, record)
	}
	return records
}

func TestFileRecordFormat(t *testing.T) {
	l, path := newFileLogging(t, 5, 10<<20)
	when := time.Date(2024, 5, 1, 9, 30, 0, 123456789, time.FixedZone("KST", 9*3600))
	record := slog.NewRecord(when, slog.LevelWarn, "quota \"near\" limit\n", 0)
	record.AddAttrs(
		slog.Int("used", 95),
		slog.String("message", "attribute named like a field"),
		slog.Duration("took", 1500*time.Millisecond),
		slog.Any("error", errors.New("disk <full>")),
		slog.Group("scope", slog.String("qsid", "user:1")),
	)
	if err := l.Logger("storage-proxy.control").Handler().Handle(t.Context(), record); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"timestamp":"2024-05-01T00:30:00.123456Z","level":"WARNING","name":"storage-proxy.control","processName":"storage-proxy-test",` +
		`"message":"quota \"near\" limit\n","used":95,"attr.message":"attribute named like a field","took":"1.5s","error":"disk <full>","scope":{"qsid":"user:1"}}` + "\n"
	if string(data) != want {
		t.Errorf("file line\n got %s\nwant %s", data, want)
	}
}

func TestFileRotationKeepsBackupCount(t *testing.T) {
	const backups = 3
	l, path := newFileLogging(t, backups, 1024)
	logger := l.Logger("storage-proxy")
	for i := range 200 {
		logger.Info("rotation test record", "i", i, "padding", strings.Repeat("x", 100))
	}

	names, err := filepath.Glob(path + "*")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	want := []string{path, path + ".1", path + ".2", path + ".3"}
	if !slices.Equal(names, want) {
		t.Fatalf("log files = %v, expected %v", names, want)
	}

	// Every file stays within rotation-size, and the numbering runs from
	// the newest backup (.1) to the oldest, directly before the current file.
	var sequence []float64
	for _, name := range []string{path + ".3", path + ".2", path + ".1", path} {
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > 1024 {
			t.Errorf("%s has %d bytes, more than rotation-size 1024", name, info.Size())
		}
		for _, record := range readJSONLines(t, name) {
			sequence = append(sequence, record["i"].(float64))
		}
	}
	for i := 1; i < len(sequence); i++ {
		if sequence[i] != sequence[i-1]+1 {
			t.Fatalf("records across the files are not consecutive: %v", sequence)
		}
	}
	if last := sequence[len(sequence)-1]; last != 199 {
		t.Errorf("last record = %v, expected 199", last)
	}
}

func TestFileAppendsToExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sp.log")
	if err := os.WriteFile(path, []byte("{\"old\":true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Logging{Drivers: []string{"file"}, File: config.LoggingFile{Path: dir, Filename: "sp.log", BackupCount: 1, RotationSize: 1 << 20}}
	l, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Logger("storage-proxy").Info("new record")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	records := readJSONLines(t, path)
	if len(records) != 2 || records[0]["old"] != true || records[1]["message"] != "new record" {
		t.Errorf("records = %v, expected the old line then the new record", records)
	}
}

func TestFileWriteAfterClose(t *testing.T) {
	l, path := newFileLogging(t, 1, 1<<20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Handler().Handle(t.Context(), slog.NewRecord(time.Now(), slog.LevelError, "late", 0)); !errors.Is(err, errClosed) {
		t.Errorf("Handle after Close = %v, expected errClosed", err)
	}
	if data, _ := os.ReadFile(path); len(data) != 0 {
		t.Errorf("log file after Close contains %q", data)
	}
}

func TestRotatingFileLargeRecord(t *testing.T) {
	dir := t.TempDir()
	r, err := openRotatingFile(filepath.Join(dir, "big.log"), 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := range 3 {
		if _, err := fmt.Fprintf(r, "record %d is longer than the limit\n", i); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"big.log", "big.log.1", "big.log.2"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(data), "\n") != 1 {
			t.Errorf("%s = %q, expected exactly one record", name, data)
		}
	}
}
