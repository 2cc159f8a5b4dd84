package config

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// renderValue formats a decoded TOML value in TOML syntax on one line. Error
// messages use it to show a bad value the way the operator wrote it, and
// Effective uses it for every value it prints.
func renderValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return quoteString(v)
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return renderFloat(v)
	case time.Time:
		return renderTime(v)
	case []string:
		items := make([]string, len(v))
		for i, item := range v {
			items[i] = quoteString(item)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case []any:
		items := make([]string, len(v))
		for i, item := range v {
			items[i] = renderValue(item)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case []map[string]any:
		items := make([]string, len(v))
		for i, item := range v {
			items[i] = renderValue(item)
		}
		return "[" + strings.Join(items, ", ") + "]"
	case map[string]any:
		return renderInlineTable(v)
	default:
		return fmt.Sprintf("%v", v)
	}
}

func renderInlineTable(table map[string]any) string {
	if len(table) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(table))
	for key := range table {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	items := make([]string, len(keys))
	for i, key := range keys {
		items[i] = renderKey(key) + " = " + renderValue(table[key])
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

// renderFloat keeps a decimal point or an exponent in the output so that the
// value reads back as a TOML float, not an integer.
func renderFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// renderTime formats the four TOML date-time kinds. The toml package marks a
// local date, time or date-time by the name of its time.Location.
func renderTime(t time.Time) string {
	switch t.Location().String() {
	case "datetime-local":
		return t.Format("2006-01-02T15:04:05.999999999")
	case "date-local":
		return t.Format("2006-01-02")
	case "time-local":
		return t.Format("15:04:05.999999999")
	}
	return t.Format(time.RFC3339Nano)
}

// quoteString returns s as a TOML basic string. Invalid UTF-8 becomes U+FFFD
// because TOML documents must be valid UTF-8.
func quoteString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// renderKey returns one key component, quoted when it is not a bare key.
func renderKey(key string) string {
	return toml.Key{key}.String()
}

// renderKeyPath joins key components the way they appear in a TOML file:
// storage-proxy.num-proc, logging.pkg-ns."ai.backend".
func renderKeyPath(parts ...string) string {
	return toml.Key(parts).String()
}
