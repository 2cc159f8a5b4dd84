package dataplane

import (
	"errors"

	"golang.org/x/sys/unix"
)

// FileIO writes upload bytes to partial files and flushes them. The uring
// package's engines (io_uring and plain system calls) implement it, and so
// does SyscallFileIO.
//
// Implementations must be safe for concurrent use, and a call must not keep
// p after it returns.
type FileIO interface {
	// Pwrite writes up to len(p) bytes at offset off, like pwrite(2). A
	// short write comes back as n < len(p) with a nil error; a non-nil
	// error may come with n == 0 only.
	Pwrite(fd int, p []byte, off int64) (n int, err error)

	// Fsync flushes fd to stable storage: fdatasync(2) when datasync is
	// true, fsync(2) otherwise.
	Fsync(fd int, datasync bool) error
}

// SyscallFileIO is the FileIO that makes one plain system call per
// operation. Its zero value is ready to use.
type SyscallFileIO struct{}

// Pwrite implements FileIO with pwrite(2), retrying on EINTR.
func (SyscallFileIO) Pwrite(fd int, p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pwrite(fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

// Fsync implements FileIO with fdatasync(2) or fsync(2), retrying on EINTR.
func (SyscallFileIO) Fsync(fd int, datasync bool) error {
	for {
		var err error
		if datasync {
			err = unix.Fdatasync(fd)
		} else {
			err = unix.Fsync(fd)
		}
		if err != unix.EINTR {
			return err
		}
	}
}

// errShortWrite is returned when a Pwrite makes no progress without an error.
var errShortWrite = errors.New("pwrite wrote 0 bytes without an error")

// writeFull writes all of p at off through io, calling Pwrite again after
// each short write. On error, n is the number of bytes written before it.
func writeFull(io FileIO, fd int, p []byte, off int64) (n int, err error) {
	for n < len(p) {
		m, err := io.Pwrite(fd, p[n:], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, errShortWrite
		}
	}
	return n, nil
}
