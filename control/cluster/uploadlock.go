package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Upload session locks in etcd, for proxies that share a volume. Each
// session has two keys under volumes/upload-sessions/<session>/:
//
//   - lock: present while one request of the session runs, on any node.
//     It is attached to the holding process's lease, so it disappears
//     within the lease TTL when that process dies. Its value names the
//     holder, for operators.
//   - offset: the durable offset of the partial file, in decimal, written
//     by the holder after each flush and only while it still holds the
//     lock. It is attached to a lease of its own that ends an hour after
//     the session's token expires.
const uploadSessionsKey = "volumes/upload-sessions/"

// ErrLocked is returned by TryLock when another request, on this node or
// another one, holds the session.
var ErrLocked = errors.New("upload session is locked by another request")

// ErrLockLost is returned by the methods of an UploadLock whose lease
// ended (etcd unreachable for longer than the TTL) or whose key was
// removed: another node may hold the session now.
var ErrLockLost = errors.New("upload session lock lost")

// UploadLocks takes upload session locks for one process. All its locks
// share one etcd lease, kept alive in the background and replaced on the
// next TryLock after it ends. Methods are safe for concurrent use.
type UploadLocks struct {
	c      *Client
	ttl    time.Duration
	holder string

	mu    sync.Mutex
	lease clientv3.LeaseID
	lost  chan struct{} // closed when lease ends
	stop  context.CancelFunc
	// heldSessions are the sessions locked by requests of this process.
	heldSessions map[string]bool
}

// UploadLocks returns the upload session locks of this process. holder is
// stored as the lock's value (node id and pid, say). ttl is how long a
// crashed holder keeps its sessions locked; it is rounded up to whole
// seconds, at least 2.
func (c *Client) UploadLocks(holder string, ttl time.Duration) *UploadLocks {
	return &UploadLocks{c: c, ttl: max(ttl, 2*time.Second), holder: holder, heldSessions: map[string]bool{}}
}

// currentLease returns a live lease, granting a new one if needed.
func (u *UploadLocks) currentLease(ctx context.Context) (clientv3.LeaseID, chan struct{}, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lost != nil {
		select {
		case <-u.lost:
			// The lease ended: release its keep-alive context and grant
			// a new one.
			u.stop()
			u.lost, u.stop = nil, nil
		default:
			return u.lease, u.lost, nil
		}
	}

	seconds := int64((u.ttl + time.Second - 1) / time.Second)
	grant, err := u.c.cli.Grant(ctx, seconds)
	if err != nil {
		return 0, nil, u.c.wrap("grant a lease for upload locks", "", err)
	}
	life, stop := context.WithCancel(context.Background())
	alive, err := u.c.cli.KeepAlive(life, grant.ID)
	if err != nil {
		stop()
		return 0, nil, u.c.wrap("keep the upload lock lease alive", "", err)
	}

	lost := make(chan struct{})
	go func() {
		for range alive {
		}
		// The channel closes when the lease expired or was revoked, or
		// when Close stopped it.
		close(lost)
	}()
	u.lease, u.lost, u.stop = grant.ID, lost, stop
	return grant.ID, lost, nil
}

// TryLock takes the lock of session without waiting. It returns ErrLocked
// when another request holds it, and an error wrapping ErrUnavailable when
// etcd cannot be reached.
func (u *UploadLocks) TryLock(ctx context.Context, session string) (*UploadLock, error) {
	u.mu.Lock()
	if u.heldSessions[session] {
		u.mu.Unlock()
		return nil, ErrLocked
	}
	u.heldSessions[session] = true
	u.mu.Unlock()
	release := func() {
		u.mu.Lock()
		delete(u.heldSessions, session)
		u.mu.Unlock()
	}

	lease, lost, err := u.currentLease(ctx)
	if err != nil {
		release()
		return nil, err
	}
	base := u.c.prefix + uploadSessionsKey + session + "/"
	l := &UploadLock{locks: u, session: session, lockKey: base + "lock", offsetKey: base + "offset", lost: lost, release: release}
	resp, err := u.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.lockKey), "=", 0)).
		Then(clientv3.OpPut(l.lockKey, u.holder, clientv3.WithLease(lease)), clientv3.OpGet(l.offsetKey)).
		Else(clientv3.OpGet(l.lockKey), clientv3.OpGet(l.offsetKey)).
		Commit()
	if err != nil {
		release()
		return nil, u.c.wrap("lock upload session", l.lockKey, err)
	}
	if resp.Succeeded {
		l.revision = resp.Header.Revision
	} else {
		// A key on this process's own lease is left from an Unlock that
		// could not reach etcd. No request of this process holds the
		// session (heldSessions records every one), so the key is taken
		// over.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) != 1 || clientv3.LeaseID(kvs[0].Lease) != lease {
			release()
			return nil, ErrLocked
		}
		l.revision = kvs[0].CreateRevision
	}
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 {
		offset, err := strconv.ParseInt(string(kvs[0].Value), 10, 64)
		if err != nil || offset < 0 {
			l.Unlock(ctx)
			return nil, fmt.Errorf("invalid upload offset %q in etcd key %s (delete the key to restart the upload from 0)", kvs[0].Value, l.offsetKey)
		}
		l.recorded, l.hasRecord, l.recordLease = offset, true, clientv3.LeaseID(kvs[0].Lease)
	}
	return l, nil
}

