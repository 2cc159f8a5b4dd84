package uring

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// own is the owner goroutine: it sets the ring up on its locked thread,
// reports the result on started, then runs the loop until Shutdown has
// drained everything.
func (r *Ring) own(started chan<- error) {
	// Never unlocked: when this goroutine returns, Go ends the thread, and
	// with it the kernel's per-thread io_uring context and io-wq workers.
	runtime.LockOSThread()
	defer close(r.done)
	r.ownerTID.Store(int32(unix.Gettid()))

	if err := r.setup(); err != nil {
		started <- err
		return
	}
	started <- nil

	r.loop()
	r.teardown()
}

// setupAttempts are the IORING_SETUP_* flag sets tried in order; a kernel
// that rejects one with EINVAL gets the next. SINGLE_ISSUER and
// DEFER_TASKRUN need Linux 6.1, SUBMIT_ALL and COOP_TASKRUN need 5.19.
var setupAttempts = []uint32{
	giouring.SetupSingleIssuer | giouring.SetupDeferTaskrun | giouring.SetupSubmitAll,
	giouring.SetupCoopTaskrun | giouring.SetupSubmitAll,
	0,
}

// requiredOps are the opcodes Ring submits; the kernel must support all.
var requiredOps = []struct {
	op   uint8
	name string
}{
	{giouring.OpNop, "NOP"},
	{giouring.OpRead, "READ"},
	{giouring.OpWrite, "WRITE"},
	{giouring.OpFsync, "FSYNC"},
	{giouring.OpOpenat, "OPENAT"},
	{giouring.OpClose, "CLOSE"},
	{giouring.OpStatx, "STATX"},
	{giouring.OpUnlinkat, "UNLINKAT"},
	{giouring.OpRenameat, "RENAMEAT"},
	{giouring.OpMkdirat, "MKDIRAT"},
	{giouring.OpSplice, "SPLICE"},
	{giouring.OpAsyncCancel, "ASYNC_CANCEL"},
}

// errMissingOps is wrapped by NewRing's error when the kernel lacks opcodes.
var errMissingOps = errors.New("kernel lacks io_uring opcodes")

// setup creates the ring, checks its opcodes and opens the wake-up eventfd.
// On error it releases whatever it created.
func (r *Ring) setup() error {
	ring, flags, err := createRing(r.entries)
	if err != nil {
		return err
	}

	if err := checkOps(ring); err != nil {
		ring.QueueExit()
		return err
	}

	// A blocking eventfd: io_uring completes a read on an O_NONBLOCK file
	// with EAGAIN instead of waiting for a write.
	wakeFd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		ring.QueueExit()
		return fmt.Errorf("uring: eventfd: %w", err)
	}

	r.ring = ring
	r.setupFlags = flags
	r.wakeFd = wakeFd
	// Two SQ slots stay free for the eventfd read and a cancel. With at
	// most Entries caller and internal SQEs in flight, the CQ (twice the SQ
	// size) does not overflow. Only NOPs left by failed submits can add
	// more, and the kernel buffers an overflow instead of dropping CQEs
	// (IORING_FEAT_NODROP, Linux 5.5).
	r.capacity = int(r.entries) - 2
	r.slots = make([]slot, r.capacity)
	r.freeSlots = make([]uint32, r.capacity)
	for i := range r.freeSlots {
		r.freeSlots[i] = uint32(r.capacity - 1 - i)
	}
	return nil
}

// createRing tries each flag set of setupAttempts and returns the first ring
// the kernel accepts.
func createRing(entries uint32) (*giouring.Ring, uint32, error) {
	var err error
	for _, flags := range setupAttempts {
		ring := giouring.NewRing()
		err = ring.QueueInit(entries, flags)
		if err == nil {
			return ring, flags, nil
		}
		if !errors.Is(err, syscall.EINVAL) {
			break
		}
	}
	return nil, 0, fmt.Errorf("uring: io_uring_setup: %w", err)
}

