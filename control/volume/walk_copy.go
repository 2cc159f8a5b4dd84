package volume

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"
)

// copyBufferSize is the buffer of the read/write fallback of copyFileData.
const copyBufferSize = 1 << 20

// copyBuffers keeps the buffers of the read/write fallback. A buffer is
// put back as soon as one file is copied and never kept past that.
var copyBuffers = sync.Pool{New: func() any {
	b := make([]byte, copyBufferSize)
	return &b
}}

// copyStats counts what copyContents left out.
type copyStats struct {
	// Skipped counts sockets and device files, which are not copied.
	Skipped int64
}

// copyFrame is one pair of open directories of copyContents' walk.
type copyFrame struct {
	src, dst int
	rd       *direntReader
	// name is the directory's name in the parent frame, and st its source
	// statx, whose mode and times are applied once its contents are copied.
	name string
	st   unix.Statx_t
	// subdirs are created destination directories still to fill.
	subdirs []copySubdir
}

type copySubdir struct {
	name string
	st   unix.Statx_t
}

// copyMask is the statx mask of the fields that the copy reads from each
// source entry.
const copyMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_SIZE | unix.STATX_ATIME | unix.STATX_MTIME

// copyContents copies every entry below the directory srcfd into the empty
// directory dstfd without following any symlink. Symlinks are recreated
// with the same target text. Directories and FIFOs are recreated, regular
// files are copied with copy_file_range(2) or, where that fails, read and
// write, and sockets and devices are skipped.
//
// Modes (permission, setuid, setgid and sticky bits) and access and
// modification times are preserved. Owners are not, and hard links become
// separate files. The mode and times of dstfd itself are left to the
// caller. The first error ends the copy, and the caller removes the partial
// tree.
func copyContents(ctx context.Context, tio TreeIO, srcfd, dstfd int) (copyStats, error) {
	var stats copyStats
	src, err := reopenDir(srcfd)
	if err != nil {
		return stats, err
	}
	dst, err := reopenDir(dstfd)
	if err != nil {
		unix.Close(src)
		return stats, err
	}
	stack := []*copyFrame{{src: src, dst: dst, rd: newDirentReader(src)}}
	defer func() {
		for _, f := range stack {
			f.close()
		}
	}()

	s := newWalkScratch()
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return stats, err
		}
		top := stack[len(stack)-1]

		// Descend into the next directory still to fill.
		if n := len(top.subdirs); n > 0 {
			sub := top.subdirs[n-1]
			top.subdirs = top.subdirs[:n-1]
			child, err := openCopyFrame(top, sub)
			if err != nil {
				if isVanished(err) {
					continue
				}
				return stats, err
			}
			stack = append(stack, child)
			continue
		}

		// Leave a finished directory, applying its mode and times now that
		// no more entries will change its mtime.
		if top.rd.eof {
			stack = stack[:len(stack)-1]
			var err error
			if len(stack) > 0 {
				err = applyMetadata(stack[len(stack)-1].dst, top.name, &top.st)
			}
			top.close()
			if err != nil {
				return stats, err
			}
			continue
		}

		// Read, stat and copy the next batch of entries.
		ents, err := top.rd.next(s.ents[:0], walkBatch)
		if err != nil {
			return stats, err
		}
		if len(ents) == 0 {
			continue
		}
		names := s.namesOf(ents)
		if err := tio.StatxBatch(top.src, names, unix.AT_SYMLINK_NOFOLLOW, copyMask, s.stx, s.errs); err != nil {
			return stats, err
		}
		for i, name := range names {
			if s.errs[i] != nil {
				if isVanished(s.errs[i]) {
					continue
				}
				return stats, s.errs[i]
			}
			if err := copyEntry(top, name, &s.stx[i], &stats); err != nil {
				if isVanished(err) {
					continue
				}
				return stats, err
			}
		}
	}
	return stats, nil
}

func (f *copyFrame) close() {
	f.rd.release()
	unix.Close(f.src)
	unix.Close(f.dst)
}

func openCopyFrame(parent *copyFrame, sub copySubdir) (*copyFrame, error) {
	src, err := openDirNoFollow(parent.src, sub.name)
	if err != nil {
		return nil, err
	}
	dst, err := openDirNoFollow(parent.dst, sub.name)
	if err != nil {
		unix.Close(src)
		return nil, err
	}
	return &copyFrame{src: src, dst: dst, rd: newDirentReader(src), name: sub.name, st: sub.st}, nil
}

// copyEntry copies one non-directory entry, or creates the destination
// directory of a directory entry and queues it on f.
func copyEntry(f *copyFrame, name string, st *unix.Statx_t, stats *copyStats) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		// Owner-only until its own mode is applied after its contents.
		if err := unix.Mkdirat(f.dst, name, 0o700); err != nil {
			return err
		}
		f.subdirs = append(f.subdirs, copySubdir{name: name, st: *st})
		return nil
	case unix.S_IFREG:
		return copyRegularFile(f.src, f.dst, name, st)
	case unix.S_IFLNK:
		return copySymlink(f.src, f.dst, name, st)
	case unix.S_IFIFO:
		if err := unix.Mknodat(f.dst, name, unix.S_IFIFO|0o600, 0); err != nil {
			return err
		}
		return applyMetadata(f.dst, name, st)
	default:
		stats.Skipped++
		return nil
	}
}

func copyRegularFile(srcdir, dstdir int, name string, st *unix.Statx_t) error {
	// O_NONBLOCK: if the entry was replaced by a FIFO since its statx, the
	// open must not wait for a writer.
	in, err := unix.Openat(srcdir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(in)
	out, err := unix.Openat(dstdir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}

	err = copyFileData(in, out)
	if err == nil {
		err = unix.Fchmod(out, uint32(st.Mode)&0o7777)
	}
	if cerr := unix.Close(out); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return setTimes(dstdir, name, st)
}

// copyFileData copies in to out from their current offsets to the end of
// in: with copy_file_range(2), which lets the file system share or offload
// the data, and with read/write where the kernel or file system refuses it.
func copyFileData(in, out int) error {
	for {
		n, err := unix.CopyFileRange(in, nil, out, nil, 1<<30, 0)
		switch err {
		case nil:
			if n == 0 {
				return nil
			}
			continue
		case unix.EINTR:
			continue
		case unix.EXDEV, unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP, unix.EBADF:
			return readWriteCopy(in, out)
		default:
			return err
		}
	}
}

func readWriteCopy(in, out int) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		n, err := unix.Read(in, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		for written := 0; written < n; {
			m, err := unix.Write(out, buf[written:n])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			written += m
		}
	}
}

func copySymlink(srcdir, dstdir int, name string, st *unix.Statx_t) error {
	target, err := readlinkat(srcdir, name)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, dstdir, name); err != nil {
		return err
	}
	return setTimes(dstdir, name, st)
}

// readlinkat returns the target text of the symlink name in dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// applyMetadata sets the mode and times of name in dirfd from st, without
// following a symlink.
func applyMetadata(dirfd int, name string, st *unix.Statx_t) error {
	if err := unix.Fchmodat(dirfd, name, uint32(st.Mode)&0o7777, 0); err != nil {
		return err
	}
	return setTimes(dirfd, name, st)
}

// setTimes sets the access and modification times of name in dirfd from
// st, on the entry itself even when it is a symlink.
func setTimes(dirfd int, name string, st *unix.Statx_t) error {
	ts := []unix.Timespec{
		{Sec: st.Atime.Sec, Nsec: int64(st.Atime.Nsec)},
		{Sec: st.Mtime.Sec, Nsec: int64(st.Mtime.Nsec)},
	}
	return unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
}