// Close ends the lease, which frees every lock still held, and stops
// keeping it alive.
func (u *UploadLocks) Close(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.stop == nil {
		return nil
	}
	u.stop()
	u.stop = nil
	_, err := u.c.cli.Revoke(ctx, u.lease)
	return err
}

// UploadLock is one held session lock, with the offset recorded when it
// was taken.
type UploadLock struct {
	locks     *UploadLocks
	session   string
	lockKey   string
	offsetKey string
	revision  int64 // create revision of lockKey: proves ownership
	lost      chan struct{}
	release   func()

	recorded    int64
	hasRecord   bool
	recordLease clientv3.LeaseID
}

// Recorded returns the durable offset recorded in etcd when the lock was
// taken or by Record since, and false when there is none.
func (l *UploadLock) Recorded() (int64, bool) { return l.recorded, l.hasRecord }

// Lost is closed when the lock's lease ends. The holder must then stop
// writing: another node may take the session after the TTL.
func (l *UploadLock) Lost() <-chan struct{} { return l.lost }

func (l *UploadLock) owner() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.lockKey), "=", l.revision)
}

// Record stores offset as the session's durable offset, if the lock is
// still held. The record lives until an hour after expires.
func (l *UploadLock) Record(ctx context.Context, offset int64, expires time.Time) error {
	cli := l.locks.c.cli
	value := strconv.FormatInt(offset, 10)
	var put clientv3.Op
	if l.hasRecord && l.recordLease != clientv3.NoLease {
		put = clientv3.OpPut(l.offsetKey, value, clientv3.WithIgnoreLease())
	} else {
		ttl := int64(time.Until(expires.Add(time.Hour)) / time.Second)
		grant, err := cli.Grant(ctx, max(ttl, 3600))
		if err != nil {
			return l.locks.c.wrap("grant a lease for an upload offset", l.offsetKey, err)
		}
		l.recordLease = grant.ID
		put = clientv3.OpPut(l.offsetKey, value, clientv3.WithLease(grant.ID))
	}
	resp, err := cli.Txn(ctx).If(l.owner()).Then(put).Commit()
	if err != nil {
		return l.locks.c.wrap("record the upload offset", l.offsetKey, err)
	}
	if !resp.Succeeded {
		return ErrLockLost
	}
	l.recorded, l.hasRecord = offset, true
	return nil
}

// Forget removes the offset record of a finished session, if the lock is
// still held.
func (l *UploadLock) Forget(ctx context.Context) error {
	resp, err := l.locks.c.cli.Txn(ctx).If(l.owner()).Then(clientv3.OpDelete(l.offsetKey)).Commit()
	if err != nil {
		return l.locks.c.wrap("remove the upload offset", l.offsetKey, err)
	}
	if !resp.Succeeded {
		return ErrLockLost
	}
	l.hasRecord = false
	return nil
}

// Unlock frees the lock. If etcd cannot be reached, the key stays until
// the lease ends; a later TryLock of this process for the same session
// takes it over.
func (l *UploadLock) Unlock(ctx context.Context) error {
	defer l.release()
	_, err := l.locks.c.cli.Txn(ctx).If(l.owner()).Then(clientv3.OpDelete(l.lockKey)).Commit()
	if err != nil {
		return l.locks.c.wrap("unlock upload session", l.lockKey, err)
	}
	return nil
}
