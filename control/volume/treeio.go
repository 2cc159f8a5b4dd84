package volume

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// TreeIO runs the per-entry system calls of tree walks in batches. Its
// method set is the batch part of the io_uring engine (package uring), so
// that engine can be passed in Options.TreeIO as it is.
//
// Each method runs one call per name, relative to dirfd, and stores that
// call's error in errs[i] (nil on success). The calls of one batch may run
// concurrently and in any order, so names must not depend on each other.
// The returned error is non-nil only when the batch did not run at all
// (slices too short, engine closed), and errs is then unspecified. Every errs[i]
// that comes from the kernel wraps a syscall.Errno. The methods return
// after every call of the batch has finished, and they keep no reference to
// names, out or errs.
type TreeIO interface {
	// StatxBatch runs statx(dirfd, names[i], flags, mask, &out[i]).
	StatxBatch(dirfd int, names []string, flags, mask int, out []unix.Statx_t, errs []error) error
	// UnlinkatBatch runs unlinkat(dirfd, names[i], flags).
	UnlinkatBatch(dirfd int, names []string, flags int, errs []error) error
}

// SyscallTreeIO is the TreeIO that makes one plain system call per entry,
// one after another. It is always available and is the default.
type SyscallTreeIO struct{}

// StatxBatch implements TreeIO.
func (SyscallTreeIO) StatxBatch(dirfd int, names []string, flags, mask int, out []unix.Statx_t, errs []error) error {
	if len(out) < len(names) || len(errs) < len(names) {
		return fmt.Errorf("statx batch: %d names but room for %d results and %d errors", len(names), len(out), len(errs))
	}
	for i, name := range names {
		errs[i] = unix.Statx(dirfd, name, flags, mask, &out[i])
	}
	return nil
}

// UnlinkatBatch implements TreeIO.
func (SyscallTreeIO) UnlinkatBatch(dirfd int, names []string, flags int, errs []error) error {
	if len(errs) < len(names) {
		return fmt.Errorf("unlinkat batch: %d names but room for %d errors", len(names), len(errs))
	}
	for i, name := range names {
		errs[i] = unix.Unlinkat(dirfd, name, flags)
	}
	return nil
}
