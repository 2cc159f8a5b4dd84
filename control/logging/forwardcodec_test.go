package logging

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"reflect"
	"testing"
	"time"
)

// codecAttrs covers every kind, escapes, non-ASCII text, invalid UTF-8,
// nested and empty groups, and values whose JSON holds commas, braces and
// quotes.
func codecAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("s", "text \"quoted\"\n\ttab \\ back"),
		slog.String("unicode", "데이터 세트 ① naïve"),
		slog.String("invalid utf-8", "a\xffb"),
		slog.String("control", "\x00\x1f\x7f"),
		slog.String("", "empty key"),
		slog.Int64("i", math.MinInt64),
		slog.Uint64("u", math.MaxUint64),
		slog.Float64("f", 0.1),
		slog.Float64("nan", math.NaN()),
		slog.Float64("inf", math.Inf(-1)),
		slog.Bool("b", false),
		slog.Duration("d", -1500*time.Millisecond),
		slog.Time("t", time.Date(2024, 5, 1, 9, 30, 0, 1, time.FixedZone("KST", 9*3600))),
		slog.Group("g", slog.String("inner", "v,}]"), slog.Group("deeper", slog.Int("n", 1))),
		{Key: "empty group", Value: slog.GroupValue()},
		slog.Any("any", map[string]any{"list": []any{"a,b", 1.5, map[string]any{"x": "}"}}}),
		slog.Any("err", errors.New(`boom "x"`)),
		slog.Any("nil", nil),
	}
}

// TestForwardCodecMatchesEncodingJSON checks that the hand-written writer
// and reader agree with encoding/json on the same record.
func TestForwardCodecMatchesEncodingJSON(t *testing.T) {
	for _, attrs := range [][]slog.Attr{nil, codecAttrs()} {
		rec := forwardRecord{
			Time:     time.Date(2026, 12, 4, 23, 1, 2, 345678901, time.UTC),
			Level:    -4,
			Name:     "storage-proxy.dataplane",
			Message:  "chunk \"written\"\nnext line",
			PID:      4242,
			Process:  "storage-proxy",
			File:     "/src/dataplane/upload.go",
			Function: "github.com/bai-storage/storage-proxy/dataplane.(*Server).uploadPatch",
			Line:     123,
		}
		line := appendForwardRecord(nil, &rec, attrs)

		var viaJSON forwardRecord
		if err := json.Unmarshal(line, &viaJSON); err != nil {
			t.Fatalf("encoding/json rejects the written line: %v\n%s", err, line)
		}
		want := rec
		if len(attrs) > 0 {
			want.Attrs = encodeForwardAttrs(attrs)
		}
		wantJSON, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var fromMarshal forwardRecord
		if err := json.Unmarshal(wantJSON, &fromMarshal); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normalize(viaJSON), normalize(fromMarshal)) {
			t.Errorf("the written line decodes to\n%+v\nencoding/json's to\n%+v", viaJSON, fromMarshal)
		}

		var fast forwardRecord
		if !parseForwardRecord(line, &fast) {
			t.Fatalf("the fast reader rejects its own writer's line:\n%s", line)
		}
		if !reflect.DeepEqual(normalize(fast), normalize(viaJSON)) {
			t.Errorf("the fast reader gives\n%+v\nencoding/json gives\n%+v", fast, viaJSON)
		}
		fastAttrs, err := decodeForwardAttrs(fast.Attrs)
		if err != nil {
			t.Fatal(err)
		}
		jsonAttrs, err := decodeForwardAttrs(viaJSON.Attrs)
		if err != nil {
			t.Fatal(err)
		}
		if len(fastAttrs) != len(jsonAttrs) {
			t.Fatalf("%d attributes by the fast reader, %d by encoding/json", len(fastAttrs), len(jsonAttrs))
		}
		for i := range fastAttrs {
			fa, ja := fastAttrs[i], jsonAttrs[i]
			same := fa.Key == ja.Key && fa.Value.Kind() == ja.Value.Kind()
			switch {
			case fa.Key == "nan":
				same = same && math.IsNaN(fa.Value.Float64()) && math.IsNaN(ja.Value.Float64())
			case fa.Value.Kind() == slog.KindAny:
				same = same && reflect.DeepEqual(fa.Value.Any(), ja.Value.Any())
			default:
				same = same && fa.Equal(ja)
			}
			if !same {
				t.Errorf("attribute %d: fast %v, encoding/json %v", i, fa, ja)
			}
		}
	}
}

// normalize makes records comparable: raw values compacted and times in
// UTC.
func normalize(rec forwardRecord) forwardRecord {
	rec.Time = rec.Time.UTC()
	rec.Attrs = normalizeAttrs(rec.Attrs)
	return rec
}

func normalizeAttrs(attrs []forwardAttr) []forwardAttr {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]forwardAttr, len(attrs))
	for i, a := range attrs {
		var v any
		if len(a.Value) > 0 && json.Unmarshal(a.Value, &v) == nil {
			a.Value, _ = json.Marshal(v)
		}
		a.Group = normalizeAttrs(a.Group)
		out[i] = a
	}
	return out
}

func TestForwardReaderRejectsOtherLayouts(t *testing.T) {
	for _, line := range []string{
		``,
		`{}`,
		`{"level":0,"time":"2024-05-01T09:30:00Z","name":"n","msg":"m","pid":1,"process":"p"}`,
		`{"time":"2024-05-01T09:30:00Z","level":0,"name":"n","msg":"m","pid":1,"process":"p"} `,
		`{"time":"2024-05-01T09:30:00Z","level":0,"name":"n","msg":"m","pid":1,"process":"p","attrs":[{"k":"x","t":"String","v":"unterminated}]}`,
		`{"time":"2024-05-01T09:30:00Z","level":0,"name":"n","msg":"m","pid":1,"process":"p","attrs":[]}`,
		`{"time":"not a time","level":0,"name":"n","msg":"m","pid":1,"process":"p"}`,
		`{"time":"2024-05-01T09:30:00Z","level":0.5,"name":"n","msg":"m","pid":1,"process":"p"}`,
	} {
		var rec forwardRecord
		if parseForwardRecord([]byte(line), &rec) {
			t.Errorf("the fast reader accepted %q", line)
		}
	}
}

func FuzzForwardCodec(f *testing.F) {
	f.Add("chunk written", "session", "s1", int64(4096))
	f.Add("\"\\\n", "k,}", "v\x00\xff", int64(-1))
	f.Fuzz(func(t *testing.T, msg, key, value string, n int64) {
		attrs := []slog.Attr{slog.String(key, value), slog.Int64(key+"n", n), slog.Group("g", slog.String(value, msg))}
		rec := forwardRecord{Time: time.Unix(0, n).UTC(), Level: int(n % 16), Name: key, Message: msg, PID: 7, Process: value}
		line := appendForwardRecord(nil, &rec, attrs)
		var viaJSON, fast forwardRecord
		if err := json.Unmarshal(line, &viaJSON); err != nil {
			if rec.Time.Year() < 0 || rec.Time.Year() > 9999 {
				return
			}
			t.Fatalf("encoding/json rejects %q: %v", line, err)
		}
		if !parseForwardRecord(line, &fast) {
			t.Fatalf("the fast reader rejects %q", line)
		}
		if !reflect.DeepEqual(normalize(fast), normalize(viaJSON)) {
			t.Fatalf("line %q: fast %+v, encoding/json %+v", line, fast, viaJSON)
		}
	})
}
