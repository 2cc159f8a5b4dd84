package uring

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// Ring is the Engine that runs operations on one io_uring instance owned by
// one goroutine.
//
// Start: NewRing (or Open) starts the owner goroutine and locks it to its OS
// thread with runtime.LockOSThread before it creates the ring, because a ring
// set up with IORING_SETUP_SINGLE_ISSUER and IORING_SETUP_DEFER_TASKRUN
// accepts submissions only from the thread that created it. The owner
// probes the opcodes this package needs and arms a read on an eventfd that
// callers write to when they need to wake it.
//
// Use: any number of goroutines call the methods at once. Each call queues a
// job and blocks until the owner has reaped every CQE of that job. The owner
// turns all queued jobs into SQEs, submits them with one io_uring_enter,
// and waits in the same call for at least one completion. A batch call keeps
// up to Options.BatchDepth SQEs in flight and refills as entries complete.
// io_uring_enter calls interrupted by a signal (EINTR) are retried. If
// io_uring_enter fails otherwise, every SQE it did not consume is turned into
// a NOP and its operation fails with the *OpError of that errno, so no SQE
// that points at a caller's memory stays queued.
//
// Drain: Shutdown (and Close) stop accepting calls, so calls made afterwards
// return an *OpError wrapping ErrClosed. Calls queued before it run to
// completion. If Shutdown's context ends first, the owner cancels everything
// still in flight with IORING_OP_ASYNC_CANCEL, so those calls return ECANCELED
// or EINTR, and queued batch entries that were not submitted yet return
// ECANCELED.
//
// Close: once nothing is in flight, the owner cancels its eventfd read and
// waits for that CQE, unmaps and closes the ring, closes the eventfd and
// exits. Its OS thread exits with it, which also ends the kernel's io-wq
// workers for that thread. Shutdown returns after all of this. Ring opens no
// other fds and no pipes.
type Ring struct {
	entries    uint32 // SQ size
	batchDepth int
	setupFlags uint32 // IORING_SETUP_* flags the ring was created with
	capacity   int    // maximum number of caller SQEs in flight
	done       chan struct{}
	// enter submits the queued SQEs (queued of them new in this round)
	// and, if wait is true, waits for one CQE. Tests wrap it to inject
	// io_uring_enter failures.
	enter func(queued int, wait bool) error

	// Counters that tests read: io_uring_enter calls retried after EINTR,
	// caller SQEs prepared for the kernel, and NOP CQEs of SQEs that a
	// failed submit left behind.
	eintrRetries atomic.Int64
	prepared     atomic.Int64
	discarded    atomic.Int64
	// ownerTID is the owner's thread id, read by tests that signal it.
	ownerTID atomic.Int32

	// mu guards the fields below it, which callers and the owner share.
	mu sync.Mutex
	// queue contains jobs that the owner has not taken yet.
	queue []*job
	// notified is set when queue, closing or cancelRequested changed
	// since the owner last looked at them.
	notified bool
	// sleeping is set while the owner waits in io_uring_enter, so the next
	// notification must write to wakeFd.
	sleeping bool
	// parked is set while the owner waits on kick after a failed submit.
	parked          bool
	closing         bool
	cancelRequested bool
	wakeFd          int
	kick            chan struct{}

	// The fields below are used only by the owner goroutine.
	ring       *giouring.Ring
	active     []*job // jobs with entries not yet submitted
	slots      []slot // indexed by user_data
	freeSlots  []uint32
	inFlight   int // caller SQEs submitted and not yet completed
	round      []*sqe
	draining   bool
	stopping   bool
	wakeArmed  bool
	wakeCancel bool // the cancel of the eventfd read is submitted
	cancelSent bool
	// wakeBuf receives the eventfd counter; the kernel writes it while
	// the eventfd read is in flight.
	wakeBuf [8]byte
}

// User data values of SQEs that belong to no caller. Slot indexes are small,
// so these never collide with them.
const (
	tagWake    = ^uint64(0)     // the eventfd read
	tagCancel  = ^uint64(0) - 1 // an IORING_OP_ASYNC_CANCEL
	tagDiscard = ^uint64(0) - 2 // a NOP written over an SQE of a failed submit
)

