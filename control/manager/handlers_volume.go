package manager

import (
	"errors"
	"net/http"

	"github.com/bai-storage/storage-proxy/control/volume"
)

func (s *server) getStatus(w http.ResponseWriter, r *http.Request, _ []byte) error {
	s.logCall(r, "GET_STATUS")
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "type": "manager-facing", "storage-proxy": s.opts.Version})
	return nil
}

func (s *server) getVolumes(w http.ResponseWriter, r *http.Request, _ []byte) error {
	s.logCall(r, "GET_VOLUMES")
	list := make([]map[string]any, 0, len(s.opts.Volumes))
	for _, v := range s.opts.Volumes {
		info := v.Info()
		list = append(list, map[string]any{
			"name":         info.Name,
			"backend":      info.Backend,
			"path":         info.Path,
			"fsprefix":     info.FSPrefix,
			"capabilities": v.Capabilities().Strings(),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"volumes": list})
	return nil
}

// volumeOnly parses the body {"volume": string}, logs the call and returns
// the volume.
func (s *server) volumeOnly(r *http.Request, body []byte, name string) (volume.Volume, error) {
	p, err := parseParams(body, "volume")
	if err != nil {
		return nil, err
	}
	volumeName := p.str("volume")
	if err := p.err(); err != nil {
		return nil, err
	}
	s.logCall(r, name, "volume", volumeName)
	return s.volume(volumeName)
}

func (s *server) getHWInfo(w http.ResponseWriter, r *http.Request, body []byte) error {
	v, err := s.volumeOnly(r, body, "GET_HWINFO")
	if err != nil {
		return err
	}
	info, err := v.HardwareInfo(r.Context())
	if err != nil {
		return err
	}
	var statusInfo any
	if info.StatusInfo != "" {
		statusInfo = info.StatusInfo
	}
	metadata := info.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": info.Status, "status_info": statusInfo, "metadata": metadata})
	return nil
}

func (s *server) getPerformanceMetric(w http.ResponseWriter, r *http.Request, body []byte) error {
	v, err := s.volumeOnly(r, body, "GET_PERFORMANCE_METRIC")
	if err != nil {
		return err
	}
	m, err := v.PerformanceMetric(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"metric": map[string]any{
		"iops_read":      m.IOPSRead,
		"iops_write":     m.IOPSWrite,
		"io_bytes_read":  m.IOBytesRead,
		"io_bytes_write": m.IOBytesWrite,
		"io_usec_read":   m.IOUsecRead,
		"io_usec_write":  m.IOUsecWrite,
	}})
	return nil
}

func (s *server) getFSUsage(w http.ResponseWriter, r *http.Request, body []byte) error {
	v, err := s.volumeOnly(r, body, "GET_VFOLDER_FS_USAGE")
	if err != nil {
		return err
	}
	usage, err := v.FSUsage(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"capacity_bytes": usage.CapacityBytes, "used_bytes": usage.UsedBytes})
	return nil
}

func (s *server) createQuotaScope(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := parseParams(body, "volume", "qsid", "options", "extra_args")
	if err != nil {
		return err
	}
	volumeName, qsid := p.str("volume"), p.qsid("qsid")
	limit := p.quotaConfig("options", false)
	p.object("extra_args")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "CREATE_QUOTA_SCOPE", "volume", volumeName, "qsid", qsid.String())
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	var quota *volume.QuotaConfig
	if limit != nil {
		quota = &volume.QuotaConfig{LimitBytes: *limit}
	}
	if err := v.CreateQuotaScope(r.Context(), qsid, quota); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) getQuotaScope(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := parseParams(body, "volume", "qsid")
	if err != nil {
		return err
	}
	volumeName, qsid := p.str("volume"), p.qsid("qsid")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "GET_QUOTA_SCOPE", "volume", volumeName, "qsid", qsid.String())
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	usage, err := v.DescribeQuotaScope(r.Context(), qsid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"used_bytes": nullIfNegative(usage.UsedBytes), "limit_bytes": nullIfNegative(usage.LimitBytes)})
	return nil
}

// nullIfNegative renders a backend's "unknown" (a negative value) as null.
func nullIfNegative(n int64) any {
	if n < 0 {
		return nil
	}
	return n
}

// updateQuotaScope sets the limit of a quota scope, creating the scope if
// it does not exist yet, as upstream.
func (s *server) updateQuotaScope(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := parseParams(body, "volume", "qsid", "options")
	if err != nil {
		return err
	}
	volumeName, qsid := p.str("volume"), p.qsid("qsid")
	limit := p.quotaConfig("options", true)
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "UPDATE_QUOTA_SCOPE", "volume", volumeName, "qsid", qsid.String())
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	quota := volume.QuotaConfig{LimitBytes: *limit}
	_, err = v.DescribeQuotaScope(r.Context(), qsid)
	if errors.Is(err, volume.ErrQuotaScopeNotFound) {
		err = v.CreateQuotaScope(r.Context(), qsid, &quota)
		if !errors.Is(err, volume.ErrQuotaScopeExists) {
			return writeNoContent(w, err)
		}
		// Another call created the scope since: update it instead.
	} else if err != nil {
		return err
	}
	return writeNoContent(w, v.UpdateQuotaScope(r.Context(), qsid, quota))
}

func (s *server) unsetQuota(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := parseParams(body, "volume", "qsid")
	if err != nil {
		return err
	}
	volumeName, qsid := p.str("volume"), p.qsid("qsid")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "UNSET_QUOTA", "volume", volumeName, "qsid", qsid.String())
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}
	return writeNoContent(w, v.UnsetQuota(r.Context(), qsid))
}

// writeNoContent responds with 204 unless err is set, which it returns.
func writeNoContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// getLegacyQuota and setLegacyQuota are the per-vfolder quota routes that
// upstream deprecated. After checking the parameters they always respond
// with 400. Upstream puts the reason into the status line with an empty
// body, but net/http cannot set a reason phrase, so it goes into "msg".
func (s *server) getLegacyQuota(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := parseParams(body, "volume", "vfid")
	if err != nil {
		return err
	}
	volumeName := p.str("volume")
	p.nullableVFID("vfid")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "GET_QUOTA", "volume", volumeName)
	return deprecatedAPI("get_quota (for individual vfolder) is a deprecated API")
}

func (s *server) setLegacyQuota(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := parseParams(body, "volume", "vfid", "size_bytes")
	if err != nil {
		return err
	}
	volumeName := p.str("volume")
	p.nullableVFID("vfid")
	p.requireKey("size_bytes")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "UPDATE_QUOTA", "volume", volumeName)
	return deprecatedAPI("set_quota (for individual vfolder) is a deprecated API")
}

func deprecatedAPI(msg string) error {
	return &apiError{status: http.StatusBadRequest, code: "deprecated-api", title: "Deprecated API", msg: msg}
}
