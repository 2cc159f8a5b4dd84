package logging

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// maxForwardLine bounds one forwarded record. Relay reports a longer line
// as invalid instead of buffering it.
const maxForwardLine = 1 << 20

// forwardRecord is one line of the worker-to-supervisor log stream: a
// JSON object that keeps the exact level, the logger name and the kind of
// every attribute, so that Relay rebuilds the record the worker logged.
type forwardRecord struct {
	Time     time.Time     `json:"time"`
	Level    int           `json:"level"`
	Name     string        `json:"name"`
	Message  string        `json:"msg"`
	PID      int           `json:"pid"`
	Process  string        `json:"process"`
	File     string        `json:"file,omitempty"`
	Function string        `json:"func,omitempty"`
	Line     int           `json:"line,omitempty"`
	Attrs    []forwardAttr `json:"attrs,omitempty"`
}

// forwardAttr is one attribute. Kind is the name of its slog.Kind
// ("String", "Int64", "Group", ...). Value holds the JSON of the value:
// durations as nanoseconds, times as RFC 3339 strings, NaN and infinities
// as strings, and KindAny values as encoding/json writes them, which Relay
// reads back as generic JSON values. Group holds the members of a group.
type forwardAttr struct {
	Key   string          `json:"k"`
	Kind  string          `json:"t"`
	Value json.RawMessage `json:"v,omitempty"`
	Group []forwardAttr   `json:"g,omitempty"`
}

// forwardHandler writes records as forwardRecord lines for Relay.
type forwardHandler struct {
	out   *lockedWriter
	level slog.Leveler
	// levelOf, when set, gives the level of each logger name, as the
	// supervisor filters it; level then follows the handler's name.
	levelOf func(name string) slog.Level
	name    string
	goas    []groupOrAttrs
	pid     int
	process string
}

// lockedWriter writes each record with one Write call, so that records
// from different goroutines do not interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}

// NewForwardHandler returns the handler of a worker process, which opens no
// log drivers itself. It writes one JSON line per record of at least level
// (nil means INFO) to w, usually a pipe that the supervisor passes to
// Relay. Its logger name is "storage-proxy" and WithName changes it.
// Filtering by pkg-ns happens in the supervisor.
func NewForwardHandler(w io.Writer, level slog.Leveler) slog.Handler {
	if level == nil {
		level = slog.LevelInfo
	}
	return &forwardHandler{
		out:     &lockedWriter{w: w},
		level:   level,
		name:    "storage-proxy",
		pid:     os.Getpid(),
		process: filepath.Base(os.Args[0]),
	}
}

func (h *forwardHandler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// Handle writes the record as one line. It returns the write error, for
// example when the supervisor has closed the pipe.
func (h *forwardHandler) Handle(_ context.Context, r slog.Record) error {
	rec := forwardRecord{
		Time:    r.Time,
		Level:   int(r.Level),
		Name:    h.name,
		Message: r.Message,
		PID:     h.pid,
		Process: h.process,
	}
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	if r.PC != 0 {
		src := sourceOf(r.PC)
		rec.File, rec.Function, rec.Line = src.file, src.function, src.line
	}
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		attrs = appendResolved(attrs, a)
		return true
	})
	line := appendForwardRecord(make([]byte, 0, 512), &rec, nestAttrs(h.goas, attrs))
	line = append(line, '\n')
	_, err := h.out.Write(line)
	return err
}

func (h *forwardHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var resolved []slog.Attr
	for _, a := range attrs {
		resolved = appendResolved(resolved, a)
	}
	if name, rest, ok := takeLoggerName(h.goas, resolved); ok {
		h, resolved = h.withName(name).(*forwardHandler), rest
	}
	if len(resolved) == 0 {
		return h
	}
	copied := *h
	copied.goas = append(h.goas[:len(h.goas):len(h.goas)], groupOrAttrs{attrs: resolved})
	return &copied
}

func (h *forwardHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	copied := *h
	copied.goas = append(h.goas[:len(h.goas):len(h.goas)], groupOrAttrs{group: name})
	return &copied
}

func (h *forwardHandler) withName(name string) slog.Handler {
	copied := *h
	copied.name = name
	if h.levelOf != nil {
		copied.level = h.levelOf(name)
	}
	return &copied
}

func encodeForwardAttrs(attrs []slog.Attr) []forwardAttr {
	encoded := make([]forwardAttr, len(attrs))
	for i, a := range attrs {
		encoded[i] = encodeForwardAttr(a)
	}
	return encoded
}

func encodeForwardAttr(a slog.Attr) forwardAttr {
	fa := forwardAttr{Key: a.Key, Kind: a.Value.Kind().String()}
	v := a.Value
	switch v.Kind() {
	case slog.KindGroup:
		fa.Group = encodeForwardAttrs(v.Group())
	case slog.KindDuration:
		fa.Value = strconv.AppendInt(nil, int64(v.Duration()), 10)
	default:
		fa.Value = appendJSONValue(nil, v)
	}
	return fa
}

