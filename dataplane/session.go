package dataplane

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/token"
)

// On-disk names of an upload session in its quota scope's staging
// directory, next to the partial file named by the session id.
const (
	// doneSuffix marks a finished session: the partial file was renamed
	// onto its target. HEAD and PATCH then respond with offset = length.
	doneSuffix = ".done"
	// stealSuffix names the file that a request waiting for the session's
	// lock creates. A holder whose client has sent nothing for
	// readPollInterval checks for it, flushes, and unlocks.
	stealSuffix = ".steal"
)

// Lock hand-over timing. A PATCH polls its client every readPollInterval
// while the body stalls. A request that finds the session locked waits up
// to stealWait for a stalled holder to let go before responding 423.
const (
	readPollInterval  = 500 * time.Millisecond
	stealWait         = 1500 * time.Millisecond
	lockRetryInterval = 20 * time.Millisecond
)

// session is an upload session opened for one HEAD or PATCH. The partial
// file is locked with flock(2), which excludes other requests in this and
// every other worker process, or with Options.SessionLocks.
type session struct {
	server  *Server
	claims  token.Upload
	target  string // path of the final file, relative to the vfolder
	mount   *beneath.Dir
	staging *beneath.Dir

	// file is the partial file; nil when the session has already finished.
	file   *os.File
	fd     int
	locked bool
	// shared is the lock from Options.SessionLocks, nil under flock.
	shared SessionLock
}

// finished reports whether the partial file is gone and the done marker
// exists.
func (ss *session) finished() bool { return ss.file == nil }

// close unlocks and closes everything the session holds.
func (ss *session) close() {
	ss.unlock()
	if ss.file != nil {
		_ = ss.file.Close()
	}
	if ss.staging != nil {
		_ = ss.staging.Close()
	}
	if ss.mount != nil {
		_ = ss.mount.Close()
	}
}

// openSession verifies the upload token and the target path and opens the
// session's partial file, unlocked. A session whose partial file is gone but
// whose done marker exists comes back finished; one with neither is 404.
func (s *Server) openSession(ctx *fasthttp.RequestCtx) (*session, *apiError) {
	args := ctx.QueryArgs()
	if len(args.Peek("token")) == 0 {
		return nil, invalidParams("token", "is required")
	}
	claims, err := token.VerifyUpload(s.opts.TokenSecret, string(args.Peek("token")), time.Now())
	if err != nil {
		return nil, tokenError(err)
	}
	// tus Expiration extension: once the token expires the session cannot
	// be resumed.
	ctx.Response.Header.Set("Upload-Expires", string(fasthttp.AppendHTTPDate(nil, claims.Expires)))
	target, apiErr := uploadTarget(args, claims.Relpath)
	if apiErr != nil {
		return nil, apiErr
	}
	mountPath, ok := s.opts.Volumes[claims.Volume]
	if !ok {
		return nil, invalidVolume(claims.Volume)
	}

	ss := &session{server: s, claims: claims, target: target}
	if ss.mount, err = openMount(mountPath); err != nil {
		return nil, unavailable("the volume is not accessible", err)
	}
	ss.staging, err = openStaging(ss.mount, claims.VFID)
	if err != nil {
		ss.close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, noSuchSession()
		}
		return nil, unavailable("cannot open the upload staging directory", err)
	}
	ss.file, err = ss.staging.OpenFile(claims.Session, unix.O_RDWR|unix.O_NOFOLLOW, 0)
	switch {
	case err == nil:
		ss.fd = int(ss.file.Fd())
		return ss, nil
	case errors.Is(err, fs.ErrNotExist):
		done, apiErr := ss.markerExists()
		if apiErr != nil || !done {
			ss.close()
			if apiErr == nil {
				apiErr = noSuchSession()
			}
			return nil, apiErr
		}
		return ss, nil
	default:
		ss.close()
		return nil, unavailable("cannot open the partial upload file", err)
	}
}

