package logging

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// appendJSONString appends s as a JSON string. Unlike encoding/json it does
// not escape <, > and &, and it writes invalid UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Copy the run of printable ASCII that needs no escape at once.
		run := i
		for run < len(s) && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '"' && s[run] != '\\' {
			run++
		}
		b = append(b, s[i:run]...)
		if i = run; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// appendJSONValue appends v as JSON. Durations and times become strings,
// errors their message, and a value that encoding/json rejects its %+v text.
func appendJSONValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return appendJSONString(b, v.Duration().String())
	case slog.KindTime:
		return appendJSONString(b, v.Time().Format(time.RFC3339Nano))
	case slog.KindGroup:
		b = append(b, '{')
		b = appendJSONAttrs(b, v.Group(), nil)
		return append(b, '}')
	}
	return appendJSONAny(b, v.Any())
}

func appendJSONAny(b []byte, v any) []byte {
	if err, ok := v.(error); ok {
		if _, marshals := v.(json.Marshaler); !marshals {
			return appendJSONString(b, err.Error())
		}
	}
	encoded, err := json.Marshal(v)
	if err != nil {
		return appendJSONString(b, fmt.Sprintf("%+v", v))
	}
	return append(b, encoded...)
}

// appendJSONAttrs appends attrs as comma-separated object members. Keys in
// reserved, which the record's own fields use, get the prefix "attr." so
// that an attribute never replaces them.
func appendJSONAttrs(b []byte, attrs []slog.Attr, reserved map[string]bool) []byte {
	for i, a := range attrs {
		if i > 0 {
			b = append(b, ',')
		}
		key := a.Key
		if reserved[key] {
			key = "attr." + key
		}
		b = appendJSONString(b, key)
		b = append(b, ':')
		b = appendJSONValue(b, a.Value)
	}
	return b
}

// appendTextAttrs appends attrs as " key=value" pairs, with group members as
// "group.key=value".
func appendTextAttrs(b []byte, prefix string, attrs []slog.Attr) []byte {
	for _, a := range attrs {
		if a.Value.Kind() == slog.KindGroup {
			b = appendTextAttrs(b, prefix+a.Key+".", a.Value.Group())
			continue
		}
		b = append(b, ' ')
		b = appendTextString(b, prefix+a.Key)
		b = append(b, '=')
		b = appendTextString(b, textValue(a.Value))
	}
	return b
}

func textValue(v slog.Value) string {
	switch v.Kind() {
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return err.Error()
		}
	}
	return v.String()
}

// appendTextString appends s, quoted with strconv.Quote when it is empty or
// contains spaces, '=', '"' or characters that are not printable.
func appendTextString(b []byte, s string) []byte {
	needsQuotes := s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r == ' ' || r == '=' || r == '"' || !unicode.IsPrint(r)
	})
	if needsQuotes {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}
