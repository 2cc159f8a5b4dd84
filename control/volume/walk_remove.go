package volume

import (
	"context"

	"golang.org/x/sys/unix"
)

// maxRemovePasses bounds how often removeContents rereads a directory that
// is still not empty after a pass: getdents may skip entries while the
// directory changes, and a writer may keep adding entries.
const maxRemovePasses = 3

// removeFrame is one open directory of removeContents' depth-first walk.
type removeFrame struct {
	fd   int
	name string // name in the parent frame's directory
	rd   *direntReader
	// subdirs are entries still to empty and remove.
	subdirs []string
	// emptied are subdirectories whose contents are gone, to be removed
	// with one UnlinkatBatch(AT_REMOVEDIR).
	emptied []string
	// passes counts full reads of this directory.
	passes int
}

// removeTree removes name from the directory parentfd: a file or symlink
// with one unlinkat, a directory with everything below it. It never
// follows a symlink. A missing name is not an error.
func removeTree(ctx context.Context, tio TreeIO, parentfd int, name string) error {
	unlinkErr := unix.Unlinkat(parentfd, name, 0)
	switch unlinkErr {
	case nil, unix.ENOENT:
		return nil
	case unix.EISDIR, unix.EPERM:
		// Linux reports EISDIR for unlink of a directory, and some file
		// systems report EPERM as POSIX allows.
	default:
		return unlinkErr
	}

	for pass := 0; ; pass++ {
		fd, err := openDirNoFollow(parentfd, name)
		switch err {
		case nil:
		case unix.ENOENT:
			return nil
		case unix.ENOTDIR:
			return unlinkErr // not a directory, so the unlink's EPERM is the error
		default:
			return err
		}
		err = removeContents(ctx, tio, fd)
		unix.Close(fd)
		if err != nil {
			return err
		}
		err = unix.Unlinkat(parentfd, name, unix.AT_REMOVEDIR)
		if err == unix.ENOTEMPTY && pass+1 < maxRemovePasses {
			continue
		}
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
}

// removeContents removes every entry below the directory dirfd, without
// following symlinks, and leaves dirfd itself. Entries that vanish during
// the walk are skipped. The walk goes on past a failed entry and returns
// the first error at the end, so one bad entry does not keep the rest.
func removeContents(ctx context.Context, tio TreeIO, dirfd int) error {
	fd, err := reopenDir(dirfd)
	if err != nil {
		return err
	}
	stack := []*removeFrame{{fd: fd, rd: newDirentReader(fd)}}
	defer func() {
		for _, f := range stack {
			f.rd.release()
			unix.Close(f.fd)
		}
	}()

	var firstErr error
	keep := func(err error) {
		if firstErr == nil && err != nil {
			firstErr = err
		}
	}
	s := newWalkScratch()
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		top := stack[len(stack)-1]

		// Descend into the next directory still to empty.
		if n := len(top.subdirs); n > 0 {
			name := top.subdirs[n-1]
			top.subdirs = top.subdirs[:n-1]
			child, err := openDirNoFollow(top.fd, name)
			switch {
			case err == unix.ENOENT:
			case err == unix.ENOTDIR || err == unix.ELOOP:
				// Replaced by a file or symlink since it was read.
				keep(ignoreMissing(unix.Unlinkat(top.fd, name, 0)))
			case err != nil:
				keep(err)
			default:
				stack = append(stack, &removeFrame{fd: child, name: name, rd: newDirentReader(child)})
			}
			continue
		}

		// Read and remove the next batch of entries.
		if !top.rd.eof {
			ents, err := top.rd.next(s.ents[:0], walkBatch)
			if err != nil {
				keep(err)
				top.rd.eof = true
				continue
			}
			top.subdirs = append(top.subdirs, unlinkFiles(tio, top.fd, ents, s, keep)...)
			if len(top.emptied) >= walkBatch {
				top.subdirs = append(top.subdirs, removeEmptied(tio, top, s, keep)...)
			}
			continue
		}

		// Every entry was read: remove the emptied subdirectories, and read
		// the directory again if some of them turned out not to be empty.
		top.passes++
		retry := removeEmptied(tio, top, s, keep)
		if len(retry) > 0 && top.passes < maxRemovePasses {
			// The next read finds the directories that are not empty again.
			if err := top.rd.rewind(); err != nil {
				keep(err)
			}
			continue
		}

		top.rd.release()
		unix.Close(top.fd)
		stack = stack[:len(stack)-1]
		if len(stack) > 0 {
			parent := stack[len(stack)-1]
			parent.emptied = append(parent.emptied, top.name)
		}
	}
	return firstErr
}

// unlinkFiles unlinks every entry of ents that is not known to be a
// directory, and returns the names that turned out to be directories.
func unlinkFiles(tio TreeIO, dirfd int, ents []dirent, s *walkScratch, keep func(error)) []string {
	var dirs []string
	s.names = s.names[:0]
	for _, e := range ents {
		if e.typ == unix.DT_DIR {
			dirs = append(dirs, e.name)
		} else {
			s.names = append(s.names, e.name)
		}
	}
	if len(s.names) == 0 {
		return dirs
	}
	if err := tio.UnlinkatBatch(dirfd, s.names, 0, s.errs); err != nil {
		keep(err)
		return dirs
	}
	for i, name := range s.names {
		switch errnoOf(s.errs[i]) {
		case 0, unix.ENOENT:
		case unix.EISDIR, unix.EPERM:
			// d_type was DT_UNKNOWN, or the entry became a directory.
			dirs = append(dirs, name)
		default:
			keep(s.errs[i])
		}
	}
	return dirs
}

// removeEmptied removes the emptied subdirectories of f and returns those
// that are not empty (yet), for another pass.
func removeEmptied(tio TreeIO, f *removeFrame, s *walkScratch, keep func(error)) []string {
	var retry []string
	for len(f.emptied) > 0 {
		n := min(len(f.emptied), walkBatch)
		batch := f.emptied[:n]
		if err := tio.UnlinkatBatch(f.fd, batch, unix.AT_REMOVEDIR, s.errs); err != nil {
			keep(err)
			f.emptied = f.emptied[n:]
			continue
		}
		for i, name := range batch {
			switch errnoOf(s.errs[i]) {
			case 0, unix.ENOENT:
			case unix.ENOTEMPTY, unix.EEXIST:
				retry = append(retry, name)
			default:
				keep(s.errs[i])
			}
		}
		f.emptied = f.emptied[n:]
	}
	return retry
}

func ignoreMissing(err error) error {
	if err == unix.ENOENT {
		return nil
	}
	return err
}
