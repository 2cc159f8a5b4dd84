package volume

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// Capabilities is a set of capability flags. Their wire names, returned by
// Strings, are passed through the manager to the web UI unchanged.
type Capabilities uint

// The capability flags of a backend.
const (
	// CapVFolder means the volume can host vfolders (every backend).
	CapVFolder Capabilities = 1 << iota
	// CapQuota means quota scopes enforce their limits.
	CapQuota
	// CapMetric means PerformanceMetric works.
	CapMetric
	// CapFastSize means the per-folder size is cheap to get.
	CapFastSize
	// CapFastFSSize means the volume's usage comes from a vendor API.
	CapFastFSSize
	// CapFastScan means listings are fast.
	CapFastScan
)

var capabilityNames = []struct {
	flag Capabilities
	name string
}{
	{CapVFolder, "vfolder"},
	{CapQuota, "quota"},
	{CapMetric, "metric"},
	{CapFastSize, "fast-size"},
	{CapFastFSSize, "fast-fs-size"},
	{CapFastScan, "fast-scan"},
}

// Has reports whether every flag of f is in c.
func (c Capabilities) Has(f Capabilities) bool { return c&f == f }

// Strings returns the wire names of the flags in c, in declaration order.
func (c Capabilities) Strings() []string {
	names := []string{}
	for _, n := range capabilityNames {
		if c.Has(n.flag) {
			names = append(names, n.name)
		}
	}
	return names
}

// Config is one [volume.NAME] table of the config file.
type Config struct {
	// Name is the table's NAME, the "volume" string of every API call.
	Name string
	// Backend is the driver name. This build supports only "vfs".
	Backend string
	// Path is the mount path, already absolute and symlink-resolved by the
	// config loader.
	Path string
	// FSPrefix is only echoed back by GET /volumes. Empty means ".".
	FSPrefix string
	// Options are the backend's own keys. vfs has none and ignores them.
	Options map[string]any
}

// Options are the process-wide settings that every volume shares. The zero
// value works.
type Options struct {
	// Logger receives the volume's warnings and the background deleter's
	// records. Nil discards them.
	Logger *slog.Logger
	// TreeIO runs the batched statx and unlinkat calls of tree walks. Nil
	// selects SyscallTreeIO.
	TreeIO TreeIO
	// ScandirLimit is the maximum number of entries one listing returns
	// (config key scandir-limit). Zero means no limit. The config loader
	// applies the default of 1000 when the key is absent.
	ScandirLimit int
	// UsageTimeout is how long a usage scan may run before it gives up and
	// reports -1 entries and -1 bytes. Zero means 30 seconds, as upstream.
	UsageTimeout time.Duration
	// CheckTimeout bounds the stat and statfs calls of Check, so that a hung
	// network mount reports a timeout instead of blocking. Zero means 5
	// seconds.
	CheckTimeout time.Duration
}

// Info describes a volume as GET /volumes reports it.
type Info struct {
	Name     string
	Backend  string
	Path     string
	FSPrefix string
}

// HardwareInfo is the reply of GET /volume/hwinfo.
type HardwareInfo struct {
	// Status is "healthy", "degraded", "offline" or "unavailable".
	Status string
	// StatusInfo explains a status other than "healthy", and is empty
	// otherwise.
	StatusInfo string
	// Metadata holds vendor details as JSON-encoded strings.
	Metadata map[string]string
}

// PerformanceMetric is the reply of GET /volume/performance-metric.
type PerformanceMetric struct {
	IOPSRead     int64
	IOPSWrite    int64
	IOBytesRead  int64
	IOBytesWrite int64
	IOUsecRead   float64
	IOUsecWrite  float64
}

// CapacityUsage is the size and usage of a whole volume, in bytes.
type CapacityUsage struct {
	CapacityBytes int64
	UsedBytes     int64
}

// QuotaUsage is a quota scope's usage and limit in bytes, where -1 means
// unknown or unset.
type QuotaUsage struct {
	UsedBytes  int64
	LimitBytes int64
}

// QuotaConfig is the quota of a scope: LimitBytes is its hard limit in bytes.
type QuotaConfig struct {
	LimitBytes int64
}

