package dataplane

import (
	"context"
	"errors"
	"time"
)

// SessionLocks keep the requests of each upload session apart across
// proxies that share a volume, and record each session's durable offset.
// They serve where flock(2) on the partial file cannot: a file system that
// does not pass locks between nodes, or a size read from a stale client
// cache. With Options.SessionLocks set, a HEAD or PATCH holds the session's
// lock from SessionLocks instead of a flock.
//
// The offset rule: a holder flushes the partial file, then records the new
// offset while it still holds the lock, and only then reports it. The next
// holder takes the smaller of the recorded offset (0 without a record) and
// the file's size, and cuts the file back to it. So bytes that no response
// acknowledged are never counted, and a size read from a stale cache never
// outweighs the record.
type SessionLocks interface {
	// TryLock takes the session's lock without waiting. It returns an
	// error wrapping ErrSessionLocked when another request holds it.
	TryLock(ctx context.Context, session string) (SessionLock, error)
}

// SessionLock is one held session lock.
type SessionLock interface {
	// Recorded returns the durable offset recorded for the session, and
	// false when none is.
	Recorded() (offset int64, ok bool)
	// Record stores the durable offset, failing if the lock was lost. The
	// record may be dropped some time after expires.
	Record(ctx context.Context, offset int64, expires time.Time) error
	// Forget removes the record of a finished session.
	Forget(ctx context.Context) error
	// Lost is closed when the lock ends without Unlock; the holder must
	// stop writing.
	Lost() <-chan struct{}
	// Unlock frees the lock.
	Unlock(ctx context.Context) error
}

// ErrSessionLocked is wrapped by SessionLocks.TryLock errors when another
// request holds the session.
var ErrSessionLocked = errors.New("upload session is locked by another request")

// sessionLockTimeout bounds each call to SessionLocks.
const sessionLockTimeout = 3 * time.Second

// checkpointBytes is how much of a long PATCH is received between two
// flushes and offset records when SessionLocks is set. A holder that dies
// loses at most this much to the next holder, which resumes from the
// last record.
const checkpointBytes = 64 << 20

func sessionLockContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), sessionLockTimeout)
}
