package volume

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// healthState lets at most one probe of the mount path run at a time. A
// probe stuck in the kernel (a dead NFS server) keeps its goroutine until
// the kernel returns. Checks in the meantime wait for that probe and time
// out, so they do not add more stuck goroutines.
type healthState struct {
	// mu guards the fields below.
	mu sync.Mutex
	// running is closed when the probe in flight finishes. It is nil when
	// no probe runs.
	running chan struct{}
	// result is the error of the last finished probe.
	result error
}

// Check probes the mount path, which must still exist, be a directory on
// the device recorded at Open, and return from statfs within
// Options.CheckTimeout.
func (v *vfs) Check(ctx context.Context) error {
	v.health.mu.Lock()
	done := v.health.running
	if done == nil {
		done = make(chan struct{})
		v.health.running = done
		go v.probe(done)
	}
	v.health.mu.Unlock()

	timer := time.NewTimer(v.opts.CheckTimeout)
	defer timer.Stop()
	select {
	case <-done:
		v.health.mu.Lock()
		err := v.health.result
		v.health.mu.Unlock()
		return err
	case <-timer.C:
		err := fmt.Errorf("stat and statfs of the mount path did not return within %s", v.opts.CheckTimeout)
		v.log.Warn("volume health check timed out", "path", v.cfg.Path, "timeout", v.opts.CheckTimeout)
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// probe runs the system calls of one check and publishes the result.
func (v *vfs) probe(done chan struct{}) {
	err := v.probeMount()
	if err != nil {
		v.log.Warn("volume health check failed", "path", v.cfg.Path, "error", err)
	}
	v.health.mu.Lock()
	v.health.result = err
	v.health.running = nil
	v.health.mu.Unlock()
	close(done)
}

// probeMount returns errors whose text names no server path, because
// /readyz shows them without authentication.
func (v *vfs) probeMount() error {
	var st unix.Stat_t
	if err := unix.Stat(v.cfg.Path, &st); err != nil {
		return fmt.Errorf("the mount path is not accessible: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return errors.New("the mount path is no longer a directory")
	}
	if st.Dev != v.device {
		return fmt.Errorf("the mount path is on device %d:%d, not on device %d:%d as when the volume was opened (the file system was unmounted or replaced)",
			unix.Major(st.Dev), unix.Minor(st.Dev), unix.Major(v.device), unix.Minor(v.device))
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(v.cfg.Path, &fs); err != nil {
		return fmt.Errorf("statfs of the mount path failed: %w", err)
	}
	return nil
}

// requireHealthy returns ErrUnavailable while Check fails, so that writes
// never land in the directory under a lost mount.
func (v *vfs) requireHealthy(ctx context.Context) error {
	if err := v.Check(ctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return newError(ErrUnavailable, "", fmt.Sprintf("volume %s is unavailable: %v", v.cfg.Name, err), err)
	}
	return nil
}
