package uring

import (
	"unsafe"

	"github.com/pawelgaczynski/giouring"
)

// The functions below fill SQEs by the kernel's io_uring ABI
// (include/uapi/linux/io_uring.h) instead of giouring's Prepare* helpers.
// giouring v0.0.0-20230826085535 passes &path (the address of the slice
// header) as the path pointer in PrepareOpenat, PrepareStatx, PrepareUnlinkat,
// PrepareRenameat and PrepareMkdirat, so the kernel reads garbage and returns
// ENOENT. Each function overwrites the whole SQE, because a slot keeps the
// fields of its previous use and the kernel rejects unexpected non-zero
// fields with EINVAL.
//
// Every pointer stored in an SQE must stay valid until the matching CQE has
// been reaped; job.pin keeps the Go memory behind it in place.

type sqe = giouring.SubmissionQueueEntry

// addrOf returns the address of p's first byte, or 0 for an empty slice.
func addrOf(p []byte) uint64 {
	if len(p) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&p[0])))
}

// offsetCurrent is the offset value that makes READ, WRITE and SPLICE use the
// fd's file position (-1 as a __u64).
const offsetCurrent = ^uint64(0)

// prepReadWrite fills IORING_OP_READ or IORING_OP_WRITE: fd, addr = buffer,
// len = byte count, off = file offset.
func prepReadWrite(e *sqe, op uint8, fd int, p []byte, off uint64) {
	*e = sqe{OpCode: op, Fd: int32(fd), Addr: addrOf(p), Len: uint32(len(p)), Off: off}
}

// prepFsync fills IORING_OP_FSYNC; fsync_flags may be IORING_FSYNC_DATASYNC.
func prepFsync(e *sqe, fd int, datasync bool) {
	*e = sqe{OpCode: giouring.OpFsync, Fd: int32(fd)}
	if datasync {
		e.OpcodeFlags = giouring.FsyncDatasync
	}
}

// prepOpenat fills IORING_OP_OPENAT: fd = dirfd, addr = NUL-terminated path,
// len = mode, open_flags = flags.
func prepOpenat(e *sqe, dirfd int, path []byte, flags int, mode uint32) {
	*e = sqe{OpCode: giouring.OpOpenat, Fd: int32(dirfd), Addr: addrOf(path), Len: mode, OpcodeFlags: uint32(flags)}
}

// prepClose fills IORING_OP_CLOSE.
func prepClose(e *sqe, fd int) {
	*e = sqe{OpCode: giouring.OpClose, Fd: int32(fd)}
}

// prepStatx fills IORING_OP_STATX: fd = dirfd, addr = NUL-terminated path,
// len = mask, addr2 (the Off field) = struct statx buffer, statx_flags =
// flags.
func prepStatx(e *sqe, dirfd int, path []byte, flags, mask uint32, st unsafe.Pointer) {
	*e = sqe{
		OpCode:      giouring.OpStatx,
		Fd:          int32(dirfd),
		Addr:        addrOf(path),
		Len:         mask,
		Off:         uint64(uintptr(st)),
		OpcodeFlags: flags,
	}
}

// prepUnlinkat fills IORING_OP_UNLINKAT: fd = dirfd, addr = NUL-terminated
// path, unlink_flags = flags.
func prepUnlinkat(e *sqe, dirfd int, path []byte, flags uint32) {
	*e = sqe{OpCode: giouring.OpUnlinkat, Fd: int32(dirfd), Addr: addrOf(path), OpcodeFlags: flags}
}

// prepRenameat fills IORING_OP_RENAMEAT: fd = old dirfd, addr = old path,
// len = new dirfd, addr2 (the Off field) = new path, rename_flags = flags.
func prepRenameat(e *sqe, olddirfd int, oldpath []byte, newdirfd int, newpath []byte, flags uint32) {
	*e = sqe{
		OpCode:      giouring.OpRenameat,
		Fd:          int32(olddirfd),
		Addr:        addrOf(oldpath),
		Len:         uint32(newdirfd),
		Off:         addrOf(newpath),
		OpcodeFlags: flags,
	}
}

// prepMkdirat fills IORING_OP_MKDIRAT: fd = dirfd, addr = NUL-terminated
// path, len = mode.
func prepMkdirat(e *sqe, dirfd int, path []byte, mode uint32) {
	*e = sqe{OpCode: giouring.OpMkdirat, Fd: int32(dirfd), Addr: addrOf(path), Len: mode}
}

// prepSplice fills IORING_OP_SPLICE: fd = output fd, off = output offset,
// splice_off_in (the Addr field) = input offset, splice_fd_in = input fd,
// len = byte count, splice_flags = flags. An offset of offsetCurrent means
// the fd's own position, as a NULL offset pointer does for splice(2).
func prepSplice(e *sqe, rfd int, roff uint64, wfd int, woff uint64, length uint32, flags uint32) {
	*e = sqe{
		OpCode:      giouring.OpSplice,
		Fd:          int32(wfd),
		Off:         woff,
		Addr:        roff,
		Len:         length,
		OpcodeFlags: flags,
		SpliceFdIn:  int32(rfd),
	}
}

// prepCancel fills IORING_OP_ASYNC_CANCEL: addr = user_data of the request
// to cancel, cancel_flags = flags (IORING_ASYNC_CANCEL_ANY ignores addr).
func prepCancel(e *sqe, userData uint64, flags uint32) {
	*e = sqe{OpCode: giouring.OpAsyncCancel, Fd: -1, Addr: userData, OpcodeFlags: flags}
}

// prepNop fills IORING_OP_NOP.
func prepNop(e *sqe) {
	*e = sqe{OpCode: giouring.OpNop}
}
