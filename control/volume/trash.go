package volume

import (
	"context"
	"errors"
	"path"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

// trashEntry is one entry of a quota scope's .trash directory.
type trashEntry struct {
	// scope is the quota scope directory relative to the mount ("." for
	// the legacy layout).
	scope string
	name  string
}

// trashDeleter frees the space of deleted vfolders and failed clones in the
// background. One goroutine per volume removes the queued entries one after
// another. Entries found at Open and leftovers of clones interrupted by a
// restart are handled once Start runs.
type trashDeleter struct {
	v *vfs

	// mu guards the fields below.
	mu    sync.Mutex
	queue []trashEntry
	// busy is set while the goroutine removes an entry it took off queue.
	busy bool
	// idle is closed whenever queue is empty and busy is false, and
	// replaced by an open channel when work arrives.
	idle chan struct{}
	// cloneScopes are the scopes whose .clone directory existed at Open.
	cloneScopes []string
	started     bool
	stopped     bool

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func newTrashDeleter(v *vfs) *trashDeleter {
	idle := make(chan struct{})
	close(idle)
	return &trashDeleter{v: v, idle: idle, wake: make(chan struct{}, 1)}
}

// scan queues the entries of every .trash directory of the volume and
// notes which scopes have a .clone directory. It only reads.
func (t *trashDeleter) scan() error {
	scopes, err := t.listScopes()
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, scope := range scopes {
		names, err := listOwnDir(t.v.mount, path.Join(scope, vfid.TrashDirName))
		if err != nil {
			t.v.log.Warn("cannot list trash directory", "scope", scope, "error", err)
		}
		for _, name := range names {
			t.queue = append(t.queue, trashEntry{scope: scope, name: name})
		}
		if _, err := t.v.mount.Root().Lstat(path.Join(scope, vfid.CloneDirName)); err == nil {
			t.cloneScopes = append(t.cloneScopes, scope)
		}
	}
	if len(t.queue) > 0 {
		t.idle = make(chan struct{})
	}
	return nil
}

// listScopes returns the mount path itself (".") and every quota scope
// directory: the entries named by 32 hex digits.
func (t *trashDeleter) listScopes() ([]string, error) {
	names, err := listOwnDir(t.v.mount, ".")
	if err != nil {
		return nil, err
	}
	scopes := []string{"."}
	for _, name := range names {
		if isHexName(name, 32) {
			scopes = append(scopes, name)
		}
	}
	return scopes, nil
}

func isHexName(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// listOwnDir returns the names in the directory rel of the mount, or none
// if it is missing. No component of rel may be a symlink.
func listOwnDir(mount *beneath.Dir, rel string) ([]string, error) {
	d, err := mount.OpenDir(rel, true)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer closeDir(d)

	rd := newDirentReader(d.Fd())
	defer rd.release()
	var names []string
	for !rd.eof {
		ents, err := rd.next(nil, walkBatch)
		if err != nil {
			return names, err
		}
		for _, e := range ents {
			names = append(names, e.name)
		}
	}
	return names, nil
}

// start moves unlocked leftovers of interrupted clones to the trash and
// starts the deleter goroutine. Calling it again does nothing.
func (t *trashDeleter) start() error {
	t.mu.Lock()
	if t.started || t.stopped {
		t.mu.Unlock()
		return nil
	}
	t.started = true
	scopes := t.cloneScopes
	t.cloneScopes = nil
	t.mu.Unlock()

	for _, scope := range scopes {
		t.discardLeftoverClones(scope)
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.done = make(chan struct{})
	t.mu.Lock()
	pending := len(t.queue)
	t.mu.Unlock()
	if pending > 0 {
		t.v.log.Info("resuming removal of deleted vfolders", "entries", pending)
	}
	go t.run(ctx)
	return nil
}

// discardLeftoverClones moves every entry of scope's .clone directory that
// no running clone holds locked into the trash.
func (t *trashDeleter) discardLeftoverClones(scope string) {
	cloneRel := path.Join(scope, vfid.CloneDirName)
	names, err := listOwnDir(t.v.mount, cloneRel)
	if err != nil {
		t.v.log.Warn("cannot list clone directory", "scope", scope, "error", err)
		return
	}
	for _, name := range names {
		if err := t.discardLeftoverClone(scope, cloneRel, name); err != nil {
			t.v.log.Warn("cannot discard an interrupted clone", "scope", scope, "entry", name, "error", err)
		}
	}
}

func (t *trashDeleter) discardLeftoverClone(scope, cloneRel, name string) error {
	cloneDir, err := t.v.mount.OpenDir(cloneRel, true)
	if err != nil {
		return err
	}
	defer closeDir(cloneDir)

	fd, err := unix.Openat(cloneDir.Fd(), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return ignoreMissing(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if err == unix.EWOULDBLOCK {
			return nil // a clone in progress
		}
		return err
	}

	qs, err := t.v.mount.OpenDir(scope, true)
	if err != nil {
		return err
	}
	defer closeDir(qs)
	trash, err := openOwnDir(qs, vfid.TrashDirName)
	if err != nil {
		return err
	}
	defer closeDir(trash)
	trashName := "clone." + name
	if err := unix.Renameat2(cloneDir.Fd(), name, trash.Fd(), trashName, unix.RENAME_NOREPLACE); err != nil {
		return err
	}
	t.enqueue(scope, trashName)
	return nil
}

// enqueue adds an entry of scope's .trash directory to the queue.
func (t *trashDeleter) enqueue(scope, name string) {
	t.mu.Lock()
	if len(t.queue) == 0 && !t.busy {
		t.idle = make(chan struct{})
	}
	t.queue = append(t.queue, trashEntry{scope: scope, name: name})
	t.mu.Unlock()

	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// run removes queued entries until ctx is done.
func (t *trashDeleter) run(ctx context.Context) {
	defer close(t.done)
	for {
		entry, ok := t.take()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
				continue
			}
		}
		t.remove(ctx, entry)
		t.finish()
		if ctx.Err() != nil {
			return
		}
	}
}

func (t *trashDeleter) take() (trashEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		return trashEntry{}, false
	}
	entry := t.queue[0]
	t.queue = t.queue[1:]
	t.busy = true
	return entry, true
}

func (t *trashDeleter) finish() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.busy = false
	if len(t.queue) == 0 {
		close(t.idle)
	}
}

// remove deletes one trash entry. A failure is logged and the entry stays
// on disk until the next Start.
func (t *trashDeleter) remove(ctx context.Context, entry trashEntry) {
	started := time.Now()
	err := t.removeEntry(ctx, entry)
	switch {
	case err == nil:
		t.v.log.Info("removed deleted vfolder data", "scope", entry.scope, "entry", entry.name, "duration", time.Since(started))
	case errors.Is(err, context.Canceled):
		t.v.log.Info("stopped removing deleted vfolder data; the next start resumes it", "scope", entry.scope, "entry", entry.name)
	default:
		t.v.log.Error("cannot remove deleted vfolder data; the next start retries it", "scope", entry.scope, "entry", entry.name, "error", err)
	}
}

func (t *trashDeleter) removeEntry(ctx context.Context, entry trashEntry) error {
	trash, err := t.v.mount.OpenDir(path.Join(entry.scope, vfid.TrashDirName), true)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closeDir(trash)
	return removeTree(ctx, t.v.opts.TreeIO, trash.Fd(), entry.name)
}

// flush waits until the queue is empty and no removal runs.
func (t *trashDeleter) flush(ctx context.Context) error {
	t.mu.Lock()
	idle, running, pending := t.idle, t.started && !t.stopped, len(t.queue)
	t.mu.Unlock()
	if !running && pending > 0 {
		return errors.New("the trash deleter is not running; call Start first")
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop cancels the deleter and waits for its goroutine to return.
func (t *trashDeleter) stop() {
	t.mu.Lock()
	t.stopped = true
	cancel, done := t.cancel, t.done
	t.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}