// decodeForwardAttrs rebuilds the attributes of a forwarded record.
func decodeForwardAttrs(encoded []forwardAttr) ([]slog.Attr, error) {
	attrs := make([]slog.Attr, 0, len(encoded))
	for _, fa := range encoded {
		a, err := decodeForwardAttr(fa)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", fa.Key, err)
		}
		attrs = append(attrs, a)
	}
	return attrs, nil
}

func decodeForwardAttr(fa forwardAttr) (slog.Attr, error) {
	switch fa.Kind {
	case "Group":
		members, err := decodeForwardAttrs(fa.Group)
		return slog.Attr{Key: fa.Key, Value: slog.GroupValue(members...)}, err
	case "String":
		if s, ok := unquoteFast(fa.Value); ok {
			return slog.String(fa.Key, s), nil
		}
		var s string
		err := json.Unmarshal(fa.Value, &s)
		return slog.String(fa.Key, s), err
	case "Int64":
		n, err := strconv.ParseInt(string(fa.Value), 10, 64)
		return slog.Int64(fa.Key, n), err
	case "Uint64":
		n, err := strconv.ParseUint(string(fa.Value), 10, 64)
		return slog.Uint64(fa.Key, n), err
	case "Duration":
		n, err := strconv.ParseInt(string(fa.Value), 10, 64)
		return slog.Duration(fa.Key, time.Duration(n)), err
	case "Float64":
		f, err := decodeForwardFloat(fa.Value)
		return slog.Float64(fa.Key, f), err
	case "Bool":
		var b bool
		err := json.Unmarshal(fa.Value, &b)
		return slog.Bool(fa.Key, b), err
	case "Time":
		if s, ok := unquoteFast(fa.Value); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			return slog.Time(fa.Key, t), err
		}
		var t time.Time
		err := json.Unmarshal(fa.Value, &t)
		return slog.Time(fa.Key, t), err
	case "Any":
		var v any
		err := json.Unmarshal(fa.Value, &v)
		return slog.Any(fa.Key, v), err
	}
	return slog.Attr{}, fmt.Errorf("unknown kind %q", fa.Kind)
}

func decodeForwardFloat(raw json.RawMessage) (float64, error) {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || !(math.IsNaN(f) || math.IsInf(f, 0)) {
			return 0, fmt.Errorf("invalid float %s", raw)
		}
		return f, nil
	}
	return strconv.ParseFloat(string(raw), 64)
}

// Relay reads the lines that a worker's NewForwardHandler wrote to r until
// EOF and emits each record through this Logging's drivers, with its time,
// level, message, attributes, logger name, code location, process id and
// process name. attrs, for example worker=N, are added before the record's
// own attributes. The supervisor's level and pkg-ns filters apply.
//
// A line that is not a forwarded record is logged as a warning with its
// first 200 bytes, and relaying goes on. Relay returns nil at EOF and the
// read error otherwise. It is safe to run one Relay per worker
// concurrently.
func (l *Logging) Relay(r io.Reader, attrs ...slog.Attr) error {
	var extra []slog.Attr
	for _, a := range attrs {
		extra = appendResolved(extra, a)
	}
	reader := bufio.NewReaderSize(r, 64<<10)
	for {
		line, tooLong, err := readLine(reader)
		if len(line) > 0 || tooLong {
			l.relayLine(line, tooLong, extra)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("relay log records: %w", err)
		}
	}
}

// readLine returns the next line without its newline. A line longer than
// maxForwardLine is cut there and tooLong is set. The rest of it is
// discarded.
func readLine(reader *bufio.Reader) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := reader.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > maxForwardLine {
				tooLong = true
				line = append(line, chunk[:maxForwardLine-len(line)]...)
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), tooLong, err
	}
}

func (l *Logging) relayLine(line []byte, tooLong bool, extra []slog.Attr) {
	var rec forwardRecord
	err := errors.New("line longer than 1 MiB")
	if !tooLong {
		err = nil
		if !parseForwardRecord(line, &rec) {
			rec = forwardRecord{}
			err = json.Unmarshal(line, &rec)
		}
	}
	var attrs []slog.Attr
	if err == nil {
		attrs, err = decodeForwardAttrs(rec.Attrs)
	}
	if err != nil {
		shown := line[:min(len(line), 200)]
		l.core.report(nil, slog.LevelWarn, "invalid forwarded log record",
			append(cloneAttrs(extra), slog.String("line", string(shown)), slog.Any("error", err))...)
		return
	}

	level := slog.Level(rec.Level)
	if level < l.core.levelOf(rec.Name) {
		return
	}
	e := &entry{
		time:    rec.Time,
		level:   level,
		name:    rec.Name,
		message: rec.Message,
		attrs:   append(cloneAttrs(extra), attrs...),
		source:  source{file: rec.File, function: rec.Function, line: rec.Line},
		pid:     rec.PID,
		process: rec.Process,
	}
	_ = l.core.dispatch(e, nil)
}

// cloneAttrs returns a copy of attrs with room to append.
func cloneAttrs(attrs []slog.Attr) []slog.Attr {
	return append(make([]slog.Attr, 0, len(attrs)+4), attrs...)
}
