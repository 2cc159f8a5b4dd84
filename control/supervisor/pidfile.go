package supervisor

import (
	"fmt"
	"os"
	"strconv"
)

// WritePIDFile writes the current pid, without a trailing newline, to path.
func WritePIDFile(path string) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return nil
}

// RemovePIDFile removes path only if it is a regular file, so the default
// /dev/null is never touched.
func RemovePIDFile(path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove pid file: %w", err)
	}
	return nil
}
