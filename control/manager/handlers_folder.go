package manager

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/bai-storage/storage-proxy/control/vfid"
	"github.com/bai-storage/storage-proxy/control/volume"
)

// folderParams parses a body {"volume", "vfid"} plus the keys in extra,
// and returns the params for reading those.
func folderParams(body []byte, extra ...string) (*params, string, vfid.VFolderID, error) {
	p, err := parseParams(body, append([]string{"volume", "vfid"}, extra...)...)
	if err != nil {
		return nil, "", vfid.VFolderID{}, err
	}
	return p, p.str("volume"), p.vfid("vfid"), nil
}

// createFolder creates a vfolder, creating its quota scope first if it does
// not exist (with the limit options.initial_max_size_for_quota_scope when
// that is set and not zero), as upstream 24.09.
func (s *server) createFolder(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "options")
	if err != nil {
		return err
	}
	options := p.object("options")
	var initialLimit int64
	if raw, ok := options["initial_max_size_for_quota_scope"]; ok && !isNull(raw) {
		n, ok := parseToInt(raw)
		if !ok {
			p.invalid["options"] = "initial_max_size_for_quota_scope: value can't be converted to int"
		}
		initialLimit = n
	}
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "CREATE_VFOLDER", "volume", volumeName, "vfid", id.String())
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	err = v.CreateFolder(r.Context(), id)
	if errors.Is(err, volume.ErrQuotaScopeNotFound) {
		var quota *volume.QuotaConfig
		if initialLimit != 0 {
			quota = &volume.QuotaConfig{LimitBytes: initialLimit}
		}
		err = v.CreateQuotaScope(r.Context(), *id.QuotaScope, quota)
		if err == nil || errors.Is(err, volume.ErrQuotaScopeExists) {
			err = v.CreateFolder(r.Context(), id)
		}
	}
	return writeNoContent(w, err)
}

func (s *server) deleteFolder(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body)
	if err != nil {
		return err
	}
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "DELETE_VFOLDER", "volume", volumeName, "vfid", id.String())
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}
	return writeNoContent(w, v.DeleteFolder(r.Context(), id))
}

func (s *server) cloneFolder(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, err := parseParams(body, "src_volume", "src_vfid", "dst_volume", "dst_vfid", "options")
	if err != nil {
		return err
	}
	srcVolume, src := p.str("src_volume"), p.vfid("src_vfid")
	p.requireKey("dst_volume")
	dstVolume := p.nullableStr("dst_volume")
	dst := p.vfid("dst_vfid")
	p.object("options")
	if err := p.err(); err != nil {
		return err
	}
	dstName := srcVolume
	if dstVolume != nil {
		dstName = *dstVolume
	}
	s.logCall(r, "CLONE_VFOLDER", "src_volume", srcVolume, "src_vfid", src.String(), "dst_volume", dstName, "dst_vfid", dst.String())

	if dstName != srcVolume {
		return &apiError{status: http.StatusBadRequest, code: "unsupported-operation", title: "Unsupported operation by the storage backend",
			msg: fmt.Sprintf("cloning from volume %q to volume %q is not supported; clone within one volume", srcVolume, dstName)}
	}
	v, err := s.volume(srcVolume)
	if err != nil {
		return err
	}
	return writeNoContent(w, v.CloneFolder(r.Context(), src, dst))
}

// getMount responds with the vfolder's host path. Its two client errors
// have upstream's own application/json bodies, which the manager shows.
func (s *server) getMount(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "subpath")
	if err != nil {
		return err
	}
	subpath := "."
	if _, ok := p.fields["subpath"]; ok {
		subpath = p.str("subpath")
	}
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "GET_CONTAINER_MOUNT", "volume", volumeName, "vfid", id.String(), "relpath", subpath)
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	mountPath, err := v.MountPath(r.Context(), id, subpath)
	switch {
	case errors.Is(err, volume.ErrVFolderNotFound):
		return &apiError{status: http.StatusBadRequest, msg: "VFolder not found", cause: err,
			body: map[string]any{"msg": "VFolder not found", "vfid": id.String()}}
	case errors.Is(err, volume.ErrInvalidPath):
		return &apiError{status: http.StatusBadRequest, msg: "Invalid vfolder subpath", cause: err,
			body: map[string]any{"msg": "Invalid vfolder subpath", "vfid": id.String(), "subpath": subpath}}
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"path": mountPath})
	return nil
}

// getMetadata responds with {"status": "ok"} without touching storage or
// checking the volume name, as upstream.
func (s *server) getMetadata(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body)
	if err != nil {
		return err
	}
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "GET_METADATA", "volume", volumeName, "vfid", id.String())
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	return nil
}

// setMetadata always responds with 400, as upstream, whose schema wants
// "payload" as bytes, which JSON cannot carry.
func (s *server) setMetadata(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, _, _, err := folderParams(body, "payload")
	if err != nil {
		return err
	}
	if _, ok := p.fields["payload"]; ok {
		p.invalid["payload"] = "value is not bytes; JSON cannot carry a bytes value"
	} else {
		p.invalid["payload"] = "is required"
	}
	return p.err()
}

// getUsage accepts "relpath" besides upstream's keys, to measure a
// directory inside the vfolder. The default is the whole vfolder.
func (s *server) getUsage(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "relpath")
	if err != nil {
		return err
	}
	relpath := p.optionalRelpath("relpath", ".")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "GET_VFOLDER_USAGE", "volume", volumeName, "vfid", id.String(), "relpath", relpath)
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	usage, err := v.Usage(r.Context(), id, relpath)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"file_count": usage.FileCount, "used_bytes": usage.UsedBytes})
	return nil
}

func (s *server) getUsedBytes(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body)
	if err != nil {
		return err
	}
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "GET_VFOLDER_USED_BYTES", "volume", volumeName, "vfid", id.String())
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	used, err := v.UsedBytes(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"used_bytes": used})
	return nil
}
