package uring

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var randomSeed = flag.Uint64("uring.seed", 0, "seed for TestRandomOpsMatchSyscall (0 picks one from the clock)")

// TestRandomOpsMatchSyscall runs the same random operations through a Ring
// and a Syscall engine, each in its own directory, from many goroutines at
// once, and compares every result. Each goroutine works on its own names,
// so the expected results do not depend on the interleaving, while the ring
// receives hundreds of operations from concurrent callers.
func TestRandomOpsMatchSyscall(t *testing.T) {
	seed := *randomSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("random seed %d; rerun with -uring.seed=%d", seed, seed)
		}
	})

	ring := openRing(t, Options{Entries: 64, BatchDepth: 8})
	sys := NewSyscall()
	_, ringDir := tempDirFD(t)
	_, sysDir := tempDirFD(t)

	const workers, opsPerWorker = 16, 60
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			m := &mirror{
				t:      t,
				rng:    rand.New(rand.NewPCG(seed, uint64(w))),
				engine: [2]Engine{ring, sys},
				dirfd:  [2]int{ringDir, sysDir},
				prefix: fmt.Sprintf("w%02d-", w),
			}
			defer m.closeAll()
			for i := range opsPerWorker {
				m.step(i)
			}
		})
	}
	wg.Wait()
}

// mirror applies each random operation to both engines (index 0 is the
// Ring, 1 the Syscall engine) and reports any difference.
type mirror struct {
	t      *testing.T
	rng    *rand.Rand
	engine [2]Engine
	dirfd  [2]int
	prefix string
	open   [][2]int // fds of the same file opened through both engines
}

func (m *mirror) name() string {
	return m.prefix + string(rune('a'+m.rng.IntN(5)))
}

// step runs one random operation; i is the operation's index for messages.
func (m *mirror) step(i int) {
	switch m.rng.IntN(11) {
	case 0:
		m.openName(i)
	case 1:
		m.closeOne(i)
	case 2, 3:
		m.write(i)
	case 4:
		m.read(i)
	case 5:
		m.statx(i)
	case 6:
		name, flags := m.name(), []int{0, unix.AT_REMOVEDIR}[m.rng.IntN(2)]
		m.compareErr(i, "Unlinkat "+name, func(k int) error { return m.engine[k].Unlinkat(m.dirfd[k], name, flags) })
	case 7:
		name := m.name()
		m.compareErr(i, "Mkdirat "+name, func(k int) error { return m.engine[k].Mkdirat(m.dirfd[k], name, 0o755) })
	case 8:
		oldName, newName := m.name(), m.name()
		flags := []uint{0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE}[m.rng.IntN(3)]
		m.compareErr(i, fmt.Sprintf("Renameat %s %s %#x", oldName, newName, flags), func(k int) error {
			return m.engine[k].Renameat(m.dirfd[k], oldName, m.dirfd[k], newName, flags)
		})
	case 9:
		m.batch(i)
	case 10:
		if len(m.open) > 0 {
			fds := m.open[m.rng.IntN(len(m.open))]
			datasync := m.rng.IntN(2) == 0
			m.compareErr(i, "Fsync", func(k int) error { return m.engine[k].Fsync(fds[k], datasync) })
		}
	}
}

func (m *mirror) openName(i int) {
	name := m.name()
	flags := []int{
		unix.O_RDWR | unix.O_CREAT,
		unix.O_RDWR | unix.O_CREAT | unix.O_EXCL,
		unix.O_RDONLY,
		unix.O_WRONLY | unix.O_TRUNC,
		unix.O_RDONLY | unix.O_DIRECTORY,
	}[m.rng.IntN(5)]
	var fds [2]int
	var errs [2]error
	for k := range 2 {
		fds[k], errs[k] = m.engine[k].Openat(m.dirfd[k], name, flags, 0o644)
	}
	if !m.sameErr(i, fmt.Sprintf("Openat %s %#x", name, flags), errs) || errs[0] != nil {
		return
	}
	m.open = append(m.open, fds)
	if len(m.open) > 3 {
		m.closeOne(i)
	}
}

func (m *mirror) closeOne(i int) {
	if len(m.open) == 0 {
		return
	}
	fds := m.open[0]
	m.open = m.open[1:]
	m.compareErr(i, "CloseFD", func(k int) error { return m.engine[k].CloseFD(fds[k]) })
}

func (m *mirror) closeAll() {
	for len(m.open) > 0 {
		m.closeOne(-1)
	}
}