// IORING_ASYNC_CANCEL_ALL and IORING_ASYNC_CANCEL_ANY (Linux 5.19).
//
// NOTE: older kernels reject these flags with EINVAL, so there Shutdown's
// cancel has no effect and it waits for calls in flight as Close does.
const cancelAnyFlags = giouring.AsyncCancelAll | giouring.AsyncCancelAny

type slot struct {
	j     *job
	entry int
}

var _ Engine = (*Ring)(nil)

// NewRing creates a ring and starts its owner goroutine. It fails if the
// kernel has no io_uring, blocks it, or lacks an opcode that Ring uses, and
// the error names the cause. Open calls it for ModeAuto and ModeIOUring.
func NewRing(opts Options) (*Ring, error) {
	return newRing(opts, nil)
}

// newRing is NewRing with a hook for tests: wrapEnter, if not nil, wraps the
// io_uring_enter call so that a test can make it fail.
func newRing(opts Options, wrapEnter func(enter func(queued int, wait bool) error) func(queued int, wait bool) error) (*Ring, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Ring{
		entries:    opts.Entries,
		batchDepth: opts.BatchDepth,
		done:       make(chan struct{}),
		kick:       make(chan struct{}, 1),
		wakeFd:     -1,
	}
	r.enter = r.enterKernel
	if wrapEnter != nil {
		r.enter = wrapEnter(r.enterKernel)
	}

	started := make(chan error, 1)
	go r.own(started)
	if err := <-started; err != nil {
		<-r.done
		return nil, err
	}
	return r, nil
}

// Name returns "io_uring".
func (r *Ring) Name() string { return "io_uring" }

// SetupFlags returns the names of the IORING_SETUP_* flags in use, joined
// by "|", or "none".
func (r *Ring) SetupFlags() string { return setupFlagNames(r.setupFlags) }

// Close drains and closes the ring as described in the type's doc comment.
// It waits for every call in flight, however long that takes; use Shutdown
// to bound the wait.
func (r *Ring) Close() error {
	return r.Shutdown(context.Background())
}

// Shutdown drains and closes the ring as described in the type's doc
// comment. If ctx ends before the calls in flight have finished, it cancels
// them, still waits until the ring is closed, and returns ctx.Err().
func (r *Ring) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	r.notifyLocked()
	r.mu.Unlock()

	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
	}

	r.mu.Lock()
	r.cancelRequested = true
	r.notifyLocked()
	r.mu.Unlock()
	<-r.done
	return ctx.Err()
}

// notifyLocked records that shared state changed and wakes the owner if it
// sleeps in io_uring_enter or after a failed submit. The eventfd write runs
// under mu so that it never races with the owner closing the eventfd.
func (r *Ring) notifyLocked() {
	r.notified = true
	if r.sleeping && r.wakeFd >= 0 {
		r.sleeping = false
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		// The write can neither block nor fail: it adds 1 per sleep and the
		// owner's read resets the counter, far below its 2^64-2 limit.
		_, _ = unix.Write(r.wakeFd, one[:])
	}
	if r.parked {
		r.parked = false
		r.kick <- struct{}{}
	}
}

// submitJob queues j and waits until the owner has completed it. It returns
// ErrClosed, without queueing, after Shutdown has started.
func (r *Ring) submitJob(j *job) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return ErrClosed
	}
	r.queue = append(r.queue, j)
	r.notifyLocked()
	r.mu.Unlock()

	<-j.done
	return nil
}

// Pread implements Engine.Pread with IORING_OP_READ.
func (r *Ring) Pread(fd int, p []byte, off int64) (int, error) {
	return r.readWrite(giouring.OpRead, "pread", fd, p, off)
}

// Pwrite implements Engine.Pwrite with IORING_OP_WRITE.
func (r *Ring) Pwrite(fd int, p []byte, off int64) (int, error) {
	return r.readWrite(giouring.OpWrite, "pwrite", fd, p, off)
}

func (r *Ring) readWrite(op uint8, name string, fd int, p []byte, off int64) (int, error) {
	// An offset of -1 means "file position" to io_uring, but pread(2)
	// rejects every negative offset.
	if off < 0 {
		return 0, &OpError{Op: name, Err: syscall.EINVAL}
	}
	if len(p) > MaxReadWrite {
		p = p[:MaxReadWrite]
	}
	j := getJob(op)
	defer putJob(j)
	j.fd = fd
	j.buf = p
	j.off = uint64(off)
	if len(p) > 0 {
		j.pin.Pin(&p[0])
	}
	if err := r.submitJob(j); err != nil {
		return 0, &OpError{Op: name, Err: err}
	}
	if err := errnoError(name, "", j.results[0]); err != nil {
		return 0, err
	}
	return int(j.results[0]), nil
}

