package volume

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// walkBatch is the number of names one StatxBatch or UnlinkatBatch call of
// a tree walk carries.
const walkBatch = 512

// errScanTimedOut ends a usage scan that ran past its deadline.
var errScanTimedOut = errors.New("usage scan timed out")

// treeTotals is the result of measureTree.
type treeTotals struct {
	// Entries counts every entry below the root, of any type.
	Entries int64
	// ApparentBytes sums st_size of every entry below the root.
	ApparentBytes int64
	// AllocatedBytes sums st_blocks*512 of the root and every entry below
	// it, counting each inode with several hard links once, as du(1) does.
	AllocatedBytes int64
}

// walkScratch holds the per-batch slices of one walk.
type walkScratch struct {
	ents  []dirent
	names []string
	stx   []unix.Statx_t
	errs  []error
}

func newWalkScratch() *walkScratch {
	return &walkScratch{
		ents:  make([]dirent, 0, walkBatch),
		names: make([]string, 0, walkBatch),
		stx:   make([]unix.Statx_t, walkBatch),
		errs:  make([]error, walkBatch),
	}
}

// namesOf fills s.names with the names of ents.
func (s *walkScratch) namesOf(ents []dirent) []string {
	s.names = s.names[:0]
	for _, e := range ents {
		s.names = append(s.names, e.name)
	}
	return s.names
}

// measureFrame is one open directory of measureTree's depth-first walk.
type measureFrame struct {
	fd      int
	rd      *direntReader
	subdirs []string
}

// inodeKey identifies an inode across the devices a tree may span.
type inodeKey struct {
	major, minor uint32
	ino          uint64
}

// measureTree walks the directory tree at rootfd without following
// symlinks. Entries that vanish during the walk are skipped, but a
// directory that cannot be opened or read ends the walk with its error. The walk
// returns errScanTimedOut once the deadline passes and ctx.Err() once ctx
// is done, both checked after every batch. A zero deadline means none.
func measureTree(ctx context.Context, tio TreeIO, rootfd int, deadline time.Time) (treeTotals, error) {
	var totals treeTotals
	seen := map[inodeKey]struct{}{}
	const mask = unix.STATX_TYPE | unix.STATX_SIZE | unix.STATX_BLOCKS | unix.STATX_INO | unix.STATX_NLINK

	var root unix.Statx_t
	if err := unix.Statx(rootfd, "", unix.AT_EMPTY_PATH, mask, &root); err != nil {
		return totals, err
	}
	totals.AllocatedBytes = int64(root.Blocks) * 512

	fd, err := reopenDir(rootfd)
	if err != nil {
		return totals, err
	}
	stack := []*measureFrame{{fd: fd, rd: newDirentReader(fd)}}
	defer func() {
		for _, f := range stack {
			f.rd.release()
			unix.Close(f.fd)
		}
	}()

	s := newWalkScratch()
	for len(stack) > 0 {
		top := stack[len(stack)-1]

		// Descend into the next pending subdirectory.
		if n := len(top.subdirs); n > 0 {
			name := top.subdirs[n-1]
			top.subdirs = top.subdirs[:n-1]
			child, err := openDirNoFollow(top.fd, name)
			if err != nil {
				if isVanished(err) {
					continue
				}
				return totals, err
			}
			stack = append(stack, &measureFrame{fd: child, rd: newDirentReader(child)})
			continue
		}

		// Leave a directory whose entries are all read.
		if top.rd.eof {
			top.rd.release()
			unix.Close(top.fd)
			stack = stack[:len(stack)-1]
			continue
		}

		// Read and stat the next batch of entries.
		ents, err := top.rd.next(s.ents[:0], walkBatch)
		if err != nil {
			return totals, err
		}
		if len(ents) == 0 {
			continue
		}
		names := s.namesOf(ents)
		if err := tio.StatxBatch(top.fd, names, unix.AT_SYMLINK_NOFOLLOW, mask, s.stx, s.errs); err != nil {
			return totals, err
		}
		for i, name := range names {
			if s.errs[i] != nil {
				continue // vanished or unreadable entry
			}
			st := &s.stx[i]
			totals.Entries++
			totals.ApparentBytes += int64(st.Size)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				top.subdirs = append(top.subdirs, name)
			} else if st.Nlink > 1 {
				key := inodeKey{st.Dev_major, st.Dev_minor, st.Ino}
				if _, dup := seen[key]; dup {
					continue
				}
				seen[key] = struct{}{}
			}
			totals.AllocatedBytes += int64(st.Blocks) * 512
		}

		if err := ctx.Err(); err != nil {
			return totals, err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return totals, errScanTimedOut
		}
	}
	return totals, nil
}

// openDirNoFollow opens the subdirectory name of dirfd for reading and
// fails with ELOOP or ENOTDIR if name is a symlink or not a directory.
func openDirNoFollow(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// reopenDir opens the directory fd again. Unlike dup(2), the new fd has its
// own file offset, so reading its entries neither depends on nor moves the
// offset of fd.
func reopenDir(fd int) (int, error) {
	return unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// isVanished reports whether err means an entry was removed or replaced
// by something else since its directory was read.
func isVanished(err error) bool {
	switch errnoOf(err) {
	case unix.ENOENT, unix.ENOTDIR, unix.ELOOP:
		return true
	}
	return false
}
