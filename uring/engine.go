package uring

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// Engine runs file system calls. Ring and Syscall implement it, and both
// return the same n and error for the same call on the same file system state.
//
// All methods are safe for concurrent use. A method returns only after the
// kernel has finished the operation, so the caller may reuse or free every
// buffer, path and Statx_t as soon as the call returns. Fds are plain kernel
// fds, so an fd opened by one engine works with the other and with package os.
//
// Every error that the kernel reports is an *OpError whose Err is a
// syscall.Errno, so errors.Is(err, unix.ENOENT) and errors.Is(err,
// fs.ErrNotExist) work. After Close, every method returns an *OpError
// wrapping ErrClosed.
type Engine interface {
	// Name returns "io_uring" or "syscall".
	Name() string

	// Pread reads up to len(p) bytes at offset off, like pread(2). It makes
	// one attempt: n < len(p) with a nil error is a short read, and n == 0
	// with a nil error and len(p) > 0 means off is at or past end of file.
	// A non-nil error always comes with n == 0. Reads longer than
	// MaxReadWrite bytes are cut to MaxReadWrite, as Linux does. Use
	// ReadFull to fill p.
	//
	// fd must be seekable, because the engines differ on pipes and
	// sockets. There pread(2) fails with ESPIPE, while io_uring ignores the
	// offset and reads like read(2). The same holds for Pwrite.
	Pread(fd int, p []byte, off int64) (n int, err error)

	// Pwrite writes up to len(p) bytes at offset off, like pwrite(2). It
	// makes one attempt: n < len(p) with a nil error is a short write (for
	// example when the file system filled up part-way). A non-nil error
	// always comes with n == 0. Use WriteFull to write all of p.
	Pwrite(fd int, p []byte, off int64) (n int, err error)

	// Fsync flushes fd to stable storage: fdatasync(2) when datasync is
	// true, fsync(2) otherwise.
	Fsync(fd int, datasync bool) error

	// Openat opens path relative to dirfd like openat(2), always adding
	// O_CLOEXEC to flags. The caller owns the returned fd and closes it with
	// CloseFD.
	Openat(dirfd int, path string, flags int, mode uint32) (fd int, err error)

	// CloseFD closes fd like close(2). It does not retry on EINTR, because
	// Linux has released the fd by then.
	CloseFD(fd int) error

	// Statx fills st for path relative to dirfd like statx(2). flags are
	// AT_* flags and mask is a set of STATX_* bits.
	Statx(dirfd int, path string, flags, mask int, st *unix.Statx_t) error

	// Unlinkat removes path relative to dirfd like unlinkat(2); flags may
	// be AT_REMOVEDIR.
	Unlinkat(dirfd int, path string, flags int) error

	// Renameat renames like renameat2(2); flags may combine
	// RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT.
	Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags uint) error

	// Mkdirat creates directory path relative to dirfd like mkdirat(2).
	Mkdirat(dirfd int, path string, mode uint32) error

	// Splice moves up to length bytes between rfd and wfd like splice(2);
	// one of them must be a pipe. A nil offset pointer means the fd's own
	// position; a non-nil one is read as the offset and advanced by n.
	// n == 0 with a nil error means end of input.
	Splice(rfd int, roff *int64, wfd int, woff *int64, length int, flags int) (n int64, err error)

	// StatxBatch runs Statx(dirfd, names[i], flags, mask, &out[i]) for
	// every i and stores each result's error in errs[i] (nil on success).
	// Ring keeps up to Options.BatchDepth of them in flight at once, in no
	// fixed order. Syscall runs them one after another, or in
	// BatchGoroutines parallel parts. The returned error
	// is non-nil only when the batch did not run at all: out or errs is
	// shorter than names, or the engine is closed.
	StatxBatch(dirfd int, names []string, flags, mask int, out []unix.Statx_t, errs []error) error

	// UnlinkatBatch runs Unlinkat(dirfd, names[i], flags) for every i and
	// stores each result's error in errs[i]. Ordering and the returned
	// error are as for StatxBatch, so names must not depend on each other
	// (for example a directory and its own entries).
	UnlinkatBatch(dirfd int, names []string, flags int, errs []error) error

	// Close stops accepting calls, waits for the calls in flight to finish
	// and releases the engine's fds and goroutine. Calling it again returns
	// nil.
	Close() error
}

// MaxReadWrite is the largest byte count that one Pread or Pwrite transfers:
// Linux's MAX_RW_COUNT (2 GiB minus 4 KiB) on 4 KiB pages.
const MaxReadWrite = 0x7ffff000

// ErrClosed is wrapped by the *OpError that an Engine returns after Close.
var ErrClosed = errors.New("uring: engine closed")

// OpError is the error of one failed operation.
type OpError struct {
	// Op is the system call's name: "pread", "pwrite", "fsync",
	// "fdatasync", "openat", "close", "statx", "unlinkat", "renameat2",
	// "mkdirat" or "splice".
	Op string
	// Path is the path argument; empty for operations on an fd.
	Path string
	// NewPath is the target of "renameat2"; empty for other operations.
	NewPath string
	// Err is a syscall.Errno for errors from the kernel, or ErrClosed.
	Err error
}

func (e *OpError) Error() string {
	s := e.Op
	if e.Path != "" || e.NewPath != "" {
		s += " " + e.Path
	}
	if e.NewPath != "" {
		s += " " + e.NewPath
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns Err, so errors.Is matches errnos and fs.ErrNotExist.
func (e *OpError) Unwrap() error { return e.Err }

// errnoError returns nil for res >= 0 and otherwise an *OpError for the
// negative errno that the kernel put in a CQE result.
func errnoError(op, path string, res int32) error {
	if res >= 0 {
		return nil
	}
	errno := syscall.Errno(-res)
	// An io-wq worker interrupted by IORING_OP_ASYNC_CANCEL can post the
	// kernel-internal restart codes ERESTARTSYS (512) to
	// ERESTART_RESTARTBLOCK (516), which a system call would have turned
	// into EINTR (seen on Linux 6.18 with a blocked SPLICE).
	if errno >= 512 && errno <= 516 {
		errno = syscall.EINTR
	}
	return &OpError{Op: op, Path: path, Err: errno}
}

// ReadFull reads len(p) bytes at offset off, calling e.Pread until p is full.
// It returns io.EOF if no byte was read before end of file and
// io.ErrUnexpectedEOF if end of file came after some bytes. On any error n
// is the number of bytes that were read into p.
func ReadFull(e Engine, fd int, p []byte, off int64) (n int, err error) {
	for n < len(p) {
		m, err := e.Pread(fd, p[n:], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			if n == 0 {
				return 0, io.EOF
			}
			return n, io.ErrUnexpectedEOF
		}
	}
	return n, nil
}

// WriteFull writes all of p at offset off, calling e.Pwrite again after each
// short write. When the file system fills up it returns the bytes written so
// far with the ENOSPC *OpError of the next attempt. It returns
// io.ErrShortWrite if a write returns 0 bytes without an error.
func WriteFull(e Engine, fd int, p []byte, off int64) (n int, err error) {
	for n < len(p) {
		m, err := e.Pwrite(fd, p[n:], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
	}
	return n, nil
}

// checkBatchLength rejects a batch call whose output slice is shorter than
// names.
func checkBatchLength(call string, names, out int) error {
	if out >= names {
		return nil
	}
	return fmt.Errorf("uring: %s: output slice has %d entries for %d names (make it at least as long as names)",
		call, out, names)
}