// uploadTarget joins dst_dir and the token's relpath into the final path
// relative to the vfolder. Absolute paths, ".." that climbs out and the
// vfolder root itself are rejected here, before any byte is written.
func uploadTarget(args *fasthttp.Args, relpath string) (string, *apiError) {
	dstDir := ""
	field := "token"
	if args.Has("dst_dir") {
		dstDir = string(args.Peek("dst_dir"))
		field = "dst_dir"
		if dstDir == "" {
			return "", invalidParams("dst_dir", "value is not a non-empty string")
		}
	}
	target, err := joinClientPath(dstDir, relpath)
	if err != nil {
		return "", invalidParams(field, "the upload target must be a relative path inside the vfolder: "+err.Error())
	}
	if target == "." {
		return "", invalidParams(field, "the upload target is the vfolder root itself")
	}
	return target, nil
}

func (ss *session) markerExists() (bool, *apiError) {
	_, err := ss.staging.Root().Lstat(ss.claims.Session + doneSuffix)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, unavailable("cannot check the upload's done marker", err)
	}
}

// lock takes the session's lock. If another request holds it, lock creates
// the steal file to make that holder stop, and retries for up to
// stealWait. It returns false if the lock stayed taken. After locking it
// checks that the partial file is still in place; if a concurrent request
// finished the session meanwhile, the session becomes finished.
func (ss *session) lock() (bool, *apiError) {
	ok, err := ss.tryLock()
	if err != nil {
		return false, unavailable("cannot lock the upload session", err)
	}
	if !ok {
		ok, err = ss.stealLock()
		if err != nil {
			return false, unavailable("cannot lock the upload session", err)
		}
		if !ok {
			return false, nil
		}
	}
	ss.locked = true
	return true, ss.checkStillPartial()
}

// unlock frees the session's lock if it is held.
func (ss *session) unlock() {
	if !ss.locked {
		return
	}
	ss.locked = false
	if ss.shared != nil {
		select {
		case <-ss.shared.Lost():
			// The lease ended, and the lock key with it; etcd is
			// probably unreachable too.
			ss.shared = nil
			return
		default:
		}
		ctx, cancel := sessionLockContext()
		defer cancel()
		if err := ss.shared.Unlock(ctx); err != nil {
			ss.server.log.Warn("cannot unlock an upload session; it stays locked until its lease ends",
				"session", ss.claims.Session, "error", err)
		}
		ss.shared = nil
		return
	}
	_ = unix.Flock(ss.fd, unix.LOCK_UN)
}

func (ss *session) tryLock() (bool, error) {
	if locks := ss.server.opts.SessionLocks; locks != nil {
		ctx, cancel := sessionLockContext()
		defer cancel()
		lock, err := locks.TryLock(ctx, ss.claims.Session)
		switch {
		case err == nil:
			ss.shared = lock
			return true, nil
		case errors.Is(err, ErrSessionLocked):
			return false, nil
		default:
			return false, err
		}
	}
	for {
		err := unix.Flock(ss.fd, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return true, nil
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return false, nil
		default:
			return false, err
		}
	}
}

func (ss *session) stealLock() (bool, error) {
	stealName := ss.claims.Session + stealSuffix
	f, err := ss.staging.OpenFile(stealName, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return false, err
	}
	_ = f.Close()
	defer func() { _ = ss.staging.Root().Remove(stealName) }()

	timer := time.NewTimer(stealWait)
	defer timer.Stop()
	ticker := time.NewTicker(lockRetryInterval)
	defer ticker.Stop()
	for {
		select {
		case <-timer.C:
			return false, nil
		case <-ticker.C:
			if ok, err := ss.tryLock(); ok || err != nil {
				return ok, err
			}
		}
	}
}

// stealRequested reports whether another request has asked the holder to
// stop.
func (ss *session) stealRequested() bool {
	_, err := ss.staging.Root().Lstat(ss.claims.Session + stealSuffix)
	return err == nil
}

