package config

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// secretKeys are the key paths whose values never appear in error messages
// or in Effective(true).
var secretKeys = map[string]bool{
	"storage-proxy.secret": true,
	"api.manager.secret":   true,
	"etcd.password":        true,
}

// checker collects the problems of one file while the tables are checked.
type checker struct {
	dir string // directory of the config file, for relative paths

	// position maps a key path, rendered by renderKeyPath, to its index in
	// the file so that unknown keys are reported in file order.
	position map[string]int

	// envSource maps a key path to the environment variable that set it.
	envSource map[string]string

	errors  []FieldError
	ignored []string
	unknown []string
}

// table is one TOML table being checked. Every lookup marks the key as
// known, so that the keys left over afterwards are the unknown ones.
type table struct {
	c        *checker
	keyParts []string
	items    map[string]any
	known    map[string]bool
}

func (c *checker) newTable(items map[string]any, path ...string) *table {
	return &table{c: c, keyParts: path, items: items, known: map[string]bool{}}
}

func (t *table) keyPath(key string) string {
	return renderKeyPath(append(append([]string(nil), t.keyParts...), key)...)
}

// lookup returns the value of key and marks the key as known.
func (t *table) lookup(key string) (any, bool) {
	t.known[key] = true
	v, ok := t.items[key]
	return v, ok
}

// has reports whether key is present in the table, without marking it.
func (t *table) has(key string) bool {
	_, ok := t.items[key]
	return ok
}

// fail records a problem with the value of key. msg is the whole text after
// the key path.
func (t *table) fail(key string, v any, msg string) {
	path := t.keyPath(key)
	shown := renderValue(v)
	if secretKeys[path] {
		shown = `"***"`
	}
	t.c.errors = append(t.c.errors, FieldError{Key: path, Value: shown, Msg: msg, Env: t.c.envSource[path]})
}

// failf is fail with a formatted message.
func (t *table) failf(key string, v any, format string, args ...any) {
	t.fail(key, v, fmt.Sprintf(format, args...))
}

// missing records a required key that is absent. hint is the fix shown to
// the operator.
func (t *table) missing(key, hint string) {
	path := t.keyPath(key)
	t.c.errors = append(t.c.errors, FieldError{Key: path, Msg: "missing (" + hint + ")"})
}

// shown returns v as an error message shows it, with secrets hidden.
func (t *table) shown(key string, v any) string {
	if secretKeys[t.keyPath(key)] {
		return `"***"`
	}
	return renderValue(v)
}