// Fsync implements Engine.Fsync with IORING_OP_FSYNC.
func (r *Ring) Fsync(fd int, datasync bool) error {
	name := fsyncName(datasync)
	j := getJob(giouring.OpFsync)
	defer putJob(j)
	j.fd = fd
	j.datasync = datasync
	return r.runSimple(j, name, "")
}

// Openat implements Engine.Openat with IORING_OP_OPENAT.
func (r *Ring) Openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	cpath, err := cString(path)
	if err != nil {
		return -1, &OpError{Op: "openat", Path: path, Err: err}
	}
	j := getJob(giouring.OpOpenat)
	defer putJob(j)
	j.fd = dirfd
	j.path = cpath
	j.flags = uint32(flags | unix.O_CLOEXEC)
	j.mode = mode
	j.pin.Pin(&cpath[0])
	if err := r.runSimple(j, "openat", path); err != nil {
		return -1, err
	}
	return int(j.results[0]), nil
}

// CloseFD implements Engine.CloseFD with IORING_OP_CLOSE.
func (r *Ring) CloseFD(fd int) error {
	j := getJob(giouring.OpClose)
	defer putJob(j)
	j.fd = fd
	return r.runSimple(j, "close", "")
}

// Statx implements Engine.Statx with IORING_OP_STATX.
func (r *Ring) Statx(dirfd int, path string, flags, mask int, st *unix.Statx_t) error {
	var errs [1]error
	err := r.statxBatch(dirfd, []string{path}, flags, mask, oneStatx(st), errs[:])
	if err != nil {
		return &OpError{Op: "statx", Path: path, Err: err}
	}
	return errs[0]
}

// Unlinkat implements Engine.Unlinkat with IORING_OP_UNLINKAT.
func (r *Ring) Unlinkat(dirfd int, path string, flags int) error {
	var errs [1]error
	if err := r.unlinkatBatch(dirfd, []string{path}, flags, errs[:]); err != nil {
		return &OpError{Op: "unlinkat", Path: path, Err: err}
	}
	return errs[0]
}

// Renameat implements Engine.Renameat with IORING_OP_RENAMEAT.
func (r *Ring) Renameat(olddirfd int, oldpath string, newdirfd int, newpath string, flags uint) error {
	fail := func(err error) error {
		return &OpError{Op: "renameat2", Path: oldpath, NewPath: newpath, Err: err}
	}
	cold, err := cString(oldpath)
	if err != nil {
		return fail(err)
	}
	cnew, err := cString(newpath)
	if err != nil {
		return fail(err)
	}
	j := getJob(giouring.OpRenameat)
	defer putJob(j)
	j.fd = olddirfd
	j.path = cold
	j.fd2 = newdirfd
	j.path2 = cnew
	j.flags = uint32(flags)
	j.pin.Pin(&cold[0])
	j.pin.Pin(&cnew[0])
	if err := r.submitJob(j); err != nil {
		return fail(err)
	}
	if res := j.results[0]; res < 0 {
		return fail(syscall.Errno(-res))
	}
	return nil
}

// Mkdirat implements Engine.Mkdirat with IORING_OP_MKDIRAT.
func (r *Ring) Mkdirat(dirfd int, path string, mode uint32) error {
	cpath, err := cString(path)
	if err != nil {
		return &OpError{Op: "mkdirat", Path: path, Err: err}
	}
	j := getJob(giouring.OpMkdirat)
	defer putJob(j)
	j.fd = dirfd
	j.path = cpath
	j.mode = mode
	j.pin.Pin(&cpath[0])
	return r.runSimple(j, "mkdirat", path)
}