// checkStillPartial makes the session finished if its partial file was
// renamed away between open and lock.
func (ss *session) checkStillPartial() *apiError {
	var own, named unix.Stat_t
	if err := unix.Fstat(ss.fd, &own); err != nil {
		return unavailable("cannot stat the partial upload file", err)
	}
	err := unix.Fstatat(ss.staging.Fd(), ss.claims.Session, &named, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && named.Dev == own.Dev && named.Ino == own.Ino {
		return nil
	}
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return unavailable("cannot stat the partial upload file", err)
	}
	ss.unlock()
	_ = ss.file.Close()
	ss.file = nil
	done, apiErr := ss.markerExists()
	if apiErr != nil {
		return apiErr
	}
	if !done {
		return noSuchSession()
	}
	return nil
}

// durableOffset flushes the partial file and returns its size, which is
// then all on stable storage. The size is read before the flush, so bytes a
// concurrent writer appends meanwhile are never counted. Under a shared
// session lock the smaller of the size and the recorded offset counts,
// and the file is cut back to it (see SessionLocks). No record means that
// no response acknowledged any byte yet, so it counts as 0.
func (ss *session) durableOffset() (int64, *apiError) {
	var st unix.Stat_t
	if err := unix.Fstat(ss.fd, &st); err != nil {
		return 0, unavailable("cannot stat the partial upload file", err)
	}
	size := st.Size
	if ss.shared != nil {
		recorded, _ := ss.shared.Recorded()
		if recorded != size {
			if recorded < size {
				ss.server.log.Info("dropping upload bytes that no response acknowledged",
					"session", ss.claims.Session, "recorded_offset", recorded, "file_size", size)
				if err := unix.Ftruncate(ss.fd, recorded); err != nil {
					return 0, unavailable("cannot cut the partial upload file back to its recorded offset", err)
				}
				size = recorded
			} else {
				ss.server.log.Warn("the partial upload file is shorter than its recorded offset; the client resends the rest",
					"session", ss.claims.Session, "recorded_offset", recorded, "file_size", size)
			}
		}
	}
	if err := ss.server.opts.FileIO.Fsync(ss.fd, true); err != nil {
		return 0, unavailable("cannot flush the partial upload file", err)
	}
	return size, nil
}

// recordOffset records a flushed offset under a shared session lock; it
// does nothing under flock.
func (ss *session) recordOffset(offset int64) error {
	if ss.shared == nil {
		return nil
	}
	ctx, cancel := sessionLockContext()
	defer cancel()
	return ss.shared.Record(ctx, offset, ss.claims.Expires)
}

// finalize moves the complete partial file onto its target inside the
// vfolder. Parent directories are created inside the vfolder only, a
// directory is never replaced, and the done marker is written before the
// rename, so a crash in between leaves a complete partial file that the
// next HEAD or PATCH finalizes again. The partial file is kept on error.
func (ss *session) finalize() *apiError {
	vfolder, err := openVFolder(ss.mount, ss.claims.VFID)
	if err != nil {
		if isNotFound(err) {
			return vfolderNotFound(err)
		}
		return unavailable("cannot open the vfolder", err)
	}
	defer vfolder.Close()

	parentRel, base := path.Dir(ss.target), path.Base(ss.target)
	parent, apiErr := openTargetParent(vfolder, parentRel, true)
	if apiErr != nil {
		return apiErr
	}
	defer parent.Close()
	if apiErr := checkTargetNotDir(parent, base); apiErr != nil {
		return apiErr
	}

	marker, err := ss.staging.OpenFile(ss.claims.Session+doneSuffix, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fileSystemError("cannot write the upload's done marker", err)
	}
	_ = marker.Close()

	err = unix.Renameat2(ss.staging.Fd(), ss.claims.Session, parent.Fd(), base, 0)
	switch {
	case err == nil:
	case errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST):
		return targetIsDirectory(ss.target)
	default:
		return fileSystemError("cannot move the upload into place", err)
	}

	if m := ss.server.opts.Metrics; m != nil {
		m.UploadsCompleted.Inc()
	}
	if ss.shared != nil {
		// From now on the done marker records that the session finished.
		ctx, cancel := sessionLockContext()
		if err := ss.shared.Forget(ctx); err != nil {
			ss.server.log.Warn("cannot remove the offset record of a finished upload; it expires with its lease",
				"session", ss.claims.Session, "error", err)
		}
		cancel()
	}

	// Make the rename and the marker durable.
	if err := ss.server.opts.FileIO.Fsync(parent.Fd(), false); err != nil {
		ss.server.log.Warn("cannot flush the upload target's directory", "session", ss.claims.Session, "error", err)
	}
	if err := ss.server.opts.FileIO.Fsync(ss.staging.Fd(), false); err != nil {
		ss.server.log.Warn("cannot flush the upload staging directory", "session", ss.claims.Session, "error", err)
	}
	return nil
}

