package uring

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

// startBlockedSplice starts a Splice from the empty pipe r on its own
// goroutine and returns once the ring has handed it to the kernel, where it
// waits for data. The result arrives on the returned channel.
func startBlockedSplice(t *testing.T, ring *Ring, r, dst int) <-chan spliceResult {
	t.Helper()
	before := ring.prepared.Load()
	results := make(chan spliceResult, 1)
	go func() {
		n, err := ring.Splice(r, nil, dst, nil, 4096, 0)
		results <- spliceResult{n, err}
	}()
	waitFor(t, "the splice to reach the kernel", func() bool { return ring.prepared.Load() > before })
	return results
}

type spliceResult struct {
	n   int64
	err error
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func TestRingCloseDrainsInFlight(t *testing.T) {
	ring := openRing(t, Options{})
	_, dfd := tempDirFD(t)
	dst := openFile(t, ring, dfd, "dst", unix.O_CREAT|unix.O_WRONLY)
	pr, pw := pipe(t)
	results := startBlockedSplice(t, ring, pr, dst)

	closed := make(chan error, 1)
	go func() { closed <- ring.Close() }()

	// Once Close has started, new calls fail at once with ErrClosed.
	waitFor(t, "Close to reject new calls", func() bool {
		_, err := ring.Pwrite(dst, []byte("x"), 0)
		return errors.Is(err, ErrClosed)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v while a splice was in flight", err)
	default:
	}

	if _, err := unix.Write(pw, []byte("late data")); err != nil {
		t.Fatal(err)
	}
	res := <-results
	if res.n != 9 || res.err != nil {
		t.Errorf("in-flight Splice = %d, %v; want 9, nil", res.n, res.err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestRingShutdownCancelsAfterDeadline(t *testing.T) {
	ring := openRing(t, Options{})
	_, dfd := tempDirFD(t)
	dst := openFile(t, ring, dfd, "dst", unix.O_CREAT|unix.O_WRONLY)
	pr, _ := pipe(t)
	results := startBlockedSplice(t, ring, pr, dst)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ring.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with an ended context = %v, want context.Canceled", err)
	}
	res := <-results
	if !errors.Is(res.err, unix.ECANCELED) && !errors.Is(res.err, unix.EINTR) {
		t.Errorf("cancelled Splice = %d, %v; want ECANCELED or EINTR", res.n, res.err)
	}
}

func TestRingCloseLeaksNothing(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	fdsBefore := countFDs(t)

	ring, err := NewRing(Options{})
	if err != nil {
		t.Skipf("io_uring unavailable on this kernel: %v", err)
	}
	dir, dfd := tempDirFD(t)
	writeFile(t, dir, "f", []byte("data"))
	fd, err := ring.Openat(dfd, "f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := pipe(t)
	if _, err := ring.Splice(fd, nil, pw, nil, 4, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Splice(pr, nil, fd, nil, 4, 0); err != nil {
		t.Fatal(err)
	}
	if err := ring.CloseFD(fd); err != nil {
		t.Fatal(err)
	}
	if err := ring.Close(); err != nil {
		t.Fatal(err)
	}

	// The test's own directory fd and pipe are still open here, and they
	// were not open in the first count.
	if got, want := countFDs(t), fdsBefore+3; got != want {
		t.Errorf("open fds after Close = %d, want %d (the ring or its eventfd leaked)", got, want)
	}
	goleak.VerifyNone(t, ignore)
}

func TestRingRetriesEINTR(t *testing.T) {
	ring := openRing(t, Options{})
	_, dfd := tempDirFD(t)
	dst := openFile(t, ring, dfd, "dst", unix.O_CREAT|unix.O_WRONLY)
	pr, pw := pipe(t)
	results := startBlockedSplice(t, ring, pr, dst)

	// SIGURG is the Go runtime's preemption signal, so it is harmless to
	// the process, and it interrupts the owner's io_uring_enter.
	tid := int(ring.ownerTID.Load())
	waitFor(t, "an io_uring_enter retried after EINTR", func() bool {
		if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGURG); err != nil {
			t.Fatalf("tgkill owner thread %d: %v", tid, err)
		}
		return ring.eintrRetries.Load() > 0
	})

	if _, err := unix.Write(pw, []byte("after signals")); err != nil {
		t.Fatal(err)
	}
	if res := <-results; res.n != 13 || res.err != nil {
		t.Errorf("Splice across signals = %d, %v; want 13, nil", res.n, res.err)
	}
	if _, err := ring.Pwrite(dst, []byte("ok"), 0); err != nil {
		t.Errorf("Pwrite after signals: %v", err)
	}
}

func TestRingFailedSubmitLeavesNoSQE(t *testing.T) {
	var failNext atomic.Bool
	// The hook fails the first enter after failNext is set that has SQEs
	// to submit, which is the round carrying the Pwrite below.
	ring, err := newRing(Options{}, func(enter func(int, bool) error) func(int, bool) error {
		return func(queued int, wait bool) error {
			if queued > 0 && failNext.CompareAndSwap(true, false) {
				return syscall.EBUSY
			}
			return enter(queued, wait)
		}
	})
	if err != nil {
		t.Skipf("io_uring unavailable on this kernel: %v", err)
	}
	t.Cleanup(func() { _ = ring.Close() })
	_, dfd := tempDirFD(t)
	fd := openFile(t, ring, dfd, "f", unix.O_CREAT|unix.O_RDWR)

	failNext.Store(true)
	n, err := ring.Pwrite(fd, []byte("lost"), 0)
	checkOpError(t, err, "pwrite: device or resource busy", unix.EBUSY)
	if n != 0 {
		t.Errorf("failed Pwrite returned n = %d, want 0", n)
	}

	// The next submit carries the failed round's SQEs as NOPs, so the
	// failed write never reaches the file.
	if n, err := ring.Pwrite(fd, []byte("kept"), 10); n != 4 || err != nil {
		t.Fatalf("Pwrite after a failed submit = %d, %v; want 4, nil", n, err)
	}
	waitFor(t, "the NOPs of the failed submit", func() bool { return ring.discarded.Load() > 0 })
	var st unix.Statx_t
	if err := ring.Statx(dfd, "f", 0, unix.STATX_SIZE, &st); err != nil || st.Size != 14 {
		t.Errorf("file size = %d, %v; want 14", st.Size, err)
	}
	buf := make([]byte, 4)
	if n, err := ring.Pread(fd, buf, 0); n != 4 || err != nil || string(buf) != "\x00\x00\x00\x00" {
		t.Errorf("bytes at 0 = %q, %v; want zeros (the failed write must not land)", buf[:n], err)
	}
}

func TestRingBatchLargerThanRing(t *testing.T) {
	ring := openRing(t, Options{Entries: 8, BatchDepth: 4})
	dir, dfd := tempDirFD(t)
	names := make([]string, 500)
	for i := range names {
		names[i] = "n" + itoa3(i)
		writeFile(t, dir, names[i], make([]byte, i%13))
	}

	// Several batches and single calls share the 6 usable SQEs.
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			out := make([]unix.Statx_t, len(names))
			errs := make([]error, len(names))
			if err := ring.StatxBatch(dfd, names, 0, unix.STATX_SIZE, out, errs); err != nil {
				errc <- err
				return
			}
			for i := range names {
				if errs[i] != nil || out[i].Size != uint64(i%13) {
					errc <- errors.New("entry " + names[i] + " has a wrong result")
					return
				}
			}
			errc <- nil
		}()
	}
	var st unix.Statx_t
	for range 50 {
		if err := ring.Statx(dfd, names[7], 0, unix.STATX_SIZE, &st); err != nil || st.Size != 7 {
			t.Errorf("Statx during batches = size %d, %v; want 7, nil", st.Size, err)
		}
	}
	for range 4 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

func TestNewRingRejectsInvalidOptions(t *testing.T) {
	for _, opts := range []Options{{Entries: 4}, {Entries: 100}, {Entries: 65536}, {BatchDepth: -1}} {
		if r, err := NewRing(opts); err == nil {
			_ = r.Close()
			t.Errorf("NewRing(%+v) succeeded, want an error", opts)
		}
	}
}