// TreeUsage is the result of a usage scan: every entry below the scanned
// directory counts once and adds its apparent size (st_size). Both fields
// are -1 when the scan ran out of time.
type TreeUsage struct {
	FileCount int64
	UsedBytes int64
}

// EntryType is the type of a listed entry, as the manager reads it.
type EntryType string

// The entry types of a listing. Sockets, FIFOs and devices are FILE.
const (
	TypeFile      EntryType = "FILE"
	TypeDirectory EntryType = "DIRECTORY"
	TypeSymlink   EntryType = "SYMLINK"
)

// Stat is the lstat(2) information of a listed entry.
type Stat struct {
	// Mode is st_mode including the file type bits.
	Mode uint32
	// Size is st_size of the entry itself (of the link for a symlink).
	Size int64
	// Created is the inode change time (st_ctime), not a birth time.
	Created time.Time
	// Modified is st_mtime.
	Modified time.Time
	// Owner is the owner's uid.
	Owner uint32
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Type EntryType
	Stat Stat
	// SymlinkTarget is, for a symlink, its resolved target relative to the
	// listed directory when the target lies inside that directory, and ""
	// otherwise (also for loops, for targets outside the vfolder and for
	// every entry that is not a symlink).
	SymlinkTarget string
}

// UploadRequest is the request for a new upload session.
type UploadRequest struct {
	VFID vfid.VFolderID
	// Relpath is the target file relative to the vfolder, as the manager
	// sent it.
	Relpath string
	// Size is the number of bytes the client will upload.
	Size int64
	// Expires is when the session's token expires. The free-space check
	// stops counting the session's bytes after that.
	Expires time.Time
}

// UploadSession is a created upload session.
type UploadSession struct {
	// ID is 32 lowercase hex digits, the partial file's name in the staging
	// directory.
	ID string
	// Relpath is the request's relpath in normal form ("a//b" becomes
	// "a/b"), the value that goes into the upload token.
	Relpath string
}

