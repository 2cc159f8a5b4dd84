package uring

import (
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"golang.org/x/sys/unix"
)

// job is one Ring call: one SQE, or one SQE per name for the statx and
// unlinkat opcodes. The calling goroutine fills it and pins the memory that
// its SQEs point at. The owner goroutine then submits its entries and writes
// results. done receives one value when every entry has completed, after
// which only the caller touches the job again.
type job struct {
	op       uint8 // giouring.Op*
	fd       int   // fd, dirfd, old dirfd, or the splice input fd
	fd2      int   // new dirfd, or the splice output fd
	buf      []byte
	path     []byte // NUL-terminated
	path2    []byte // NUL-terminated
	off      uint64 // file offset, or the splice output offset
	off2     uint64 // splice input offset
	length   uint32
	flags    uint32
	mode     uint32 // open or mkdir mode, or the statx mask
	datasync bool

	// Statx and unlinkat jobs: name i is names[starts[i]:] up to its NUL,
	// and order lists the name indexes to submit (names without a NUL
	// byte inside).
	names  []byte
	starts []uint32
	order  []int32
	statx  []unix.Statx_t

	// results[i] is the CQE result of name i, or of the only entry.
	results []int32
	depth   int // maximum entries in flight

	// Owner-side progress.
	next      int // entries of order submitted so far
	inFlight  int
	completed int

	pin  runtime.Pinner
	done chan struct{}

	// Backing arrays for one-entry jobs, so they allocate nothing.
	oneResult [1]int32
	oneOrder  [1]int32
	oneStart  [1]uint32
}

var jobPool = sync.Pool{
	New: func() any { return &job{done: make(chan struct{}, 1)} },
}

// getJob returns a cleared job for op with one entry.
func getJob(op uint8) *job {
	j := jobPool.Get().(*job)
	j.op = op
	j.depth = 1
	j.results = j.oneResult[:]
	j.order = j.oneOrder[:]
	return j
}

// putJob unpins the job's memory, drops its references to caller memory and
// pools it. The caller must have received from done, or never queued j.
func putJob(j *job) {
	j.pin.Unpin()
	done, pin := j.done, j.pin
	*j = job{done: done, pin: pin}
	jobPool.Put(j)
}

// setNames copies names into one NUL-separated buffer and lists the names
// that contain no NUL byte in order.
func (j *job) setNames(names []string) {
	size := 0
	for _, name := range names {
		size += len(name) + 1
	}
	j.names = make([]byte, size)
	if len(names) == 1 {
		j.starts = j.oneStart[:]
		j.order = j.oneOrder[:0]
	} else {
		j.starts = make([]uint32, len(names))
		j.order = make([]int32, 0, len(names))
		j.results = make([]int32, len(names))
	}

	pos := 0
	for i, name := range names {
		j.starts[i] = uint32(pos)
		pos += copy(j.names[pos:], name) + 1
		if strings.IndexByte(name, 0) < 0 {
			j.order = append(j.order, int32(i))
		}
	}
}

// entries returns the number of SQEs the job submits.
func (j *job) entries() int {
	switch j.op {
	case giouring.OpStatx, giouring.OpUnlinkat:
		return len(j.order)
	}
	return 1
}

// prep fills e for entry k and returns the index in results that its CQE
// result belongs to.
func (j *job) prep(e *sqe, k int) int {
	switch j.op {
	case giouring.OpRead, giouring.OpWrite:
		prepReadWrite(e, j.op, j.fd, j.buf, j.off)
	case giouring.OpFsync:
		prepFsync(e, j.fd, j.datasync)
	case giouring.OpOpenat:
		prepOpenat(e, j.fd, j.path, int(j.flags), j.mode)
	case giouring.OpClose:
		prepClose(e, j.fd)
	case giouring.OpRenameat:
		prepRenameat(e, j.fd, j.path, j.fd2, j.path2, j.flags)
	case giouring.OpMkdirat:
		prepMkdirat(e, j.fd, j.path, j.mode)
	case giouring.OpSplice:
		prepSplice(e, j.fd, j.off2, j.fd2, j.off, j.length, j.flags)
	case giouring.OpStatx:
		i := int(j.order[k])
		prepStatx(e, j.fd, j.names[j.starts[i]:], j.flags, j.mode, unsafe.Pointer(&j.statx[i]))
		return i
	case giouring.OpUnlinkat:
		i := int(j.order[k])
		prepUnlinkat(e, j.fd, j.names[j.starts[i]:], j.flags)
		return i
	}
	return 0
}
