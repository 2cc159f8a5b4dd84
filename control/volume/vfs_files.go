package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

func (v *vfs) Mkdir(ctx context.Context, id vfid.VFolderID, relpath string, parents, existOK bool) error {
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	root, err := v.openFolder(id)
	if err != nil {
		return err
	}
	defer closeDir(root)
	clean, err := beneath.Clean(relpath)
	if err != nil {
		return invalidPath("relpath", relpath, err)
	}

	r := root.Root()
	if parent := path.Dir(clean); parents && parent != "." {
		if err := r.MkdirAll(parent, 0o755); err != nil {
			return pathError("relpath", clean, beneath.TranslateError(parent, err))
		}
	}
	err = r.Mkdir(clean, 0o755)
	if errors.Is(err, fs.ErrExist) && existOK {
		// As with Python's Path.mkdir(exist_ok=True), an existing directory
		// or a symlink to one inside the vfolder is fine, but a file is not.
		if fi, serr := r.Stat(clean); serr == nil && fi.IsDir() {
			return nil
		}
	}
	return pathError("relpath", clean, beneath.TranslateError(clean, err))
}

func (v *vfs) List(_ context.Context, id vfid.VFolderID, relpath string) ([]DirEntry, error) {
	root, err := v.openFolder(id)
	if err != nil {
		return nil, err
	}
	defer closeDir(root)
	clean, err := beneath.Clean(relpath)
	if err != nil {
		return nil, invalidPath("relpath", relpath, err)
	}
	dir, err := root.OpenFile(clean, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, pathError("relpath", clean, err)
	}
	defer dir.Close()

	l := lister{root: root, dirfd: int(dir.Fd()), dirRel: clean, limit: v.opts.ScandirLimit, tio: v.opts.TreeIO}
	entries, err := l.list()
	if err != nil {
		return nil, pathError("relpath", clean, err)
	}
	return entries, nil
}

// lister lists one directory of a vfolder.
type lister struct {
	root   *beneath.Dir
	dirfd  int
	dirRel string
	limit  int
	tio    TreeIO
	// dirReal is the listed directory's absolute path, read on first use.
	dirReal string
}

// listMask is the statx mask of the fields that a listing reports.
const listMask = unix.STATX_TYPE | unix.STATX_MODE | unix.STATX_SIZE | unix.STATX_MTIME | unix.STATX_CTIME | unix.STATX_UID

// list reads entries in directory order until the limit, skipping entries
// that vanish between getdents and statx.
func (l *lister) list() ([]DirEntry, error) {
	rd := newDirentReader(l.dirfd)
	defer rd.release()
	s := newWalkScratch()
	entries := []DirEntry{}
	for !rd.eof && (l.limit == 0 || len(entries) < l.limit) {
		want := walkBatch
		if l.limit > 0 {
			want = min(want, l.limit-len(entries))
		}
		ents, err := rd.next(s.ents[:0], want)
		if err != nil {
			return nil, err
		}
		if len(ents) == 0 {
			continue
		}
		names := s.namesOf(ents)
		if err := l.tio.StatxBatch(l.dirfd, names, unix.AT_SYMLINK_NOFOLLOW, listMask, s.stx, s.errs); err != nil {
			return nil, err
		}
		for i, name := range names {
			if s.errs[i] == nil {
				entries = append(entries, l.entry(name, &s.stx[i]))
			}
		}
	}
	return entries, nil
}

func (l *lister) entry(name string, st *unix.Statx_t) DirEntry {
	e := DirEntry{
		Name: name,
		Type: TypeFile,
		Stat: Stat{
			Mode:     uint32(st.Mode),
			Size:     int64(st.Size),
			Created:  time.Unix(st.Ctime.Sec, int64(st.Ctime.Nsec)),
			Modified: time.Unix(st.Mtime.Sec, int64(st.Mtime.Nsec)),
			Owner:    st.Uid,
		},
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = TypeDirectory
	case unix.S_IFLNK:
		e.Type = TypeSymlink
		e.SymlinkTarget = l.symlinkTarget(name)
	}
	return e
}

// symlinkTarget resolves the symlink name beneath the vfolder root and
// returns its target relative to the listed directory, or "" when the
// target lies outside that directory, outside the vfolder, or in a loop.
// A dangling relative symlink is resolved lexically.
func (l *lister) symlinkTarget(name string) string {
	if l.dirReal == "" {
		real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(l.dirfd))
		if err != nil {
			return ""
		}
		l.dirReal = real
	}

	f, err := l.root.OpenFile(path.Join(l.dirRel, name), unix.O_PATH, 0)
	if err == nil {
		defer f.Close()
		real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
		if err != nil {
			return ""
		}
		return relativeTo(real, l.dirReal)
	}
	if errnoOf(err) != unix.ENOENT {
		return ""
	}

	text, err := readlinkat(l.dirfd, name)
	if err != nil || path.IsAbs(text) {
		return ""
	}
	lexical := path.Join(l.dirRel, text)
	if checkInside(l.root, lexical) != nil {
		return ""
	}
	return relativeTo(lexical, l.dirRel)
}

