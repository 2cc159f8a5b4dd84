// Package beneath resolves client-supplied relative paths inside a directory
// so that no path, however it is spelled and whatever symlinks it meets, ends
// up outside that directory. It is the one containment component of the
// proxy: the manager API, the data plane, archive walks and clones all open
// vfolder paths through it.
//
// A Dir holds an open directory. Opens go through openat2(2) with
// RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS where the kernel has it (Linux 5.6+),
// so a symlink may point anywhere inside the directory but never out of it,
// and a directory swapped for a symlink between check and use is caught by
// the kernel. Where openat2 is missing or blocked (ENOSYS, or EPERM from a
// seccomp filter) the same calls fall back to os.Root, which walks the path
// one component at a time with the same guarantee. Operations on the final
// component itself (remove, rename, mkdir, lstat, readlink) use os.Root,
// which never follows a final symlink.
//
// This package imports nothing from this module.
package beneath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Limits on relative paths, as Linux sets them for one path and one name.
const (
	MaxPathLen = 4096
	MaxNameLen = 255
)

// ErrEscape is returned for a path that would resolve outside its directory,
// lexically ("../x", "/etc") or through a symlink.
var ErrEscape = errors.New("path escapes its folder")

// ErrInvalid is returned for a path that no file can have: NUL bytes, invalid
// UTF-8, or a name or path over the kernel's limits.
var ErrInvalid = errors.New("invalid path")

// Clean checks a relative path and returns its lexical normal form: "a//b/"
// becomes "a/b", "./x" becomes "x", "" becomes ".". It rejects absolute
// paths and paths whose ".." components climb above the start, so callers
// can respond 400 before touching the filesystem. Symlinks are checked
// later, when the path is opened.
func Clean(rel string) (string, error) {
	switch {
	case strings.IndexByte(rel, 0) >= 0:
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrInvalid, rel)
	case !utf8.ValidString(rel):
		return "", fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalid, rel)
	case len(rel) > MaxPathLen:
		return "", fmt.Errorf("%w: path is %d bytes long, the limit is %d", ErrInvalid, len(rel), MaxPathLen)
	case strings.HasPrefix(rel, "/"):
		return "", fmt.Errorf("%w: %q is absolute", ErrEscape, rel)
	}
	for _, name := range strings.Split(rel, "/") {
		if len(name) > MaxNameLen {
			return "", fmt.Errorf("%w: a name is %d bytes long, the limit is %d", ErrInvalid, len(name), MaxNameLen)
		}
	}
	c := path.Clean(rel)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: %q", ErrEscape, rel)
	}
	return c, nil
}

// openat2Missing is set once openat2 has failed with ENOSYS or EPERM, so later
// opens go straight to the os.Root walk.
var openat2Missing atomic.Bool

// Dir is an open directory that paths are resolved beneath. It is safe for
// concurrent use. Close releases it; files opened through it stay open.
type Dir struct {
	fd   int
	path string

	// rootOnce creates root on first use: most Dirs only open files with
	// openat2 and never need it, and creating one costs an open through
	// /proc.
	rootOnce sync.Once
	root     *os.Root
	rootErr  error
}

// Open opens the directory at the absolute path dir. A final symlink is not
// followed, so a vfolder replaced by a symlink is refused.
func Open(dir string) (*Dir, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return fromFd(fd, dir)
}

func fromFd(fd int, name string) (*Dir, error) {
	return &Dir{fd: fd, path: name}, nil
}

// openRoot returns the os.Root of the directory, creating it on first use.
func (d *Dir) openRoot() (*os.Root, error) {
	d.rootOnce.Do(func() {
		// os.Root takes a name, not a descriptor: open it through the fd's
		// /proc entry so both refer to the same directory even if the
		// directory was renamed.
		d.root, d.rootErr = os.OpenRoot("/proc/self/fd/" + strconv.Itoa(d.fd))
		if d.rootErr != nil {
			// Without /proc, fall back to the path the Dir was opened at.
			d.root, d.rootErr = os.OpenRoot(d.path)
		}
		if d.rootErr != nil {
			d.rootErr = &fs.PathError{Op: "open", Path: d.path, Err: d.rootErr}
		}
	})
	return d.root, d.rootErr
}

// Path returns the path the directory was opened at, for logs and replies.
// Never use it to reach files: it may have changed since.
func (d *Dir) Path() string { return d.path }

// Fd returns the directory's descriptor, valid until Close.
func (d *Dir) Fd() int { return d.fd }

// Root returns the os.Root of the directory for operations on the final
// component of a path (Remove, Rename, Mkdir, Lstat, Readlink). It is closed
// by Close.
//
// NOTE: Root returns nil when the directory can be reached neither through
// /proc/self/fd nor by its path (it was removed and /proc is not mounted),
// and calls on the nil Root then panic.
func (d *Dir) Root() *os.Root {
	root, _ := d.openRoot()
	return root
}