// leftovers returns the keys that no lookup asked for, in file order.
func (t *table) leftovers() []string {
	var keys []string
	for key := range t.items {
		if !t.known[key] {
			keys = append(keys, key)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, iok := t.c.position[t.keyPath(keys[i])]
		pj, jok := t.c.position[t.keyPath(keys[j])]
		if iok != jok {
			return iok
		}
		if pi != pj {
			return pi < pj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// rejectUnknown records an error for every key of a strict table that no
// lookup asked for. Close spellings get a suggestion.
func (t *table) rejectUnknown() {
	for _, key := range t.leftovers() {
		msg := "unknown key (remove it or check the spelling)"
		if suggestion := closestKey(key, t.known); suggestion != "" {
			msg = fmt.Sprintf("unknown key (did you mean %s?)", quoteString(suggestion))
		}
		t.fail(key, t.items[key], msg)
	}
}

// tolerateUnknown records the keys of a tolerant table that no lookup asked
// for, so the caller can log them.
func (t *table) tolerateUnknown() {
	for _, key := range t.leftovers() {
		t.c.unknown = append(t.c.unknown, t.keyPath(key))
	}
}

// subTable returns the table under key. ok is false when the key is absent
// or is not a table, which records an error.
func (t *table) subTable(key string) (*table, bool) {
	v, present := t.lookup(key)
	if !present {
		return nil, false
	}
	items, isTable := v.(map[string]any)
	if !isTable {
		t.failf(key, v, "expected a table, got %s %s", typeName(v), t.shown(key, v))
		return nil, false
	}
	return t.c.newTable(items, append(append([]string(nil), t.keyParts...), key)...), true
}

// str returns a string value, or def when the key is absent.
func (t *table) str(key, def string) string {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	s, isString := v.(string)
	if !isString {
		t.failf(key, v, "expected a string, got %s %s", typeName(v), t.shown(key, v))
		return def
	}
	return s
}

// requiredString returns a non-empty string. hint is the fix shown when the
// key is missing or empty.
func (t *table) requiredString(key, hint string) string {
	v, ok := t.lookup(key)
	if !ok {
		t.missing(key, hint)
		return ""
	}
	s, isString := v.(string)
	switch {
	case !isString:
		t.failf(key, v, "expected a string, got %s %s", typeName(v), t.shown(key, v))
	case s == "":
		t.fail(key, v, "empty value ("+hint+")")
	}
	return s
}

// optionalString returns a string that may be absent but not empty.
func (t *table) optionalString(key string) string {
	s := t.str(key, "")
	if v, ok := t.items[key]; ok && v == "" {
		t.fail(key, v, "empty value (remove the key or set a value)")
	}
	return s
}

// choice returns a string that must be one of allowed. Values are compared
// exactly.
func (t *table) choice(key, def string, allowed ...string) string {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	s, isString := v.(string)
	if isString {
		for _, a := range allowed {
			if s == a {
				return s
			}
		}
	}
	t.failf(key, v, "invalid value %s (use %s)", renderValue(v), quotedList(allowed))
	return def
}

// integer returns an integer within [min, max], or def when absent.
// rangeHint is the fix shown when the value is out of range.
func (t *table) integer(key string, def, min, max int64, rangeHint string) int64 {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	n, isInt := v.(int64)
	switch {
	case !isInt:
		hint := ""
		if s, isString := v.(string); isString && isDigits(s) {
			hint = " (remove the quotes)"
		}
		t.failf(key, v, "expected an integer, got %s %s%s", typeName(v), renderValue(v), hint)
		return def
	case n < min || n > max:
		t.failf(key, v, "%d is out of range (%s)", n, rangeHint)
		return def
	}
	return n
}

// toBool returns a value of the ToBool grammar, or def when absent.
func (t *table) toBool(key string, def bool) bool {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	b, err := ToBool(v)
	if err != nil {
		t.fail(key, v, err.Error())
		return def
	}
	return b
}

// strictBool returns a TOML boolean, or def when absent.
func (t *table) strictBool(key string, def bool) bool {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		t.failf(key, v, "expected true or false without quotes, got %s %s", typeName(v), renderValue(v))
		return def
	}
	return b
}

// size returns a value of the binary size grammar, or def when absent. A
// TOML integer is a number of bytes.
func (t *table) size(key string, def int64) int64 {
	v, ok := t.lookup(key)
	if !ok {
		return def
	}
	var n int64
	var err error
	switch v := v.(type) {
	case int64:
		n = v
		if v < 0 {
			err = fmt.Errorf("invalid size %d (sizes cannot be negative, use \"inf\" for no limit)", v)
		}
	case string:
		n, err = ParseSize(v)
	default:
		err = fmt.Errorf("invalid size %s (use e.g. \"100g\")", renderValue(v))
	}
	if err != nil {
		t.fail(key, v, err.Error())
		return def
	}
	return n
}

// duration returns a value of the duration grammar. ok is false when the key
// is absent or invalid, which records an error.
func (t *table) duration(key string) (Duration, bool) {
	v, present := t.lookup(key)
	if !present {
		return Duration{}, false
	}
	var d Duration
	var err error
	switch v := v.(type) {
	case int64:
		d, err = durationFromSeconds(renderValue(v), float64(v))
	case float64:
		d, err = durationFromSeconds(renderValue(v), v)
	case string:
		d, err = ParseDuration(v)
	default:
		err = fmt.Errorf("invalid duration %s (use e.g. \"1d\", \"1.5h\" or 3600)", renderValue(v))
	}
	if err != nil {
		t.fail(key, v, err.Error())
		return Duration{}, false
	}
	return d, true
}

// fixedDuration returns a duration without calendar units, or def when
// absent.
func (t *table) fixedDuration(key string, def time.Duration) time.Duration {
	d, ok := t.duration(key)
	if !ok {
		return def
	}
	fixed, isFixed := d.TimeDuration()
	if !isFixed {
		t.failf(key, t.items[key], "invalid duration %s (months and years are not allowed here, use w, d, h, m or s)", renderValue(t.items[key]))
		return def
	}
	return fixed
}

// hostPort returns a value of the host/port grammar. ok is false when the
// key is absent or invalid, which records an error.
func (t *table) hostPort(key string, allowBlankHost bool) (HostPort, bool) {
	v, present := t.lookup(key)
	if !present {
		return HostPort{}, false
	}
	hp, err := hostPortFromValue(v, allowBlankHost)
	if err != nil {
		t.fail(key, v, err.Error())
		return HostPort{}, false
	}
	return hp, true
}

// typeName names the TOML type of a decoded value for error messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case []map[string]any:
		return "array of tables"
	case map[string]any:
		return "table"
	case nil:
		return "null"
	default:
		return "date-time"
	}
}

// quotedList renders ["a", "b", "c"] as `"a", "b" or "c"`.
func quotedList(items []string) string {
	quoted := make([]string, len(items))
	for i, item := range items {
		quoted[i] = quoteString(item)
	}
	if len(quoted) == 1 {
		return quoted[0]
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}

// closestKey returns the known key that key most likely misspells: the same
// key in snake_case, or a key within two edits. It returns "" when none is
// close.
func closestKey(key string, known map[string]bool) string {
	best, bestDistance := "", 3
	candidates := make([]string, 0, len(known))
	for k := range known {
		candidates = append(candidates, k)
	}
	sort.Strings(candidates)
	for _, candidate := range candidates {
		if strings.ReplaceAll(key, "_", "-") == candidate {
			return candidate
		}
		if d := editDistance(key, candidate); d < bestDistance {
			best, bestDistance = candidate, d
		}
	}
	return best
}

// editDistance returns the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	current := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous, current = current, previous
	}
	return previous[len(b)]
}