// relativeTo returns p relative to dir when p is dir or below it, else "".
func relativeTo(p, dir string) string {
	switch {
	case p == dir:
		return "."
	case dir == ".":
		if p == ".." || strings.HasPrefix(p, "../") {
			return ""
		}
		return p
	case strings.HasPrefix(p, dir+"/"):
		return p[len(dir)+1:]
	}
	return ""
}

func (v *vfs) Rename(ctx context.Context, id vfid.VFolderID, relpath, newName string) error {
	if newName == "" || newName == "." || newName == ".." || strings.Contains(newName, "/") {
		return newError(ErrInvalidArgument, "new_name", fmt.Sprintf("invalid new name %q: it must be one path component, not \".\" or \"..\"", truncate(newName)), nil)
	}
	if _, err := beneath.Clean(newName); err != nil {
		return invalidPath("new_name", newName, err)
	}
	clean, err := beneath.Clean(relpath)
	if err != nil {
		return invalidPath("relpath", relpath, err)
	}
	if clean == "." {
		return newError(ErrInvalidArgument, "relpath", "cannot rename the vfolder root", nil)
	}
	return v.move(ctx, id, clean, path.Join(path.Dir(clean), newName), "relpath", "new_name")
}

func (v *vfs) Move(ctx context.Context, id vfid.VFolderID, src, dst string) error {
	srcClean, err := beneath.Clean(src)
	if err != nil {
		return invalidPath("src_relpath", src, err)
	}
	if srcClean == "." {
		return newError(ErrInvalidArgument, "src_relpath", "cannot move the vfolder root", nil)
	}
	dstClean, err := beneath.Clean(dst)
	if err != nil {
		return invalidPath("dst_relpath", dst, err)
	}
	return v.move(ctx, id, srcClean, dstClean, "src_relpath", "dst_relpath")
}

// move renames the clean path src like mv(1): into dst if dst is a
// directory (following symlinks inside the vfolder), otherwise onto dst,
// replacing a file there. The source's last component is never followed,
// so a symlink is moved itself. srcField and dstField name the request
// parameters for errors.
func (v *vfs) move(ctx context.Context, id vfid.VFolderID, src, dst, srcField, dstField string) error {
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	root, err := v.openFolder(id)
	if err != nil {
		return err
	}
	defer closeDir(root)

	srcDir, err := root.OpenDir(path.Dir(src), false)
	if err != nil {
		return pathError(srcField, src, err)
	}
	defer closeDir(srcDir)
	srcBase := path.Base(src)
	var st unix.Stat_t
	if err := unix.Fstatat(srcDir.Fd(), srcBase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathError(srcField, src, err)
	}

	// dst is an existing directory: move src into it, never replacing.
	dstDir, err := root.OpenDir(dst, false)
	if err == nil {
		defer closeDir(dstDir)
		target := path.Join(dst, srcBase)
		err := unix.Renameat2(srcDir.Fd(), srcBase, dstDir.Fd(), srcBase, unix.RENAME_NOREPLACE)
		if err == unix.EXDEV {
			err = v.moveAcrossDevices(ctx, id, srcDir, srcBase, &st, dstDir, srcBase, unix.RENAME_NOREPLACE)
		}
		if errnoOf(err) == unix.EEXIST {
			return &FSError{Msg: fmt.Sprintf("Destination path '%s' already exists", target), Paths: []string{}, Err: err}
		}
		return pathError(dstField, target, err)
	}
	if errors.Is(err, beneath.ErrEscape) || errors.Is(err, beneath.ErrInvalid) {
		return invalidPath(dstField, dst, err)
	}
	if !isNotExist(err) && errnoOf(err) != unix.ELOOP {
		return pathError(dstField, dst, err)
	}

	// Otherwise rename onto dst in its parent directory.
	dstParent, err := root.OpenDir(path.Dir(dst), false)
	if err != nil {
		return pathError(dstField, dst, err)
	}
	defer closeDir(dstParent)
	err = unix.Renameat2(srcDir.Fd(), srcBase, dstParent.Fd(), path.Base(dst), 0)
	if err == unix.EXDEV {
		err = v.moveAcrossDevices(ctx, id, srcDir, srcBase, &st, dstParent, path.Base(dst), 0)
	}
	return pathError(dstField, dst, err)
}

