package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

// CloneFolder copies the tree of src into <dst quota scope>/.clone/<random>
// and renames the finished copy onto the dst vfolder path, so dst appears
// complete or not at all. The temporary directory is locked with flock(2)
// while the copy runs, so that the start-up cleanup of leftover clones
// (trashDeleter.start) skips it. On failure the partial copy goes to the
// trash.
func (v *vfs) CloneFolder(ctx context.Context, src, dst vfid.VFolderID) error {
	if dst.QuotaScope == nil {
		return newError(ErrInvalidArgument, "dst_vfid", fmt.Sprintf("vfid %s has no quota scope; new vfolders need the form <qsid>/<folder-uuid>", dst), nil)
	}
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	srcRoot, err := v.openFolder(src)
	if err != nil {
		return err
	}
	defer closeDir(srcRoot)
	dstQS, err := v.openQuotaScope(dst)
	if err != nil {
		return err
	}
	defer closeDir(dstQS)

	dstRel := folderInQuotaScope(dst)
	if _, err := dstQS.Root().Lstat(dstRel); err == nil {
		return newError(ErrVFolderExists, "dst_vfid", fmt.Sprintf("vfolder %s already exists", dst), nil)
	}
	if err := v.checkCloneSpace(ctx, src, srcRoot); err != nil {
		return err
	}

	cloneDir, err := openOwnDir(dstQS, vfid.CloneDirName)
	if err != nil {
		return fmt.Errorf("open clone directory for %s: %w", dst, err)
	}
	defer closeDir(cloneDir)
	tmpName := randomHex(16)
	if err := unix.Mkdirat(cloneDir.Fd(), tmpName, 0o700); err != nil {
		return fmt.Errorf("create temporary clone directory: %w", err)
	}

	err = v.copyAndPlace(ctx, srcRoot, cloneDir, tmpName, dstQS, dstRel)
	if err == nil {
		return nil
	}
	v.discardClone(dst, cloneDir, tmpName)
	if errno := errnoOf(err); errno == unix.EEXIST || errno == unix.ENOTEMPTY {
		return newError(ErrVFolderExists, "dst_vfid", fmt.Sprintf("vfolder %s already exists", dst), err)
	}
	if errno := errnoOf(err); errno == unix.ENOSPC || errno == unix.EDQUOT {
		return newError(ErrInsufficientStorage, "", fmt.Sprintf("not enough space on volume %s to clone vfolder %s", v.cfg.Name, src), err)
	}
	return fmt.Errorf("clone vfolder %s to %s: %w", src, dst, err)
}

// checkCloneSpace measures the source tree and fails with
// ErrInsufficientStorage when its allocated size exceeds the space
// available to unprivileged users.
func (v *vfs) checkCloneSpace(ctx context.Context, src vfid.VFolderID, srcRoot *beneath.Dir) error {
	totals, err := measureTree(ctx, v.opts.TreeIO, srcRoot.Fd(), time.Time{})
	if err != nil {
		return fmt.Errorf("measure vfolder %s before cloning: %w", src, err)
	}
	available, err := availableBytes(v.mount.Fd())
	if err != nil {
		return fmt.Errorf("statfs %s: %w", v.cfg.Path, err)
	}
	if totals.AllocatedBytes > available {
		msg := fmt.Sprintf("not enough space on volume %s to clone vfolder %s: it needs %d bytes, %d are available", v.cfg.Name, src, totals.AllocatedBytes, available)
		return newError(ErrInsufficientStorage, "", msg, nil)
	}
	return nil
}

// copyAndPlace fills the temporary directory tmpName of cloneDir with a copy
// of srcRoot, gives it the source root's mode and times, and renames it to
// dstRel in dstQS without replacing anything there.
func (v *vfs) copyAndPlace(ctx context.Context, srcRoot, cloneDir *beneath.Dir, tmpName string, dstQS *beneath.Dir, dstRel string) error {
	tmp, err := openDirNoFollow(cloneDir.Fd(), tmpName)
	if err != nil {
		return err
	}
	defer unix.Close(tmp) // releases the flock
	if err := unix.Flock(tmp, unix.LOCK_EX); err != nil {
		return err
	}

	stats, err := copyContents(ctx, v.opts.TreeIO, srcRoot.Fd(), tmp)
	if err != nil {
		return err
	}
	if stats.Skipped > 0 {
		v.log.Info("clone skipped sockets and device files", "skipped", stats.Skipped, "destination", dstRel)
	}
	var root unix.Statx_t
	if err := unix.Statx(srcRoot.Fd(), "", unix.AT_EMPTY_PATH, copyMask, &root); err != nil {
		return err
	}
	if err := applyMetadata(cloneDir.Fd(), tmpName, &root); err != nil {
		return err
	}

	if err := dstQS.Root().MkdirAll(path.Dir(dstRel), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return unix.Renameat2(cloneDir.Fd(), tmpName, dstQS.Fd(), dstRel, unix.RENAME_NOREPLACE)
}

// discardClone moves a failed clone's temporary directory to the trash, or
// removes it at once if that fails.
func (v *vfs) discardClone(dst vfid.VFolderID, cloneDir *beneath.Dir, tmpName string) {
	trashName, err := v.moveToTrash(cloneDir, tmpName, dst)
	if err == nil {
		v.trash.enqueue(quotaScopeRel(dst), trashName)
		return
	}
	v.log.Warn("cannot move a failed clone to the trash; removing it now", "vfid", dst.String(), "error", err)
	if err := removeTree(context.Background(), v.opts.TreeIO, cloneDir.Fd(), tmpName); err != nil {
		v.log.Error("cannot remove a failed clone", "vfid", dst.String(), "entry", tmpName, "error", err)
	}
}

// moveToTrash renames name of dir (a directory in the quota scope of id or
// below it) into that quota scope's trash and returns its trash name.
func (v *vfs) moveToTrash(dir *beneath.Dir, name string, id vfid.VFolderID) (string, error) {
	qs, err := v.openQuotaScope(id)
	if err != nil {
		return "", err
	}
	defer closeDir(qs)
	trash, err := openOwnDir(qs, vfid.TrashDirName)
	if err != nil {
		return "", err
	}
	defer closeDir(trash)

	trashName := id.Folder.Hex() + "." + randomHex(8)
	if err := unix.Renameat2(dir.Fd(), name, trash.Fd(), trashName, unix.RENAME_NOREPLACE); err != nil {
		return "", err
	}
	return trashName, nil
}
