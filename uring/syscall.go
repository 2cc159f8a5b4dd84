package uring

import (
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Syscall is the Engine that makes one plain system call per operation on
// the calling goroutine. It holds no fds; Close only makes later calls fail
// with ErrClosed, as Ring's do.
type Syscall struct {
	// BatchGoroutines is the number of goroutines that run parts of one
	// StatxBatch or UnlinkatBatch of at least minParallelBatch names. The
	// call returns when all parts are done. Zero or one runs every batch on
	// the calling goroutine. Set it before the first call.
	BatchGoroutines int

	closed atomic.Bool
}

// minParallelBatch is the smallest batch that Syscall splits between
// goroutines; below it, starting goroutines costs more than it saves.
const minParallelBatch = 64

// NewSyscall returns a Syscall engine that runs batches on the calling
// goroutine.
func NewSyscall() *Syscall { return &Syscall{} }

var _ Engine = (*Syscall)(nil)

// Name returns "syscall".
func (s *Syscall) Name() string { return "syscall" }

// Close makes later calls return ErrClosed. It always returns nil.
func (s *Syscall) Close() error {
	s.closed.Store(true)
	return nil
}

// check returns the ErrClosed *OpError for op after Close.
func (s *Syscall) check(op, path string) error {
	if s.closed.Load() {
		return &OpError{Op: op, Path: path, Err: ErrClosed}
	}
	return nil
}

// wrap turns an error of golang.org/x/sys/unix into an *OpError.
func wrap(op, path string, err error) error {
	if err == nil {
		return nil
	}
	return &OpError{Op: op, Path: path, Err: err}
}

// retryEINTR calls f until it fails with an error other than EINTR. A signal
// can interrupt splice on a pipe or socket and, on some file systems, I/O on
// regular files.
func retryEINTR(f func() error) error {
	for {
		err := f()
		if err != syscall.EINTR {
			return err
		}
	}
}

// Pread implements Engine.Pread with pread(2).
func (s *Syscall) Pread(fd int, p []byte, off int64) (int, error) {
	if err := s.check("pread", ""); err != nil {
		return 0, err
	}
	if len(p) > MaxReadWrite {
		p = p[:MaxReadWrite]
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Pread(fd, p, off)
		return err
	})
	if err != nil {
		return 0, wrap("pread", "", err)
	}
	return n, nil
}

// Pwrite implements Engine.Pwrite with pwrite(2).
func (s *Syscall) Pwrite(fd int, p []byte, off int64) (int, error) {
	if err := s.check("pwrite", ""); err != nil {
		return 0, err
	}
	if len(p) > MaxReadWrite {
		p = p[:MaxReadWrite]
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Pwrite(fd, p, off)
		return err
	})
	if err != nil {
		return 0, wrap("pwrite", "", err)
	}
	return n, nil
}

// Fsync implements Engine.Fsync with fsync(2) or fdatasync(2).
func (s *Syscall) Fsync(fd int, datasync bool) error {
	op := fsyncName(datasync)
	if err := s.check(op, ""); err != nil {
		return err
	}
	err := retryEINTR(func() error {
		if datasync {
			return unix.Fdatasync(fd)
		}
		return unix.Fsync(fd)
	})
	return wrap(op, "", err)
}

// Openat implements Engine.Openat with openat(2).
func (s *Syscall) Openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	if err := s.check("openat", path); err != nil {
		return -1, err
	}
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Openat(dirfd, path, flags|unix.O_CLOEXEC, mode)
		return err
	})
	if err != nil {
		return -1, wrap("openat", path, err)
	}
	return fd, nil
}

// CloseFD implements Engine.CloseFD with close(2).
func (s *Syscall) CloseFD(fd int) error {
	if err := s.check("close", ""); err != nil {
		return err
	}
	return wrap("close", "", unix.Close(fd))
}

