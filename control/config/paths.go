package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// pathKind is what a path key must point to when the config is loaded.
type pathKind int

const (
	// existingDir must be an existing directory (volume paths).
	existingDir pathKind = iota
	// existingFile must be an existing regular file (TLS certificates and keys).
	existingFile
	// optionalFile may be missing but must not be a directory (pid-file).
	optionalFile
	// optionalDir may be missing, because its user creates it, but must be a
	// directory when it exists (log and etcd data directories).
	optionalDir
)

// resolvePath returns p made absolute against dir, with symbolic links
// resolved in the longest leading part of the path that exists. The rest,
// which does not exist yet, is appended unchanged.
func resolvePath(dir, p string) (string, error) {
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	p = filepath.Clean(p)

	missing := ""
	for current := p; ; current = filepath.Dir(current) {
		resolved, err := filepath.EvalSymlinks(current)
		if err == nil {
			return filepath.Join(resolved, missing), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return p, err
		}
		parent := filepath.Dir(current)
		if parent == current {
			return p, nil
		}
		missing = filepath.Join(filepath.Base(current), missing)
	}
}

// path returns the resolved absolute path of a path key, or def resolved the
// same way when the key is absent. An empty def means the key is optional and
// returns "" when absent.
func (t *table) path(key, def string, kind pathKind) string {
	v, present := t.lookup(key)
	raw := def
	if present {
		s, isString := v.(string)
		switch {
		case !isString:
			t.failf(key, v, "expected a path string, got %s %s", typeName(v), renderValue(v))
			return ""
		case s == "":
			t.fail(key, v, "empty path (set a path or remove the key)")
			return ""
		}
		raw = s
	}
	if raw == "" {
		return ""
	}

	resolved, err := resolvePath(t.c.dir, raw)
	if err != nil {
		t.failf(key, v, "failed to resolve %s: %v", describePath(raw, resolved), unwrapPathError(err))
		return resolved
	}
	if msg := checkPathKind(raw, resolved, kind); msg != "" {
		t.fail(key, raw, msg)
	}
	return resolved
}

// checkPathKind returns what is wrong with the file at resolved, or "".
func checkPathKind(raw, resolved string, kind pathKind) string {
	info, err := os.Stat(resolved)
	if errors.Is(err, fs.ErrNotExist) {
		switch kind {
		case existingDir:
			return "directory " + describePath(raw, resolved) + " not found (create it or fix the path)"
		case existingFile:
			return "file " + describePath(raw, resolved) + " not found (create it or fix the path)"
		}
		return ""
	}
	if err != nil {
		return "failed to check " + describePath(raw, resolved) + ": " + unwrapPathError(err).Error()
	}

	switch {
	case (kind == existingDir || kind == optionalDir) && !info.IsDir():
		return describePath(raw, resolved) + " is not a directory"
	case kind == existingFile && !info.Mode().IsRegular():
		return describePath(raw, resolved) + " is not a regular file"
	case kind == optionalFile && info.IsDir():
		return describePath(raw, resolved) + " is a directory (use a file path)"
	}
	return ""
}

// describePath shows a path as written and, when that differs, where it
// resolved to: `"./logs" at /etc/backend.ai/logs`.
func describePath(raw, resolved string) string {
	if raw == resolved {
		return quoteString(raw)
	}
	return quoteString(raw) + " at " + resolved
}

// unwrapPathError drops the operation and path from an *fs.PathError, which
// the message already names.
func unwrapPathError(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}
