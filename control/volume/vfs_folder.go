package volume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

// maxMetadataSize is the largest metadata.json that Metadata reads, as
// upstream: 10 MiB.
const maxMetadataSize = 10 << 20

func (v *vfs) CreateFolder(ctx context.Context, id vfid.VFolderID) error {
	if id.QuotaScope == nil {
		return newError(ErrInvalidArgument, "vfid", fmt.Sprintf("vfid %s has no quota scope; new vfolders need the form <qsid>/<folder-uuid>", id), nil)
	}
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	qs, err := v.openQuotaScope(id)
	if err != nil {
		return err
	}
	defer closeDir(qs)

	rel := folderInQuotaScope(id)
	if err := qs.Root().MkdirAll(path.Dir(rel), 0o755); err != nil {
		return fmt.Errorf("create parents of vfolder %s: %w", id, err)
	}
	err = qs.Root().Mkdir(rel, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return newError(ErrVFolderExists, "vfid", fmt.Sprintf("vfolder %s already exists", id), err)
	}
	if err != nil {
		return fmt.Errorf("create vfolder %s: %w", id, err)
	}
	return nil
}

// DeleteFolder renames the vfolder directory to
// <quota scope>/.trash/<folder-hex>.<random>, which is atomic and leaves
// user-visible names alone, and hands the entry to the background deleter.
func (v *vfs) DeleteFolder(ctx context.Context, id vfid.VFolderID) error {
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	qs, err := v.openQuotaScope(id)
	if errors.Is(err, ErrQuotaScopeNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closeDir(qs)

	trash, err := openOwnDir(qs, vfid.TrashDirName)
	if err != nil {
		return fmt.Errorf("open trash directory of %s: %w", id, err)
	}
	defer closeDir(trash)

	rel := folderInQuotaScope(id)
	name := id.Folder.Hex() + "." + randomHex(8)
	err = unix.Renameat2(qs.Fd(), rel, trash.Fd(), name, unix.RENAME_NOREPLACE)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return nil
	}
	if err != nil {
		return fmt.Errorf("move vfolder %s to the trash: %w", id, err)
	}

	// Remove the two hash-prefix directories if they became empty, as
	// upstream does. The loop stops at the first one that another vfolder
	// still uses.
	for _, dir := range []string{path.Dir(rel), path.Dir(path.Dir(rel))} {
		if err := unix.Unlinkat(qs.Fd(), dir, unix.AT_REMOVEDIR); err != nil {
			break
		}
	}
	v.trash.enqueue(quotaScopeRel(id), name)
	return nil
}

// openOwnDir opens (creating it with mode 0700 if missing) one of the
// proxy's own directories in a quota scope directory.
func openOwnDir(qs *beneath.Dir, name string) (*beneath.Dir, error) {
	if err := qs.Root().Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return qs.OpenDir(name, true)
}

func (v *vfs) MountPath(_ context.Context, id vfid.VFolderID, subpath string) (string, error) {
	root, err := v.openFolder(id)
	if err != nil {
		return "", err
	}
	defer closeDir(root)

	clean, err := beneath.Clean(subpath)
	if err != nil {
		return "", invalidPath("subpath", subpath, err)
	}
	if err := checkInside(root, clean); err != nil {
		return "", pathError("subpath", clean, err)
	}
	return id.Path(v.cfg.Path), nil
}

func (v *vfs) CheckPath(_ context.Context, id vfid.VFolderID, relpath string) (string, error) {
	root, err := v.openFolder(id)
	if err != nil {
		return "", err
	}
	defer closeDir(root)

	clean, err := beneath.Clean(relpath)
	if err != nil {
		return "", invalidPath("relpath", relpath, err)
	}
	if err := checkInside(root, clean); err != nil {
		return "", pathError("relpath", clean, err)
	}
	return clean, nil
}

// checkInside resolves the longest existing prefix of the clean relative
// path rel beneath root, following symlinks inside the vfolder, and returns
// beneath.ErrEscape if that prefix leads out of it. Components that do not
// exist yet are allowed, as are paths below a regular file (they cannot
// exist, but they cannot escape either).
func checkInside(root *beneath.Dir, rel string) error {
	for p := rel; ; p = path.Dir(p) {
		f, err := root.OpenFile(p, unix.O_PATH, 0)
		if err == nil {
			return f.Close()
		}
		if errno := errnoOf(err); errno != unix.ENOENT && errno != unix.ENOTDIR || p == "." {
			return err
		}
	}
}

func (v *vfs) Usage(ctx context.Context, id vfid.VFolderID, relpath string) (TreeUsage, error) {
	root, err := v.openFolder(id)
	if err != nil {
		return TreeUsage{}, err
	}
	defer closeDir(root)

	clean, err := beneath.Clean(relpath)
	if err != nil {
		return TreeUsage{}, invalidPath("relpath", relpath, err)
	}
	dir := root
	if clean != "." {
		if dir, err = root.OpenDir(clean, false); err != nil {
			return TreeUsage{}, pathError("relpath", clean, err)
		}
		defer closeDir(dir)
	}

	totals, err := measureTree(ctx, v.opts.TreeIO, dir.Fd(), time.Now().Add(v.opts.UsageTimeout))
	if errors.Is(err, errScanTimedOut) {
		v.log.Warn("usage scan timed out", "vfid", id.String(), "relpath", clean, "timeout", v.opts.UsageTimeout, "entries", totals.Entries)
		return TreeUsage{FileCount: -1, UsedBytes: -1}, nil
	}
	if err != nil {
		return TreeUsage{}, fmt.Errorf("scan usage of %s/%s: %w", id, clean, err)
	}
	return TreeUsage{FileCount: totals.Entries, UsedBytes: totals.ApparentBytes}, nil
}

func (v *vfs) UsedBytes(ctx context.Context, id vfid.VFolderID) (int64, error) {
	root, err := v.openFolder(id)
	if err != nil {
		return 0, err
	}
	defer closeDir(root)

	totals, err := measureTree(ctx, v.opts.TreeIO, root.Fd(), time.Time{})
	if err != nil {
		return 0, fmt.Errorf("measure used bytes of %s: %w", id, err)
	}
	return totals.AllocatedBytes, nil
}

func (v *vfs) Metadata(_ context.Context, id vfid.VFolderID) ([]byte, error) {
	root, err := v.openFolder(id)
	if err != nil {
		return nil, err
	}
	defer closeDir(root)

	f, err := root.OpenFile("metadata.json", unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, pathError("", "metadata.json", err)
	}
	defer f.Close()

	data, err := io.ReadAll(io.LimitReader(f, maxMetadataSize+1))
	if err != nil {
		return nil, pathError("", "metadata.json", err)
	}
	if len(data) > maxMetadataSize {
		return nil, newError(ErrInvalidArgument, "", fmt.Sprintf("metadata.json of vfolder %s is larger than %d bytes", id, maxMetadataSize), nil)
	}
	return data, nil
}

func (v *vfs) PutMetadata(ctx context.Context, id vfid.VFolderID, data []byte) error {
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	root, err := v.openFolder(id)
	if err != nil {
		return err
	}
	defer closeDir(root)

	f, err := root.OpenFile("metadata.json", unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return pathError("", "metadata.json", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return pathError("", "metadata.json", err)
}
