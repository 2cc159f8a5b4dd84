package volume

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

// vfs is the plain POSIX file system backend. Quota scopes are directories
// without limits, laid out as package vfid describes.
type vfs struct {
	cfg  Config
	opts Options
	log  *slog.Logger

	// mount is the mount path opened once at Open. Every path of the volume
	// is reached through it, so a later change of what the path names
	// cannot redirect an operation. Check detects such a change.
	mount *beneath.Dir
	// device is the st_dev of the mount path at Open.
	device uint64

	health  healthState
	uploads uploadReservations
	trash   *trashDeleter
}

func openVFS(cfg Config, opts Options) (Volume, error) {
	if !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("volume %q: path %q is not absolute", cfg.Name, cfg.Path)
	}
	mount, err := beneath.Open(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("volume %q: open mount path: %w", cfg.Name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(mount.Fd(), &st); err != nil {
		mount.Close()
		return nil, fmt.Errorf("volume %q: stat mount path %s: %w", cfg.Name, cfg.Path, err)
	}

	v := &vfs{
		cfg:    cfg,
		opts:   opts,
		log:    opts.Logger.With("volume", cfg.Name),
		mount:  mount,
		device: st.Dev,
	}
	v.trash = newTrashDeleter(v)
	v.checkLayoutVersion()
	if err := v.trash.scan(); err != nil {
		v.log.Warn("cannot list leftover trash and clone entries", "error", err)
	}
	return v, nil
}

// checkLayoutVersion warns about a volume that still has the layout without
// quota scopes, as upstream does: version.txt missing or "2" means v2, "3"
// is current, anything else is ignored.
func (v *vfs) checkLayoutVersion() {
	data, err := os.ReadFile(filepath.Join(v.cfg.Path, "version.txt"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		v.log.Warn("cannot read version.txt", "path", v.cfg.Path, "error", err)
		return
	}
	if version := strings.TrimSpace(string(data)); version == "" || version == "2" {
		v.log.Warn(v.cfg.Path + ": Detected an old vfolder structure (v2)")
	}
}

func (v *vfs) Info() Info {
	return Info{Name: v.cfg.Name, Backend: v.cfg.Backend, Path: v.cfg.Path, FSPrefix: v.cfg.FSPrefix}
}

func (v *vfs) Capabilities() Capabilities { return CapVFolder }

func (v *vfs) HardwareInfo(ctx context.Context) (HardwareInfo, error) {
	if err := v.Check(ctx); err != nil {
		return HardwareInfo{Status: "unavailable", StatusInfo: err.Error(), Metadata: map[string]string{}}, nil
	}
	return HardwareInfo{Status: "healthy", Metadata: map[string]string{}}, nil
}

func (v *vfs) PerformanceMetric(context.Context) (PerformanceMetric, error) {
	return PerformanceMetric{}, newError(ErrUnsupported, "", "the vfs backend has no performance metrics", nil)
}

// FSUsage returns the statvfs(3) figures that upstream reports: capacity is
// fragment size times total blocks, used is capacity less the blocks
// available to unprivileged users.
func (v *vfs) FSUsage(context.Context) (CapacityUsage, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(v.mount.Fd(), &st); err != nil {
		return CapacityUsage{}, fmt.Errorf("statfs %s: %w", v.cfg.Path, err)
	}
	frsize := st.Frsize
	if frsize == 0 {
		frsize = st.Bsize
	}
	capacity := int64(st.Blocks) * frsize
	return CapacityUsage{CapacityBytes: capacity, UsedBytes: capacity - int64(st.Bavail)*frsize}, nil
}

func (v *vfs) Start() error {
	return v.trash.start()
}

func (v *vfs) FlushTrash(ctx context.Context) error {
	return v.trash.flush(ctx)
}

// Close stops the deleter first, because it works through v.mount, and
// then closes v.mount.
func (v *vfs) Close() error {
	v.trash.stop()
	return v.mount.Close()
}

// Relative paths of the layout, below the mount path. vfid's path helpers
// join their argument with the layout names, so an empty mount path yields
// the relative form.

func quotaScopeRel(id vfid.VFolderID) string {
	if p := id.QuotaScopePath(""); p != "" {
		return p
	}
	return "."
}

func folderRel(id vfid.VFolderID) string { return id.Path("") }

// folderInQuotaScope returns the vfolder's path below its quota scope
// directory: "aa/bb/rest".
func folderInQuotaScope(id vfid.VFolderID) string {
	h := id.Folder.Hex()
	return path.Join(h[0:2], h[2:4], h[4:])
}

// openFolder opens the vfolder's root directory. No component of its path
// below the mount may be a symlink.
func (v *vfs) openFolder(id vfid.VFolderID) (*beneath.Dir, error) {
	d, err := v.mount.OpenDir(folderRel(id), true)
	if err != nil {
		if isNotExist(err) || errnoOf(err) == unix.ELOOP {
			return nil, newError(ErrVFolderNotFound, "vfid", fmt.Sprintf("vfolder %s not found", id), err)
		}
		return nil, fmt.Errorf("open vfolder %s: %w", id, err)
	}
	return d, nil
}

// openQuotaScope opens the quota scope directory of id, or the mount path
// itself for a legacy vfid.
func (v *vfs) openQuotaScope(id vfid.VFolderID) (*beneath.Dir, error) {
	d, err := v.mount.OpenDir(quotaScopeRel(id), true)
	if err != nil {
		if isNotExist(err) || errnoOf(err) == unix.ELOOP {
			return nil, newError(ErrQuotaScopeNotFound, "qsid", fmt.Sprintf("quota scope %s not found", id.QuotaScope), err)
		}
		return nil, fmt.Errorf("open quota scope of %s: %w", id, err)
	}
	return d, nil
}

// randomHex returns n random bytes as 2n lowercase hex digits.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // since Go 1.24 it crashes the program instead of returning an error
	return hex.EncodeToString(b)
}

// closeDir closes a directory opened for one operation. Close errors of
// directories opened read-only carry no information, so they are dropped.
func closeDir(d *beneath.Dir) { d.Close() }