// openTargetParent opens the target's parent directory beneath the vfolder,
// creating missing directories through the vfolder's os.Root when create is
// set. Without create, a missing parent is fine (nil Dir, nil error),
// provided that no existing ancestor escapes the vfolder or is a file.
func openTargetParent(vfolder *beneath.Dir, parentRel string, create bool) (*beneath.Dir, *apiError) {
	if create && parentRel != "." {
		if err := vfolder.Root().MkdirAll(parentRel, 0o755); err != nil {
			err = beneath.TranslateError(parentRel, err)
			return nil, targetPathError(parentRel, err)
		}
	}
	for dir := parentRel; ; dir = path.Dir(dir) {
		d, err := vfolder.OpenDir(dir, false)
		if err == nil {
			if dir != parentRel {
				// Only an ancestor exists; the parent is created later.
				_ = d.Close()
				return nil, nil
			}
			return d, nil
		}
		if !create && errors.Is(err, fs.ErrNotExist) && dir != "." {
			continue
		}
		return nil, targetPathError(dir, err)
	}
}

// checkTargetNotDir rejects a target name that is an existing directory.
func checkTargetNotDir(parent *beneath.Dir, base string) *apiError {
	var st unix.Stat_t
	err := unix.Fstatat(parent.Fd(), base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return targetIsDirectory(base)
	}
	return nil
}

func targetPathError(rel string, err error) *apiError {
	switch {
	case errors.Is(err, beneath.ErrEscape), errors.Is(err, unix.ELOOP), errors.Is(err, beneath.ErrInvalid):
		e := invalidParams("dst_dir", "the upload target must be inside the vfolder")
		e.cause = err
		return e
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, fs.ErrExist):
		return &apiError{
			status: fasthttp.StatusConflict,
			typ:    typeTargetConflict,
			title:  "Upload target conflicts with an existing file",
			msg:    "a path component of the upload target is not a directory: " + rel,
			cause:  err,
		}
	case errors.Is(err, fs.ErrNotExist):
		return vfolderNotFound(err)
	}
	return fileSystemError("cannot create the upload target's directory", err)
}

func targetIsDirectory(rel string) *apiError {
	return &apiError{
		status: fasthttp.StatusConflict,
		typ:    typeTargetConflict,
		title:  "Upload target conflicts with an existing file",
		msg:    "the upload target is a directory: " + rel,
	}
}

// fileSystemError is 507 for a full file system or quota, else 503.
func fileSystemError(msg string, err error) *apiError {
	if isNoSpace(err) {
		return &apiError{
			status: fasthttp.StatusInsufficientStorage,
			typ:    typeInsufficientDisk,
			title:  "Insufficient storage",
			msg:    msg + ": the file system or quota is full",
			cause:  err,
		}
	}
	return unavailable(msg, err)
}
