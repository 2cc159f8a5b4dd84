package logging

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"time"
)

// The forward stream carries one record per request at full load, so its
// lines are written and read by hand here instead of through reflection.
// With encoding/json an access line cost about 10 µs in the worker and
// 24 µs in the supervisor (BenchmarkForwardAccessLine and
// BenchmarkRelayAccessLine on a loaded 2-core VM).
// appendForwardRecord writes exactly what json.Marshal writes for a
// forwardRecord, apart from string escapes that JSON treats as equal.
// parseForwardRecord reads that layout and reports false for anything
// else, which Relay then hands to encoding/json.

// appendForwardRecord appends rec as one JSON object, fields in struct
// order, with the omitempty fields left out when empty. attrs, when not
// empty, are written as rec.Attrs would be after encodeForwardAttrs.
func appendForwardRecord(b []byte, rec *forwardRecord, attrs []slog.Attr) []byte {
	b = append(b, `{"time":"`...)
	b = rec.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":`...)
	b = strconv.AppendInt(b, int64(rec.Level), 10)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, rec.Name)
	b = append(b, `,"msg":`...)
	b = appendJSONString(b, rec.Message)
	b = append(b, `,"pid":`...)
	b = strconv.AppendInt(b, int64(rec.PID), 10)
	b = append(b, `,"process":`...)
	b = appendJSONString(b, rec.Process)
	if rec.File != "" {
		b = append(b, `,"file":`...)
		b = appendJSONString(b, rec.File)
	}
	if rec.Function != "" {
		b = append(b, `,"func":`...)
		b = appendJSONString(b, rec.Function)
	}
	if rec.Line != 0 {
		b = append(b, `,"line":`...)
		b = strconv.AppendInt(b, int64(rec.Line), 10)
	}
	if len(attrs) > 0 {
		b = append(b, `,"attrs":`...)
		b = appendForwardSlogAttrs(b, attrs)
	}
	return append(b, '}')
}

// appendForwardSlogAttrs writes attrs as the JSON of
// encodeForwardAttrs(attrs), without building that slice.
func appendForwardSlogAttrs(b []byte, attrs []slog.Attr) []byte {
	b = append(b, '[')
	for i, a := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		v := a.Value
		b = append(b, `{"k":`...)
		b = appendJSONString(b, a.Key)
		b = append(b, `,"t":"`...)
		b = append(b, v.Kind().String()...)
		b = append(b, '"')
		switch v.Kind() {
		case slog.KindGroup:
			if members := v.Group(); len(members) > 0 {
				b = append(b, `,"g":`...)
				b = appendForwardSlogAttrs(b, members)
			}
		case slog.KindDuration:
			b = append(b, `,"v":`...)
			b = strconv.AppendInt(b, int64(v.Duration()), 10)
		default:
			b = append(b, `,"v":`...)
			b = appendJSONValue(b, v)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// forwardScanner reads the layout of appendForwardRecord. Each method
// returns false when the input differs from it.
type forwardScanner struct {
	b []byte
	i int
}

// parseForwardRecord fills rec from line if line has the layout that
// appendForwardRecord writes.
func parseForwardRecord(line []byte, rec *forwardRecord) bool {
	s := forwardScanner{b: line}
	var text string
	var n int64
	ok := s.literal(`{"time":`) && s.str(&text)
	if ok {
		t, err := time.Parse(time.RFC3339Nano, text)
		rec.Time, ok = t, err == nil
	}
	ok = ok && s.literal(`,"level":`) && s.integer(&n)
	rec.Level = int(n)
	ok = ok && s.literal(`,"name":`) && s.str(&rec.Name) &&
		s.literal(`,"msg":`) && s.str(&rec.Message) &&
		s.literal(`,"pid":`) && s.integer(&n)
	rec.PID = int(n)
	ok = ok && s.literal(`,"process":`) && s.str(&rec.Process)
	if ok && s.literal(`,"file":`) {
		ok = s.str(&rec.File)
	}
	if ok && s.literal(`,"func":`) {
		ok = s.str(&rec.Function)
	}
	if ok && s.literal(`,"line":`) {
		ok = s.integer(&n)
		rec.Line = int(n)
	}
	if ok && s.literal(`,"attrs":`) {
		rec.Attrs, ok = s.attrs()
	}
	return ok && s.literal("}") && s.i == len(s.b)
}

func (s *forwardScanner) attrs() ([]forwardAttr, bool) {
	if !s.literal("[") {
		return nil, false
	}
	out := make([]forwardAttr, 0, 8)
	for len(out) == 0 || s.literal(",") {
		var a forwardAttr
		if !s.literal(`{"k":`) || !s.str(&a.Key) || !s.literal(`,"t":`) || !s.str(&a.Kind) {
			return nil, false
		}
		if s.literal(`,"v":`) {
			start := s.i
			if !s.skipValue() {
				return nil, false
			}
			a.Value = s.b[start:s.i]
		}
		if s.literal(`,"g":`) {
			var ok bool
			if a.Group, ok = s.attrs(); !ok {
				return nil, false
			}
		}
		if !s.literal("}") {
			return nil, false
		}
		out = append(out, a)
	}
	return out, s.literal("]")
}

func (s *forwardScanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// str reads a JSON string. One without escapes is sliced as it is, and one
// with escapes goes through encoding/json.
func (s *forwardScanner) str(out *string) bool {
	end, escaped, ok := stringEnd(s.b, s.i)
	if !ok {
		return false
	}
	token := s.b[s.i:end]
	s.i = end
	if !escaped {
		*out = string(token[1 : len(token)-1])
		return true
	}
	return json.Unmarshal(token, out) == nil
}

// integer reads an optional minus sign and decimal digits.
func (s *forwardScanner) integer(out *int64) bool {
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	*out = n
	return err == nil
}

// skipValue moves past one JSON value: a string, or a run of other bytes
// up to the comma or closing brace that ends it at nesting depth zero.
// The value is checked later, when its kind decodes it.
func (s *forwardScanner) skipValue() bool {
	depth := 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			end, _, ok := stringEnd(s.b, s.i)
			if !ok {
				return false
			}
			s.i = end
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return true
			}
			depth--
		case ',':
			if depth == 0 {
				return true
			}
		}
		s.i++
	}
	return false
}

// stringEnd returns the index after the closing quote of the JSON string
// that starts at b[start], and whether the string contains escapes.
func stringEnd(b []byte, start int) (end int, escaped, ok bool) {
	if start >= len(b) || b[start] != '"' {
		return 0, false, false
	}
	for i := start + 1; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1, escaped, true
		case '\\':
			escaped = true
			i++
		}
	}
	return 0, false, false
}

// unquoteFast returns the text of a JSON string without escapes, and false
// for anything else.
func unquoteFast(raw []byte) (string, bool) {
	end, escaped, ok := stringEnd(raw, 0)
	if !ok || escaped || end != len(raw) {
		return "", false
	}
	return string(raw[1 : len(raw)-1]), true
}
