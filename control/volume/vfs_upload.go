package volume

import (
	"context"
	"fmt"
	"path"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

// Upload staging, shared with the data plane:
//
//	<quota scope>/.upload/<session>        partial file, created empty here
//	<quota scope>/.upload/<session>.done   marker of a finished session
//
// The data plane appends to the partial file, renames it onto the target
// inside the vfolder when it is complete, and then creates the marker. A
// 0-byte session is finished here at once.

// doneSuffix ends the name of a finished session's marker file.
const doneSuffix = ".done"

// uploadReservations are the bytes still expected by the upload sessions
// that this process created, so that the free-space check of a new session
// counts them. Sessions created by other processes, or before a restart,
// are not counted.
type uploadReservations struct {
	// mu guards the fields below and serialises the free-space check with
	// the creation of the partial file, so two sessions cannot both claim
	// the same free space.
	mu       sync.Mutex
	sessions map[string]reservation
	// pending is the bytes the sessions still expected at scannedAt, plus
	// the sizes of the sessions recorded since. Between scans it can only
	// overestimate, because arriving bytes are not subtracted.
	pending   int64
	scannedAt time.Time
	// scans counts full scans, for tests.
	scans int
}

// rescanInterval bounds how often the free-space check stats every open
// session's partial file. Without it each new session costs a stat of every
// other open session: an upload of 10,000 files slowed from 2 ms to 20 ms per
// session.
const rescanInterval = 2 * time.Second

type reservation struct {
	// partial is the partial file relative to the mount.
	partial string
	size    int64
	expires time.Time
}

// pendingLocked returns the bytes still to arrive for the recorded
// sessions, from a scan at most rescanInterval old plus the sessions
// recorded since. The caller holds r.mu.
func (r *uploadReservations) pendingLocked(mount *beneath.Dir, now time.Time) int64 {
	if !r.scannedAt.IsZero() && now.Sub(r.scannedAt) < rescanInterval && !now.Before(r.scannedAt) {
		return r.pending
	}
	return r.rescanLocked(mount, now)
}

// rescanLocked stats every recorded session's partial file and returns the
// bytes they still expect, dropping sessions whose partial file is gone
// (finished or swept) or whose token expired. The caller holds r.mu.
func (r *uploadReservations) rescanLocked(mount *beneath.Dir, now time.Time) int64 {
	r.scans++
	var pending int64
	for id, res := range r.sessions {
		var st unix.Stat_t
		err := unix.Fstatat(mount.Fd(), res.partial, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil || now.After(res.expires) {
			delete(r.sessions, id)
			continue
		}
		if left := res.size - st.Size; left > 0 {
			pending += left
		}
	}
	r.pending, r.scannedAt = pending, now
	return pending
}

func (v *vfs) CreateUpload(ctx context.Context, req UploadRequest) (UploadSession, error) {
	if req.Size < 0 {
		return UploadSession{}, newError(ErrInvalidArgument, "size", fmt.Sprintf("invalid upload size %d: it must not be negative", req.Size), nil)
	}
	clean, err := beneath.Clean(req.Relpath)
	if err != nil {
		return UploadSession{}, invalidPath("relpath", req.Relpath, err)
	}
	if clean == "." {
		return UploadSession{}, newError(ErrInvalidArgument, "relpath", "the upload target must be a file path inside the vfolder, not its root", nil)
	}
	if err := v.requireHealthy(ctx); err != nil {
		return UploadSession{}, err
	}

	root, err := v.openFolder(req.VFID)
	if err != nil {
		return UploadSession{}, err
	}
	defer closeDir(root)
	if err := checkUploadTarget(root, clean); err != nil {
		return UploadSession{}, err
	}
	qs, err := v.openQuotaScope(req.VFID)
	if err != nil {
		return UploadSession{}, err
	}
	defer closeDir(qs)
	staging, err := openStaging(qs)
	if err != nil {
		return UploadSession{}, fmt.Errorf("open upload staging directory of %s: %w", req.VFID, err)
	}
	defer closeDir(staging)

	session := UploadSession{ID: randomHex(16), Relpath: clean}
	if req.Size == 0 {
		return session, finishEmptyUpload(root, staging, session)
	}
	if err := v.createPartial(req, staging, session.ID); err != nil {
		return UploadSession{}, err
	}
	return session, nil
}

// checkUploadTarget rejects a target whose parent escapes the vfolder or
// runs through a regular file, and a target that is an existing directory
// (a finished upload never replaces a directory). Missing parents are fine:
// the data plane creates them inside the vfolder.
func checkUploadTarget(root *beneath.Dir, clean string) error {
	parentRel := path.Dir(clean)
	if err := checkInside(root, parentRel); err != nil {
		return pathError("relpath", clean, err)
	}
	parent, err := root.OpenDir(parentRel, false)
	if errnoOf(err) == unix.ENOENT {
		return nil
	}
	if err != nil {
		return pathError("relpath", clean, err)
	}
	defer closeDir(parent)

	var st unix.Stat_t
	err = unix.Fstatat(parent.Fd(), path.Base(clean), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return pathError("relpath", clean, unix.EISDIR)
	}
	if err != nil && err != unix.ENOENT {
		return pathError("relpath", clean, err)
	}
	return nil
}

// openStaging opens the quota scope's staging directory, creating it with
// mode 0755 if missing.
func openStaging(qs *beneath.Dir) (*beneath.Dir, error) {
	if err := unix.Mkdirat(qs.Fd(), vfid.StagingDirName, 0o755); err != nil && err != unix.EEXIST {
		return nil, err
	}
	return qs.OpenDir(vfid.StagingDirName, true)
}

// createPartial checks that the session's size fits into the free space
// left after the other open sessions, then creates the empty partial file
// and records the session.
func (v *vfs) createPartial(req UploadRequest, staging *beneath.Dir, id string) error {
	v.uploads.mu.Lock()
	defer v.uploads.mu.Unlock()

	available, err := availableBytes(v.mount.Fd())
	if err != nil {
		return fmt.Errorf("statfs %s: %w", v.cfg.Path, err)
	}
	now := time.Now()
	pending := v.uploads.pendingLocked(v.mount, now)
	if req.Size > available-pending {
		// The cached figure may still count sessions that have ended since
		// the last scan; look again before refusing.
		pending = v.uploads.rescanLocked(v.mount, now)
	}
	if req.Size > available-pending {
		msg := fmt.Sprintf("not enough space on volume %s for an upload of %d bytes: %d bytes are available and open upload sessions still expect %d", v.cfg.Name, req.Size, available, pending)
		return newError(ErrInsufficientStorage, "size", msg, nil)
	}

	if err := createEmptyFile(staging.Fd(), id); err != nil {
		return fmt.Errorf("create partial file of upload session %s: %w", id, err)
	}
	if v.uploads.sessions == nil {
		v.uploads.sessions = map[string]reservation{}
	}
	partial := path.Join(quotaScopeRel(req.VFID), vfid.StagingDirName, id)
	v.uploads.sessions[id] = reservation{partial: partial, size: req.Size, expires: req.Expires}
	v.uploads.pending += req.Size
	return nil
}

// finishEmptyUpload finishes a 0-byte session at once: it creates the empty
// file in staging, renames it onto the target (creating missing parents
// inside the vfolder), and writes the session's marker.
func finishEmptyUpload(root, staging *beneath.Dir, session UploadSession) error {
	if err := createEmptyFile(staging.Fd(), session.ID); err != nil {
		return fmt.Errorf("create partial file of upload session %s: %w", session.ID, err)
	}
	if err := placeEmptyUpload(root, staging, session); err != nil {
		unix.Unlinkat(staging.Fd(), session.ID, 0)
		return err
	}
	if err := createEmptyFile(staging.Fd(), session.ID+doneSuffix); err != nil {
		return fmt.Errorf("create marker of upload session %s: %w", session.ID, err)
	}
	return nil
}

func placeEmptyUpload(root, staging *beneath.Dir, session UploadSession) error {
	parentRel := path.Dir(session.Relpath)
	if parentRel != "." {
		if err := root.Root().MkdirAll(parentRel, 0o755); err != nil {
			return pathError("relpath", session.Relpath, beneath.TranslateError(parentRel, err))
		}
	}
	parent, err := root.OpenDir(parentRel, false)
	if err != nil {
		return pathError("relpath", session.Relpath, err)
	}
	defer closeDir(parent)
	// rename(2) of a file onto a directory fails with EISDIR, so a
	// directory created since checkUploadTarget is not replaced either.
	err = unix.Renameat2(staging.Fd(), session.ID, parent.Fd(), path.Base(session.Relpath), 0)
	return pathError("relpath", session.Relpath, err)
}

func createEmptyFile(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// availableBytes returns the space of the file system of fd that
// unprivileged users may still fill.
func availableBytes(fd int) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return 0, err
	}
	frsize := st.Frsize
	if frsize == 0 {
		frsize = st.Bsize
	}
	return int64(st.Bavail) * frsize, nil
}