// Volume is one configured volume. All methods are safe for concurrent use.
//
// Methods that take a relpath resolve it beneath the vfolder root: a path
// that escapes, lexically or through a symlink, fails with ErrInvalidPath
// before anything is touched. A missing vfolder fails with
// ErrVFolderNotFound. Methods that write fail with ErrUnavailable while
// Check fails.
type Volume interface {
	// Info returns the volume's name, backend, mount path and fsprefix.
	Info() Info
	// Capabilities returns the backend's capability flags.
	Capabilities() Capabilities
	// HardwareInfo returns the volume's health as GET /volume/hwinfo reports it.
	HardwareInfo(ctx context.Context) (HardwareInfo, error)
	// PerformanceMetric returns I/O statistics, or ErrUnsupported.
	PerformanceMetric(ctx context.Context) (PerformanceMetric, error)
	// FSUsage returns the capacity and usage of the whole volume.
	FSUsage(ctx context.Context) (CapacityUsage, error)

	// CreateQuotaScope creates a quota scope, or fails with
	// ErrQuotaScopeExists if it exists. A nil quota means no limit.
	CreateQuotaScope(ctx context.Context, qsid vfid.QuotaScopeID, quota *QuotaConfig) error
	// DescribeQuotaScope returns a scope's usage, or ErrQuotaScopeNotFound.
	DescribeQuotaScope(ctx context.Context, qsid vfid.QuotaScopeID) (QuotaUsage, error)
	// UpdateQuotaScope changes the limit of an existing scope.
	UpdateQuotaScope(ctx context.Context, qsid vfid.QuotaScopeID, quota QuotaConfig) error
	// UnsetQuota removes the limit of an existing scope and keeps the scope.
	UnsetQuota(ctx context.Context, qsid vfid.QuotaScopeID) error

	// CreateFolder creates a vfolder in an existing quota scope. It fails
	// with ErrQuotaScopeNotFound, ErrVFolderExists, or ErrInvalidArgument
	// for a vfid without a quota scope.
	CreateFolder(ctx context.Context, id vfid.VFolderID) error
	// DeleteFolder moves the vfolder out of sight at once and frees its
	// space in the background. A missing vfolder is not an error.
	DeleteFolder(ctx context.Context, id vfid.VFolderID) error
	// CloneFolder copies src into the new vfolder dst of the same volume.
	CloneFolder(ctx context.Context, src, dst vfid.VFolderID) error
	// MountPath checks that subpath stays inside the vfolder and returns the
	// vfolder's absolute directory (not the subpath's).
	MountPath(ctx context.Context, id vfid.VFolderID, subpath string) (string, error)
	// Usage scans the directory relpath of a vfolder.
	Usage(ctx context.Context, id vfid.VFolderID, relpath string) (TreeUsage, error)
	// UsedBytes returns the disk space the vfolder occupies, like du -s.
	UsedBytes(ctx context.Context, id vfid.VFolderID) (int64, error)
	// Metadata returns the vfolder's metadata.json, or nil if there is none.
	Metadata(ctx context.Context, id vfid.VFolderID) ([]byte, error)
	// PutMetadata replaces the vfolder's metadata.json.
	PutMetadata(ctx context.Context, id vfid.VFolderID, data []byte) error

	// CheckPath returns relpath in normal form after checking that it
	// resolves inside the vfolder. The path itself need not exist.
	CheckPath(ctx context.Context, id vfid.VFolderID, relpath string) (string, error)
	// Mkdir creates a directory with mode 0755 (less the umask).
	Mkdir(ctx context.Context, id vfid.VFolderID, relpath string, parents, existOK bool) error
	// List returns up to ScandirLimit entries of a directory, unsorted.
	List(ctx context.Context, id vfid.VFolderID, relpath string) ([]DirEntry, error)
	// Rename gives relpath the new last component newName, with the
	// semantics of Move.
	Rename(ctx context.Context, id vfid.VFolderID, relpath, newName string) error
	// Move moves src like mv(1): into dst when dst is a directory, else
	// onto dst.
	Move(ctx context.Context, id vfid.VFolderID, src, dst string) error
	// Fetch opens a regular file for reading. The caller closes it.
	Fetch(ctx context.Context, id vfid.VFolderID, relpath string) (*os.File, error)
	// DeleteFiles deletes each path in order and stops at the first error.
	DeleteFiles(ctx context.Context, id vfid.VFolderID, relpaths []string, recursive bool) error
	// CreateUpload creates an upload session and its staging files.
	CreateUpload(ctx context.Context, req UploadRequest) (UploadSession, error)

	// Check returns an error while the volume cannot serve: its path is
	// gone, its device changed since Open (the mount fell off) or statfs
	// fails or times out. The error text names no server path.
	Check(ctx context.Context) error
	// Start starts the background work of the volume: the deleter of
	// removed vfolders, which first discards clones that a restart
	// interrupted. Only the process that owns the manager API calls it,
	// and a Volume that is never started does no background work.
	Start() error
	// FlushTrash waits until the background deleter has removed every
	// entry queued so far, or until ctx is done.
	FlushTrash(ctx context.Context) error
	// Close stops the background work, waiting for the current step to
	// finish, and releases the volume's descriptors. Removals left undone
	// are resumed by the next Start.
	Close() error
}

// backends maps each backend name of this build to its constructor.
var backends = map[string]func(Config, Options) (Volume, error){
	"vfs": openVFS,
}

// Backends returns the backend names this build supports, sorted.
func Backends() []string {
	names := make([]string, 0, len(backends))
	for name := range backends {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Open creates the volume of one config table. It does no background work
// until Start.
func Open(cfg Config, opts Options) (Volume, error) {
	open, ok := backends[cfg.Backend]
	if !ok {
		return nil, fmt.Errorf("volume %q: backend %q is not supported by this build (supported: %v)", cfg.Name, cfg.Backend, Backends())
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.TreeIO == nil {
		opts.TreeIO = SyscallTreeIO{}
	}
	if opts.UsageTimeout <= 0 {
		opts.UsageTimeout = 30 * time.Second
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 5 * time.Second
	}
	if cfg.FSPrefix == "" {
		cfg.FSPrefix = "."
	}
	return open(cfg, opts)
}