// Close closes the directory.
func (d *Dir) Close() error {
	var err error
	if d.root != nil {
		err = d.root.Close()
	}
	if cerr := unix.Close(d.fd); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// OpenFile opens rel beneath d with the given open(2) flags, following
// symlinks that stay inside d. O_CLOEXEC is always added. rel is cleaned
// with Clean first.
func (d *Dir) OpenFile(rel string, flag int, perm os.FileMode) (*os.File, error) {
	c, err := Clean(rel)
	if err != nil {
		return nil, err
	}
	fd, err := d.openat2(c, flag, perm, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path.Join(d.path, c)), nil
}

// OpenDir opens the directory rel beneath d as a new Dir. With noSymlinks set
// no component may be a symlink, which is how a vfolder root is opened from
// its volume.
func (d *Dir) OpenDir(rel string, noSymlinks bool) (*Dir, error) {
	c, err := Clean(rel)
	if err != nil {
		return nil, err
	}
	resolve := uint64(unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS)
	if noSymlinks {
		resolve |= unix.RESOLVE_NO_SYMLINKS
	}
	fd, err := d.openat2(c, unix.O_RDONLY|unix.O_DIRECTORY, 0, resolve)
	if err != nil {
		return nil, err
	}
	return fromFd(fd, path.Join(d.path, c))
}

func (d *Dir) openat2(rel string, flag int, perm os.FileMode, resolve uint64) (int, error) {
	if !openat2Missing.Load() {
		how := unix.OpenHow{Flags: uint64(flag | unix.O_CLOEXEC), Mode: uint64(syscallMode(perm)), Resolve: resolve}
		for {
			fd, err := unix.Openat2(d.fd, rel, &how)
			switch {
			case err == nil:
				return fd, nil
			case err == unix.EINTR || err == unix.EAGAIN:
				// EAGAIN: a concurrent rename raced the lookup; retry.
				continue
			case err == unix.EXDEV:
				return -1, fmt.Errorf("%w: %q", ErrEscape, rel)
			case err == unix.ENOSYS || err == unix.EPERM && !isPermissionOnPath(d.fd, rel):
				openat2Missing.Store(true)
			case resolve&unix.RESOLVE_NO_SYMLINKS != 0 && err == unix.ELOOP:
				return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
			default:
				return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
			}
			break
		}
	}
	return d.walkOpen(rel, flag, perm, resolve&unix.RESOLVE_NO_SYMLINKS != 0)
}

// isPermissionOnPath distinguishes an EPERM of the file itself from a
// seccomp filter that blocks openat2, because only in the first case does an
// openat2 of "." succeed.
func isPermissionOnPath(dirfd int, rel string) bool {
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(dirfd, ".", &how)
	if err == nil {
		unix.Close(fd)
		return true
	}
	return false
}

// walkOpen is the fallback for kernels without openat2: os.Root resolves rel
// one component at a time and refuses any step out of the directory.
func (d *Dir) walkOpen(rel string, flag int, perm os.FileMode, noSymlinks bool) (int, error) {
	if noSymlinks {
		if err := d.checkNoSymlinks(rel); err != nil {
			return -1, err
		}
	}
	root, err := d.openRoot()
	if err != nil {
		return -1, err
	}
	f, err := root.OpenFile(rel, flag, perm)
	if err != nil {
		return -1, translateRootError(rel, err)
	}
	// Detach the descriptor from the os.File so callers own a plain fd.
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, &fs.PathError{Op: "dup", Path: rel, Err: err}
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

func (d *Dir) checkNoSymlinks(rel string) error {
	root, err := d.openRoot()
	if err != nil {
		return err
	}
	prefix := ""
	for _, name := range strings.Split(rel, "/") {
		prefix = path.Join(prefix, name)
		fi, err := root.Lstat(prefix)
		if err != nil {
			return translateRootError(rel, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return &fs.PathError{Op: "open", Path: rel, Err: unix.ELOOP}
		}
	}
	return nil
}

// translateRootError maps os.Root's escape error, which has no exported
// sentinel, onto ErrEscape.
func translateRootError(rel string, err error) error {
	if err != nil && strings.Contains(err.Error(), "path escapes from parent") {
		return fmt.Errorf("%w: %q", ErrEscape, rel)
	}
	return err
}

// TranslateError maps an error of an os.Root method called on d.Root() the
// same way OpenFile reports it, so callers see ErrEscape for every escape.
func TranslateError(rel string, err error) error { return translateRootError(rel, err) }

func syscallMode(perm os.FileMode) uint32 {
	m := uint32(perm.Perm())
	if perm&os.ModeSetuid != 0 {
		m |= unix.S_ISUID
	}
	if perm&os.ModeSetgid != 0 {
		m |= unix.S_ISGID
	}
	if perm&os.ModeSticky != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

// forceFallback makes every later open use the os.Root walk; tests use it to
// run the same table over both resolvers.
func forceFallback(on bool) { openat2Missing.Store(on) }
