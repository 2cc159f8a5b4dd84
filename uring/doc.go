// Package uring runs the storage proxy's file system calls either on an
// io_uring instance or as plain system calls, behind one interface, Engine.
//
// The data plane uses it for upload writes and download reads (Pread,
// Pwrite, Fsync, Splice). The control plane uses it for tree walks: usage
// sums StatxBatch over a directory tree, delete runs UnlinkatBatch, and clone
// uses Openat, Mkdirat and Renameat. Both implementations, Ring (io_uring)
// and Syscall (one system call per operation), return the same results and
// the same *OpError values, so callers never branch on the engine.
//
// Lifecycle: the process calls Open once at start-up with the configured Mode
// (config key io-engine, environment override BACKEND_IO_ENGINE; see
// ParseMode). Open probes the kernel once, picks the engine and returns an
// Info that the caller logs as one INFO line; this package never logs. The
// engine is then shared by all goroutines and closed once at shutdown, after
// which every call returns an *OpError wrapping ErrClosed. Ring's doc comment
// describes its start, drain and close steps.
//
// io_uring is not faster for every operation: Info.Prefer names the faster
// engine per kind of operation, as measured by this package's benchmarks,
// and Preferred returns it.
//
// Dependencies: the standard library, golang.org/x/sys/unix and
// github.com/pawelgaczynski/giouring only. This package must never import
// another package of this module, because both planes import it. giouring is
// used unmodified for ring setup, mmap, probing and submission. Its Prepare*
// helpers for path, statx and timeout operations pass the address of a Go
// slice header or pointer variable instead of the data, so this package fills
// those SQEs itself (see sqe.go). Every build needs
// -ldflags=-checklinkname=0, because giouring links to syscall.munmap.
package uring
