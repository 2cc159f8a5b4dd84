package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// A vfs quota scope is the directory <mount>/<qs-hex> with mode 0755. It
// has no limit: the limit arguments are accepted and ignored, as upstream.

func (v *vfs) CreateQuotaScope(ctx context.Context, qsid vfid.QuotaScopeID, _ *QuotaConfig) error {
	if err := v.requireHealthy(ctx); err != nil {
		return err
	}
	err := v.mount.Root().Mkdir(qsid.PathName(), 0o755)
	if errors.Is(err, fs.ErrExist) {
		return newError(ErrQuotaScopeExists, "qsid", fmt.Sprintf("quota scope %s already exists", qsid), err)
	}
	if err != nil {
		return fmt.Errorf("create quota scope %s: %w", qsid, err)
	}
	return nil
}

func (v *vfs) DescribeQuotaScope(_ context.Context, qsid vfid.QuotaScopeID) (QuotaUsage, error) {
	if err := v.requireQuotaScope(qsid); err != nil {
		return QuotaUsage{}, err
	}
	return QuotaUsage{UsedBytes: -1, LimitBytes: -1}, nil
}

func (v *vfs) UpdateQuotaScope(_ context.Context, qsid vfid.QuotaScopeID, _ QuotaConfig) error {
	return v.requireQuotaScope(qsid)
}

func (v *vfs) UnsetQuota(_ context.Context, qsid vfid.QuotaScopeID) error {
	return v.requireQuotaScope(qsid)
}

// requireQuotaScope returns ErrQuotaScopeNotFound unless the scope's
// directory exists (as a directory, not a symlink).
func (v *vfs) requireQuotaScope(qsid vfid.QuotaScopeID) error {
	fi, err := v.mount.Root().Lstat(qsid.PathName())
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil || isNotExist(err) {
		return newError(ErrQuotaScopeNotFound, "qsid", fmt.Sprintf("quota scope %s not found", qsid), err)
	}
	return fmt.Errorf("stat quota scope %s: %w", qsid, err)
}