// moveAcrossDevices moves an entry between two file systems mounted inside
// one vfolder: it copies the entry into a temporary directory next to the
// destination, renames the copy into place with renameat2 flags, and then
// removes the source. Unlike rename it is not atomic.
//
// NOTE: no test mounts a second file system inside a vfolder, so this path
// has only been exercised by hand.
func (v *vfs) moveAcrossDevices(ctx context.Context, id vfid.VFolderID, srcDir *beneath.Dir, srcBase string, st *unix.Stat_t, dstDir *beneath.Dir, dstBase string, flags uint) error {
	tmpName := ".mv-" + randomHex(8)
	if err := unix.Mkdirat(dstDir.Fd(), tmpName, 0o700); err != nil {
		return err
	}
	defer removeTree(context.Background(), v.opts.TreeIO, dstDir.Fd(), tmpName)
	tmp, err := openDirNoFollow(dstDir.Fd(), tmpName)
	if err != nil {
		return err
	}
	defer unix.Close(tmp)

	var stx unix.Statx_t
	if err := unix.Statx(srcDir.Fd(), srcBase, unix.AT_SYMLINK_NOFOLLOW, copyMask, &stx); err != nil {
		return err
	}
	frame := &copyFrame{src: srcDir.Fd(), dst: tmp}
	var stats copyStats
	if err := copyEntry(frame, srcBase, &stx, &stats); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := copySubtree(ctx, v.opts.TreeIO, srcDir.Fd(), tmp, srcBase, &stx); err != nil {
			return err
		}
	}
	if err := unix.Renameat2(tmp, srcBase, dstDir.Fd(), dstBase, flags); err != nil {
		return err
	}
	return removeTree(ctx, v.opts.TreeIO, srcDir.Fd(), srcBase)
}

// copySubtree fills the directory name of dstParent, already created by
// copyEntry, with a copy of the directory name of srcParent, and then
// applies the source's mode and times to it.
func copySubtree(ctx context.Context, tio TreeIO, srcParent, dstParent int, name string, st *unix.Statx_t) error {
	src, err := openDirNoFollow(srcParent, name)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	dst, err := openDirNoFollow(dstParent, name)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	if _, err := copyContents(ctx, tio, src, dst); err != nil {
		return err
	}
	return applyMetadata(dstParent, name, st)
}

// Fetch opens a regular file of the vfolder for reading. O_NONBLOCK keeps
// the open from waiting for a writer when the path names a FIFO, and it has
// no effect on reads of a regular file.
func (v *vfs) Fetch(_ context.Context, id vfid.VFolderID, relpath string) (*os.File, error) {
	root, err := v.openFolder(id)
	if err != nil {
		return nil, err
	}
	defer closeDir(root)
	clean, err := beneath.Clean(relpath)
	if err != nil {
		return nil, invalidPath("relpath", relpath, err)
	}

	f, err := root.OpenFile(clean, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, newError(ErrFileNotFound, "relpath", fmt.Sprintf("file %q not found", truncate(clean)), err)
	}
	if err != nil {
		return nil, pathError("relpath", clean, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = unix.EISDIR
	} else if err == nil && !fi.Mode().IsRegular() {
		err = newError(ErrInvalidArgument, "relpath", fmt.Sprintf("%q is not a regular file", truncate(clean)), nil)
	}
	if err != nil {
		f.Close()
		return nil, pathError("relpath", clean, err)
	}
	return f, nil
}

// DeleteFiles checks every path first, so that one invalid path deletes
// nothing. It then deletes in order and stops at the first error: a
// directory (recursive only) is moved to the trash and removed in the
// background, anything else, symlinks included, is unlinked itself.
func (v *vfs) DeleteFiles(ctx context.Context, id vfid.VFolderID, relpaths []string, recursive bool) error {
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	root, err := v.openFolder(id)
	if err != nil {
		return err
	}
	defer closeDir(root)

	cleaned := make([]string, len(relpaths))
	for i, rel := range relpaths {
		clean, err := beneath.Clean(rel)
		if err != nil {
			return invalidPath("relpaths", rel, err)
		}
		if clean == "." {
			return newError(ErrInvalidArgument, "relpaths", "cannot delete the vfolder root", nil)
		}
		if err := checkInside(root, path.Dir(clean)); errors.Is(err, beneath.ErrEscape) || errors.Is(err, beneath.ErrInvalid) {
			return invalidPath("relpaths", rel, err)
		}
		cleaned[i] = clean
	}

	for _, clean := range cleaned {
		if err := v.deleteOne(ctx, id, root, clean, recursive); err != nil {
			return err
		}
	}
	return nil
}

func (v *vfs) deleteOne(ctx context.Context, id vfid.VFolderID, root *beneath.Dir, clean string, recursive bool) error {
	parent, err := root.OpenDir(path.Dir(clean), false)
	if err != nil {
		return pathError("relpaths", clean, err)
	}
	defer closeDir(parent)
	base := path.Base(clean)

	var st unix.Stat_t
	if err := unix.Fstatat(parent.Fd(), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathError("relpaths", clean, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return pathError("relpaths", clean, unix.Unlinkat(parent.Fd(), base, 0))
	}
	if !recursive {
		return pathError("relpaths", clean, unix.EISDIR)
	}

	trashName, err := v.moveToTrash(parent, base, id)
	if err == nil {
		v.trash.enqueue(quotaScopeRel(id), trashName)
		return nil
	}
	if errnoOf(err) != unix.EXDEV {
		return pathError("relpaths", clean, err)
	}
	// A file system mounted inside the vfolder: remove in place.
	return pathError("relpaths", clean, removeTree(ctx, v.opts.TreeIO, parent.Fd(), base))
}
