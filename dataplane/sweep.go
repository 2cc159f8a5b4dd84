package dataplane

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// stagingFilePattern matches the files that uploads leave in a staging
// directory: partial files, done markers and steal requests. Sweep removes
// nothing else.
var stagingFilePattern = regexp.MustCompile(`^[0-9a-f]{32}(\.done|\.steal)?$`)

// quotaScopeDirPattern matches a quota scope directory name on a volume.
var quotaScopeDirPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Sweep removes the upload files last modified before now minus maxAge from
// every staging directory of the volume mounted at mount: the legacy one at
// the mount's top and one per quota scope directory. A partial file still
// locked by a PATCH is kept whatever its age. It returns how many files it
// removed; the error joins every failure, and the sweep goes on after each.
func Sweep(mount string, maxAge time.Duration, now time.Time) (removed int, err error) {
	cutoff := now.Add(-maxAge)
	var errs []error

	n, sweepErr := sweepStagingDir(mount+"/"+vfid.StagingDirName, cutoff)
	removed += n
	if sweepErr != nil {
		errs = append(errs, sweepErr)
	}

	top, err := os.Open(mount)
	if err != nil {
		return removed, fmt.Errorf("sweep %s: %w", mount, err)
	}
	defer top.Close()
	for {
		entries, readErr := top.ReadDir(256)
		for _, e := range entries {
			if !e.IsDir() || !quotaScopeDirPattern.MatchString(e.Name()) {
				continue
			}
			n, sweepErr := sweepStagingDir(mount+"/"+e.Name()+"/"+vfid.StagingDirName, cutoff)
			removed += n
			if sweepErr != nil {
				errs = append(errs, sweepErr)
			}
		}
		if readErr != nil {
			if !errors.Is(readErr, io.EOF) {
				errs = append(errs, fmt.Errorf("sweep %s: %w", mount, readErr))
			}
			break
		}
	}
	return removed, errors.Join(errs...)
}

// sweepStagingDir sweeps one staging directory; a missing one is empty.
func sweepStagingDir(dir string, cutoff time.Time) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
			return 0, nil
		}
		return 0, fmt.Errorf("sweep %s: %w", dir, err)
	}
	d := os.NewFile(uintptr(fd), dir)
	defer d.Close()

	removed := 0
	var errs []error
	for {
		entries, readErr := d.ReadDir(256)
		for _, e := range entries {
			if !e.Type().IsRegular() || !stagingFilePattern.MatchString(e.Name()) {
				continue
			}
			ok, err := sweepFile(fd, e.Name(), cutoff)
			if err != nil {
				errs = append(errs, fmt.Errorf("sweep %s/%s: %w", dir, e.Name(), err))
			}
			if ok {
				removed++
			}
		}
		if readErr != nil {
			if !errors.Is(readErr, io.EOF) {
				errs = append(errs, fmt.Errorf("sweep %s: %w", dir, readErr))
			}
			return removed, errors.Join(errs...)
		}
	}
}

// sweepFile removes name from the directory dirfd if it was last modified
// before cutoff and, for a partial file, no PATCH holds its lock. The lock
// is held across the unlink so that no PATCH starts in between.
func sweepFile(dirfd int, name string, cutoff time.Time) (bool, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		return false, err
	}
	defer unix.Close(fd)

	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || !time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Before(cutoff) {
		return false, nil
	}
	if !strings.Contains(name, ".") {
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			if err == unix.EWOULDBLOCK {
				return false, nil
			}
			return false, err
		}
	}
	if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
		return false, err
	}
	return true, nil
}