// checkOps returns an error naming every required opcode that the kernel
// does not support, using IORING_REGISTER_PROBE.
func checkOps(ring *giouring.Ring) error {
	probe, err := ring.GetProbeRing()
	if err != nil {
		return fmt.Errorf("uring: %w", err)
	}
	var missing []string
	for _, op := range requiredOps {
		if !probe.IsSupported(op.op) {
			missing = append(missing, op.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("uring: %w: %s", errMissingOps, strings.Join(missing, ", "))
	}
	return nil
}

// loop runs until Shutdown has been called and every job has completed.
func (r *Ring) loop() {
	for {
		// Stage 1: take new jobs and lifecycle requests.
		r.takeQueue()
		if r.draining && len(r.active) == 0 && r.inFlight == 0 {
			r.stopping = true
		}

		// Stage 2: turn jobs into SQEs.
		r.fill()
		if r.stopping && !r.wakeArmed && r.inFlight == 0 && len(r.round) == 0 {
			return
		}

		// Stage 3: submit, and wait for a CQE unless there is new work.
		wait := r.prepareToSleep()
		if err := r.submit(wait); err != nil {
			if r.stopping {
				// If the eventfd read is still queued or armed,
				// closing the ring cancels it, and a cancelled read
				// writes nothing to wakeBuf.
				return
			}
			r.park()
		}

		// Stage 4: deliver completions.
		r.reap()
	}
}

// takeQueue moves queued jobs to active and reads the lifecycle flags.
func (r *Ring) takeQueue() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sleeping = false
	r.notified = false
	r.active = append(r.active, r.queue...)
	clear(r.queue)
	r.queue = r.queue[:0]
	r.draining = r.closing
	if r.cancelRequested && !r.cancelSent {
		r.cancelSent = true
		r.cancelPending()
	}
}

// cancelPending completes every entry that has not been submitted yet with
// ECANCELED and queues an IORING_OP_ASYNC_CANCEL for everything in flight.
func (r *Ring) cancelPending() {
	for _, j := range r.active {
		n := j.entries()
		for ; j.next < n; j.next++ {
			j.results[j.order[j.next]] = -int32(syscall.ECANCELED)
			j.completed++
		}
		r.finishIfDone(j)
	}
	clear(r.active)
	r.active = r.active[:0]
	if e := r.getSQE(); e != nil {
		prepCancel(e, 0, cancelAnyFlags)
		e.UserData = tagCancel
	}
}

// fill prepares SQEs for the eventfd read and for active jobs, as far as
// slots allow.
func (r *Ring) fill() {
	if !r.wakeArmed && !r.stopping {
		if e := r.getSQE(); e != nil {
			// Offset -1: an eventfd has no file offset.
			prepReadWrite(e, giouring.OpRead, r.wakeFd, r.wakeBuf[:], offsetCurrent)
			e.UserData = tagWake
			r.wakeArmed = true
		}
	}
	if r.stopping && r.wakeArmed && !r.wakeCancel {
		if e := r.getSQE(); e != nil {
			prepCancel(e, tagWake, 0)
			e.UserData = tagCancel
			r.wakeCancel = true
		}
	}

	prepared := r.inFlight
	kept := r.active[:0]
	for _, j := range r.active {
		n := j.entries()
		for j.next < n && j.inFlight < j.depth && len(r.freeSlots) > 0 {
			e := r.getSQE()
			if e == nil {
				break
			}
			s := r.freeSlots[len(r.freeSlots)-1]
			r.freeSlots = r.freeSlots[:len(r.freeSlots)-1]
			r.slots[s] = slot{j: j, entry: j.prep(e, j.next)}
			e.UserData = uint64(s)
			j.next++
			j.inFlight++
			r.inFlight++
		}
		if j.next < n {
			kept = append(kept, j)
		}
	}
	clear(r.active[len(kept):])
	r.active = kept
	if n := r.inFlight - prepared; n > 0 {
		r.prepared.Add(int64(n))
	}
}

// getSQE returns a free SQE and records it in round, or nil if the SQ is
// full.
func (r *Ring) getSQE() *sqe {
	e := r.ring.GetSQE()
	if e != nil {
		r.round = append(r.round, e)
	}
	return e
}

// prepareToSleep reports whether the next io_uring_enter should wait for a
// CQE. If so, it marks the owner as sleeping, so that the next caller wakes
// it through the eventfd.
func (r *Ring) prepareToSleep() bool {
	if r.ring.CQReady() > 0 || (r.inFlight == 0 && !r.wakeArmed) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notified {
		return false
	}
	r.sleeping = true
	return true
}

// submit hands the SQEs of this round to the kernel, retrying on EINTR. On
// any other error it turns every SQE that the kernel did not consume into a
// NOP and fails its entry with the errno, so no SQE pointing at a caller's
// memory stays queued.
func (r *Ring) submit(wait bool) error {
	if !wait && len(r.round) == 0 && r.ring.CQReady() > 0 {
		return nil
	}
	for {
		err := r.enter(len(r.round), wait)
		if err == nil {
			break
		}
		if errors.Is(err, syscall.EINTR) {
			r.eintrRetries.Add(1)
			continue
		}
		r.rollback(err)
		return err
	}
	r.round = r.round[:0]
	return nil
}

// enterKernel is the default Ring.enter: io_uring_enter with
// IORING_ENTER_GETEVENTS, which also runs deferred task work.
func (r *Ring) enterKernel(_ int, wait bool) error {
	var err error
	if wait {
		_, err = r.ring.SubmitAndWait(1)
	} else {
		_, err = r.ring.SubmitAndGetEvents()
	}
	return err
}

// rollback handles a failed io_uring_enter. The SQEs the kernel did not
// consume are the last SQReady() ones; the kernel will submit them as NOPs
// on the next successful enter.
func (r *Ring) rollback(err error) {
	errno, ok := errors.AsType[syscall.Errno](err)
	if !ok {
		errno = syscall.EIO
	}
	unconsumed := min(int(r.ring.SQReady()), len(r.round))
	for _, e := range r.round[len(r.round)-unconsumed:] {
		userData := e.UserData
		prepNop(e)
		e.UserData = tagDiscard
		r.complete(userData, -int32(errno))
	}
	r.round = r.round[:0]
}

// park waits after a failed submit until a caller queues a job or Shutdown
// is called, so that a lasting io_uring_enter failure does not spin.
func (r *Ring) park() {
	r.mu.Lock()
	if r.notified {
		r.mu.Unlock()
		return
	}
	r.parked = true
	r.mu.Unlock()
	<-r.kick
}

// reap delivers every CQE in the completion queue. It does not use
// giouring's PeekBatchCQE, which fills the whole slice it is given however
// few CQEs are ready.
func (r *Ring) reap() {
	var n uint32
	r.ring.ForEachCQE(func(cqe *giouring.CompletionQueueEvent) {
		r.complete(cqe.UserData, cqe.Res)
		n++
	})
	r.ring.CQAdvance(n)
}

// complete records the result of the SQE with this user data.
func (r *Ring) complete(userData uint64, res int32) {
	switch userData {
	case tagWake:
		r.wakeArmed = false
		r.wakeCancel = false
		return
	case tagDiscard:
		r.discarded.Add(1)
		return
	case tagCancel:
		return
	}

	s := r.slots[userData]
	r.slots[userData] = slot{}
	r.freeSlots = append(r.freeSlots, uint32(userData))
	r.inFlight--

	j := s.j
	j.results[s.entry] = res
	j.inFlight--
	j.completed++
	r.finishIfDone(j)
}

// finishIfDone wakes the caller once every entry of j has completed. The
// owner must not touch j afterwards.
func (r *Ring) finishIfDone(j *job) {
	if j.completed == j.entries() {
		j.done <- struct{}{}
	}
}

// teardown closes the ring and the eventfd. Nothing is in flight.
func (r *Ring) teardown() {
	r.ring.QueueExit()
	r.mu.Lock()
	_ = unix.Close(r.wakeFd)
	r.wakeFd = -1
	r.sleeping = false
	r.mu.Unlock()
}

// setupFlagNames returns the names of the IORING_SETUP_* bits in flags.
func setupFlagNames(flags uint32) string {
	names := []struct {
		flag uint32
		name string
	}{
		{giouring.SetupSingleIssuer, "SINGLE_ISSUER"},
		{giouring.SetupDeferTaskrun, "DEFER_TASKRUN"},
		{giouring.SetupCoopTaskrun, "COOP_TASKRUN"},
		{giouring.SetupSubmitAll, "SUBMIT_ALL"},
	}
	var parts []string
	for _, n := range names {
		if flags&n.flag != 0 {
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}
