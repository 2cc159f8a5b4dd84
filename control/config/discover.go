package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FileName is the name of the config file that Discover looks for.
const FileName = "storage-proxy.toml"

// Discover finds the config file when no path is given on the command line,
// in upstream's order:
//
//  1. $BACKEND_CONFIG_FILE when set, and then no other path. A relative
//     value is relative to cwd.
//  2. cwd/storage-proxy.toml.
//  3. <dir>/storage-proxy.toml for each parent dir of cwd, nearest first,
//     that is still inside home and contains a file named BUILD_ROOT
//     (developer checkouts).
//  4. home/.config/backend.ai/storage-proxy.toml.
//  5. /etc/backend.ai/storage-proxy.toml.
//
// The first candidate that is a regular file wins. Discover returns it with
// the candidates tried so far. When none exists, the error wraps ErrNotFound
// and names every searched path.
func Discover(env func(string) string, cwd, home string) (string, []string, error) {
	var searched []string
	for _, candidate := range candidates(env, cwd, home) {
		searched = append(searched, candidate)
		if info, err := os.Stat(candidate); err == nil && info.Mode().IsRegular() {
			return candidate, searched, nil
		}
	}
	return "", searched, fmt.Errorf("%w (searched %s)", ErrNotFound, strings.Join(searched, ", "))
}

// candidates returns the paths Discover tries, in order.
func candidates(env func(string) string, cwd, home string) []string {
	if env != nil {
		if fromEnv := env("BACKEND_CONFIG_FILE"); fromEnv != "" {
			if !filepath.IsAbs(fromEnv) {
				fromEnv = filepath.Join(cwd, fromEnv)
			}
			return []string{fromEnv}
		}
	}

	paths := []string{filepath.Join(cwd, FileName)}
	if home != "" {
		home = filepath.Clean(home)
		for dir := filepath.Dir(filepath.Clean(cwd)); isInside(dir, home); dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "BUILD_ROOT")); err == nil {
				paths = append(paths, filepath.Join(dir, FileName))
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
		paths = append(paths, filepath.Join(home, ".config", "backend.ai", FileName))
	}
	return append(paths, filepath.Join("/etc/backend.ai", FileName))
}

// isInside reports whether dir is root or lies below it. Both are clean.
func isInside(dir, root string) bool {
	rel, err := filepath.Rel(root, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
