package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

// errMountUnavailable wraps a failure to open a volume's mount path, which
// is a server-side condition (a dropped or missing mount), not a client's
// missing file.
var errMountUnavailable = errors.New("volume mount is not accessible")

// openMount opens the volume's mount path.
func openMount(mount string) (*beneath.Dir, error) {
	d, err := beneath.Open(mount)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMountUnavailable, err)
	}
	return d, nil
}

// relativeToMount returns p, which vfid computed under mount, relative to
// mount, for opening beneath the mount's Dir.
func relativeToMount(mount, p string) string {
	rel, err := filepath.Rel(mount, p)
	if err != nil {
		// vfid joins onto mount, so this does not happen; the absolute
		// path makes the open fail instead of opening the wrong directory.
		return p
	}
	return filepath.ToSlash(rel)
}

// openVFolder opens the root of vfolder id on the volume mounted at mount.
// No component of the vfolder's path may be a symlink.
func openVFolder(mount *beneath.Dir, id vfid.VFolderID) (*beneath.Dir, error) {
	return mount.OpenDir(relativeToMount(mount.Path(), id.Path(mount.Path())), true)
}

// openStaging opens the staging directory of id's quota scope. It returns
// an error wrapping fs.ErrNotExist if the directory does not exist.
func openStaging(mount *beneath.Dir, id vfid.VFolderID) (*beneath.Dir, error) {
	return mount.OpenDir(relativeToMount(mount.Path(), id.StagingDir(mount.Path())), true)
}

// isNotFound reports whether err from opening a client path means that the
// path does not exist inside its folder: missing, a non-directory in the
// middle, a symlink loop, or an escape.
func isNotFound(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) ||
		errors.Is(err, unix.ELOOP) || errors.Is(err, beneath.ErrEscape) ||
		errors.Is(err, beneath.ErrInvalid) || errors.Is(err, unix.ENAMETOOLONG)
}

// joinClientPath joins the optional dst_dir query parameter and the
// token's relpath into one clean path relative to the folder, rejecting
// absolute paths and ".." that climbs out.
func joinClientPath(dstDir, relpath string) (string, error) {
	if dstDir != "" {
		if _, err := beneath.Clean(dstDir); err != nil {
			return "", err
		}
		relpath = dstDir + "/" + relpath
	}
	return beneath.Clean(relpath)
}