// Statx implements Engine.Statx with statx(2).
func (s *Syscall) Statx(dirfd int, path string, flags, mask int, st *unix.Statx_t) error {
	if err := s.check("statx", path); err != nil {
		return err
	}
	return s.statx(dirfd, path, flags, mask, st)
}

func (s *Syscall) statx(dirfd int, path string, flags, mask int, st *unix.Statx_t) error {
	err := retryEINTR(func() error {
		return unix.Statx(dirfd, path, flags, mask, st)
	})
	return wrap("statx", path, err)
}

// Unlinkat implements Engine.Unlinkat with unlinkat(2).
func (s *Syscall) Unlinkat(dirfd int, path string, flags int) error {
	if err := s.check("unlinkat", path); err != nil {
		return err
	}
	return wrap("unlinkat", path, unix.Unlinkat(dirfd, path, flags))
}

// Renameat implements Engine.Renameat with renameat2(2).
func (s *Syscall) Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags uint) error {
	if s.closed.Load() {
		return &OpError{Op: "renameat2", Path: oldpath, NewPath: newpath, Err: ErrClosed}
	}
	err := unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, flags)
	if err != nil {
		return &OpError{Op: "renameat2", Path: oldpath, NewPath: newpath, Err: err}
	}
	return nil
}

// Mkdirat implements Engine.Mkdirat with mkdirat(2).
func (s *Syscall) Mkdirat(dirfd int, path string, mode uint32) error {
	if err := s.check("mkdirat", path); err != nil {
		return err
	}
	return wrap("mkdirat", path, unix.Mkdirat(dirfd, path, mode))
}

// Splice implements Engine.Splice with splice(2).
func (s *Syscall) Splice(rfd int, roff *int64, wfd int, woff *int64, length int, flags int) (int64, error) {
	if err := s.check("splice", ""); err != nil {
		return 0, err
	}
	var n int64
	err := retryEINTR(func() (err error) {
		n, err = unix.Splice(rfd, roff, wfd, woff, length, flags)
		return err
	})
	if err != nil {
		return 0, wrap("splice", "", err)
	}
	return n, nil
}

// StatxBatch implements Engine.StatxBatch with one statx(2) per name.
func (s *Syscall) StatxBatch(dirfd int, names []string, flags, mask int, out []unix.Statx_t, errs []error) error {
	if err := s.checkBatch("StatxBatch", "statx", len(names), min(len(out), len(errs))); err != nil {
		return err
	}
	s.forEachPart(len(names), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			errs[i] = s.statx(dirfd, names[i], flags, mask, &out[i])
		}
	})
	return nil
}

// UnlinkatBatch implements Engine.UnlinkatBatch with one unlinkat(2) per name.
func (s *Syscall) UnlinkatBatch(dirfd int, names []string, flags int, errs []error) error {
	if err := s.checkBatch("UnlinkatBatch", "unlinkat", len(names), len(errs)); err != nil {
		return err
	}
	s.forEachPart(len(names), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			errs[i] = wrap("unlinkat", names[i], unix.Unlinkat(dirfd, names[i], flags))
		}
	})
	return nil
}

// forEachPart calls f for BatchGoroutines contiguous parts of [0, n) in
// parallel, or once for all of it when the batch is small.
func (s *Syscall) forEachPart(n int, f func(lo, hi int)) {
	parts := s.BatchGoroutines
	if parts <= 1 || n < minParallelBatch {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for p := 1; p < parts; p++ {
		wg.Go(func() { f(p*n/parts, (p+1)*n/parts) })
	}
	f(0, n/parts)
	wg.Wait()
}

// checkBatch rejects a batch call with short output slices or after Close.
func (s *Syscall) checkBatch(call, op string, names, outLen int) error {
	if err := checkBatchLength(call, names, outLen); err != nil {
		return err
	}
	return s.check(op, "")
}

func fsyncName(datasync bool) string {
	if datasync {
		return "fdatasync"
	}
	return "fsync"
}
