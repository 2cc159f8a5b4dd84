package config

import (
	"errors"
	"strings"
)

// ErrNotFound is wrapped by the error that Discover returns when no
// candidate path holds a regular file.
var ErrNotFound = errors.New("config file not found")

// FieldError is one problem with one configuration key.
type FieldError struct {
	// Key is the TOML key path as the operator writes it, for example
	// "storage-proxy.max-upload-size" or `logging.pkg-ns."ai.backend"`.
	Key string

	// Value is the offending value in TOML syntax, or "" when the key is
	// missing. Secrets are replaced by "***".
	Value string

	// Msg is the whole text after the key path: the problem, the bad value
	// and what to write instead, for example
	// `invalid size "12x" (use e.g. "100g")`.
	Msg string

	// Env is the environment variable that supplied the value, or "" when
	// the value came from the file.
	Env string
}

// Error formats the problem as one line: "<key>: <message>".
func (e FieldError) Error() string {
	line := e.Key + ": " + e.Msg
	if e.Env != "" {
		line += ", set by environment variable " + e.Env
	}
	return line
}

// ValidationError lists every problem that Load found in one file.
// Load returns it only after checking all keys, so an operator can fix
// the whole file in one pass.
type ValidationError struct {
	// File is the absolute path of the file that was checked.
	File string

	// Errors is in the order the keys were checked: table by table in the
	// order of the tables' documentation, keys within a table in a fixed order,
	// then unknown keys in file order.
	Errors []FieldError
}

// Error returns one line per bad key, without the file name, so that the
// text is stable across machines. Callers print File next to it.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}