// Splice implements Engine.Splice with IORING_OP_SPLICE. The kernel does not
// write offsets back for io_uring, so Splice advances *roff and *woff itself.
func (r *Ring) Splice(rfd int, roff *int64, wfd int, woff *int64, length int, flags int) (int64, error) {
	inOff, outOff := offsetCurrent, offsetCurrent
	// -1 would mean "file position" to io_uring, so reject negative
	// offsets here.
	if roff != nil {
		if *roff < 0 {
			return 0, &OpError{Op: "splice", Err: syscall.EINVAL}
		}
		inOff = uint64(*roff)
	}
	if woff != nil {
		if *woff < 0 {
			return 0, &OpError{Op: "splice", Err: syscall.EINVAL}
		}
		outOff = uint64(*woff)
	}
	if length < 0 || length > MaxReadWrite {
		length = MaxReadWrite
	}

	j := getJob(giouring.OpSplice)
	defer putJob(j)
	j.fd = rfd
	j.off2 = inOff
	j.fd2 = wfd
	j.off = outOff
	j.length = uint32(length)
	j.flags = uint32(flags)
	if err := r.runSimple(j, "splice", ""); err != nil {
		return 0, err
	}

	n := int64(j.results[0])
	if roff != nil {
		*roff += n
	}
	if woff != nil {
		*woff += n
	}
	return n, nil
}

// runSimple submits a one-entry job and turns its result into an error.
func (r *Ring) runSimple(j *job, op, path string) error {
	if err := r.submitJob(j); err != nil {
		return &OpError{Op: op, Path: path, Err: err}
	}
	return errnoError(op, path, j.results[0])
}

// StatxBatch implements Engine.StatxBatch with one IORING_OP_STATX per name.
func (r *Ring) StatxBatch(dirfd int, names []string, flags, mask int, out []unix.Statx_t, errs []error) error {
	if err := checkBatchLength("StatxBatch", len(names), min(len(out), len(errs))); err != nil {
		return err
	}
	if err := r.statxBatch(dirfd, names, flags, mask, out, errs); err != nil {
		return &OpError{Op: "statx", Err: err}
	}
	return nil
}

// UnlinkatBatch implements Engine.UnlinkatBatch with one IORING_OP_UNLINKAT
// per name.
func (r *Ring) UnlinkatBatch(dirfd int, names []string, flags int, errs []error) error {
	if err := checkBatchLength("UnlinkatBatch", len(names), len(errs)); err != nil {
		return err
	}
	if err := r.unlinkatBatch(dirfd, names, flags, errs); err != nil {
		return &OpError{Op: "unlinkat", Err: err}
	}
	return nil
}

func (r *Ring) statxBatch(dirfd int, names []string, flags, mask int, out []unix.Statx_t, errs []error) error {
	if len(names) == 0 {
		return nil
	}
	j := getJob(giouring.OpStatx)
	defer putJob(j)
	j.fd = dirfd
	j.flags = uint32(flags)
	j.mode = uint32(mask)
	j.statx = out[:len(names)]
	j.pin.Pin(&out[0])
	return r.runBatch(j, "statx", names, errs)
}

func (r *Ring) unlinkatBatch(dirfd int, names []string, flags int, errs []error) error {
	if len(names) == 0 {
		return nil
	}
	j := getJob(giouring.OpUnlinkat)
	defer putJob(j)
	j.fd = dirfd
	j.flags = uint32(flags)
	return r.runBatch(j, "unlinkat", names, errs)
}

// runBatch copies names into one NUL-separated buffer, submits one entry per
// valid name and stores each entry's error in errs. A name that contains a
// NUL byte gets EINVAL without reaching the kernel, as in
// unix.BytePtrFromString.
func (r *Ring) runBatch(j *job, op string, names []string, errs []error) error {
	j.setNames(names)
	for i, name := range names {
		errs[i] = nil
		if strings.IndexByte(name, 0) >= 0 {
			errs[i] = &OpError{Op: op, Path: name, Err: syscall.EINVAL}
		}
	}
	if len(j.order) == 0 {
		return nil
	}
	j.depth = r.batchDepth
	j.pin.Pin(&j.names[0])
	if err := r.submitJob(j); err != nil {
		return err
	}
	for _, i := range j.order {
		errs[i] = errnoError(op, names[i], j.results[i])
	}
	return nil
}

// cString returns s as a NUL-terminated byte slice, or EINVAL if s contains a
// NUL byte.
func cString(s string) ([]byte, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, syscall.EINVAL
	}
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b, nil
}

// oneStatx returns a one-element slice that shares st's memory.
func oneStatx(st *unix.Statx_t) []unix.Statx_t {
	return unsafe.Slice(st, 1)
}