func (m *mirror) write(i int) {
	if len(m.open) == 0 {
		return
	}
	fds := m.open[m.rng.IntN(len(m.open))]
	data := make([]byte, m.rng.IntN(64<<10))
	for j := range data {
		data[j] = byte(m.rng.Uint32())
	}
	off := int64(m.rng.IntN(256 << 10))
	var n [2]int
	var errs [2]error
	for k := range 2 {
		n[k], errs[k] = WriteFull(m.engine[k], fds[k], data, off)
	}
	op := fmt.Sprintf("WriteFull %d bytes at %d", len(data), off)
	if m.sameErr(i, op, errs) && n[0] != n[1] {
		m.t.Errorf("op %d %s%s: io_uring wrote %d bytes, syscall %d", i, m.prefix, op, n[0], n[1])
	}
}

func (m *mirror) read(i int) {
	if len(m.open) == 0 {
		return
	}
	fds := m.open[m.rng.IntN(len(m.open))]
	size := m.rng.IntN(96 << 10)
	off := int64(m.rng.IntN(320 << 10))
	var bufs [2][]byte
	var n [2]int
	var errs [2]error
	for k := range 2 {
		bufs[k] = make([]byte, size)
		n[k], errs[k] = m.engine[k].Pread(fds[k], bufs[k], off)
	}
	op := fmt.Sprintf("Pread %d bytes at %d", size, off)
	if !m.sameErr(i, op, errs) {
		return
	}
	if n[0] != n[1] || !bytes.Equal(bufs[0][:n[0]], bufs[1][:n[1]]) {
		m.t.Errorf("op %d %s%s: io_uring read %d bytes, syscall %d, or the bytes differ", i, m.prefix, op, n[0], n[1])
	}
}

func (m *mirror) statx(i int) {
	name := m.name()
	var st [2]unix.Statx_t
	var errs [2]error
	for k := range 2 {
		errs[k] = m.engine[k].Statx(m.dirfd[k], name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &st[k])
	}
	if m.sameErr(i, "Statx "+name, errs) && errs[0] == nil && !sameStat(st[0], st[1]) {
		m.t.Errorf("op %d Statx %s: io_uring %s, syscall %s", i, name, describeStat(st[0]), describeStat(st[1]))
	}
}

// batch runs StatxBatch over every name of this worker, or UnlinkatBatch
// over a random subset.
func (m *mirror) batch(i int) {
	names := []string{"a", "b", "c", "d", "e", "nul\x00"}
	for j := range names {
		names[j] = m.prefix + names[j]
	}
	var errs [2][]error
	if m.rng.IntN(2) == 0 {
		var out [2][]unix.Statx_t
		for k := range 2 {
			out[k] = make([]unix.Statx_t, len(names))
			errs[k] = make([]error, len(names))
			if err := m.engine[k].StatxBatch(m.dirfd[k], names, 0, unix.STATX_BASIC_STATS, out[k], errs[k]); err != nil {
				m.t.Errorf("op %d StatxBatch on %s: %v", i, m.engine[k].Name(), err)
				return
			}
		}
		for j, name := range names {
			if m.sameErr(i, "StatxBatch entry "+name, [2]error{errs[0][j], errs[1][j]}) &&
				errs[0][j] == nil && !sameStat(out[0][j], out[1][j]) {
				m.t.Errorf("op %d StatxBatch entry %s: io_uring %s, syscall %s",
					i, name, describeStat(out[0][j]), describeStat(out[1][j]))
			}
		}
		return
	}

	subset := names[:m.rng.IntN(len(names)+1)]
	for k := range 2 {
		errs[k] = make([]error, len(subset))
		if err := m.engine[k].UnlinkatBatch(m.dirfd[k], subset, 0, errs[k]); err != nil {
			m.t.Errorf("op %d UnlinkatBatch on %s: %v", i, m.engine[k].Name(), err)
			return
		}
	}
	for j, name := range subset {
		m.sameErr(i, "UnlinkatBatch entry "+name, [2]error{errs[0][j], errs[1][j]})
	}
}

// compareErr runs f for both engines and compares the errors.
func (m *mirror) compareErr(i int, op string, f func(k int) error) {
	m.sameErr(i, op, [2]error{f(0), f(1)})
}

// sameErr reports whether both engines returned the same error (or none),
// and records a test error otherwise.
func (m *mirror) sameErr(i int, op string, errs [2]error) bool {
	if fmt.Sprint(errs[0]) == fmt.Sprint(errs[1]) {
		return true
	}
	m.t.Errorf("op %d %s: io_uring returned %v, syscall %v", i, op, errs[0], errs[1])
	return false
}

// sameStat compares the fields that do not depend on which directory or
// at what time the file was made.
func sameStat(a, b unix.Statx_t) bool {
	return a.Mode == b.Mode && a.Size == b.Size && a.Nlink == b.Nlink && a.Mask == b.Mask
}

func describeStat(st unix.Statx_t) string {
	return fmt.Sprintf("mode %o size %d nlink %d mask %#x", st.Mode, st.Size, st.Nlink, st.Mask)
}
