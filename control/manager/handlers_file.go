package manager

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/token"
	"github.com/bai-storage/storage-proxy/control/volume"
)

// maxMkdirPaths is the most paths one mkdir call may create, as upstream.
const maxMkdirPaths = 50

// mkdir creates up to 50 directories, each on its own: 200 when all were
// created, 207 when some failed, 422 when all failed (also for an empty
// list, as upstream). The manager's group ".local" preparation sends its
// parameters in the query string with the key "relpaths" and no body, so
// that form is accepted when the body is empty.
func (s *server) mkdir(w http.ResponseWriter, r *http.Request, body []byte) error {
	var p *params
	var err error
	if len(bytes.TrimSpace(body)) == 0 && r.URL.RawQuery != "" {
		p, err = queryParams(r.URL.Query(), "volume", "vfid", "relpath", "relpaths", "parents", "exist_ok")
	} else {
		p, err = parseParams(body, "volume", "vfid", "relpath", "parents", "exist_ok")
	}
	if err != nil {
		return err
	}
	volumeName, id := p.str("volume"), p.vfid("vfid")
	key := "relpath"
	if _, ok := p.fields["relpaths"]; ok {
		key = "relpaths"
		if _, both := p.fields["relpath"]; both {
			p.invalid["relpaths"] = "give relpath or relpaths, not both"
		}
	}
	relpaths := p.relpathList(key, maxMkdirPaths, true)
	parents, existOK := p.toBool("parents", true), p.toBool("exist_ok", false)
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "MKDIR", "volume", volumeName, "vfid", id.String(), "relpath", firstOf(relpaths), "count", len(relpaths))
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	success, failed := []map[string]any{}, []map[string]any{}
	for _, rel := range relpaths {
		item := purePath(rel)
		err := v.Mkdir(r.Context(), id, rel, parents, existOK)
		if errors.Is(err, volume.ErrVFolderNotFound) || errors.Is(err, volume.ErrUnavailable) {
			return err
		}
		if err != nil {
			s.log.Info("mkdir failed", "vfid", id.String(), "relpath", item, "error", err)
			failed = append(failed, map[string]any{"msg": mkdirFailure(err), "item": item})
			continue
		}
		success = append(success, map[string]any{"msg": nil, "item": item})
	}

	status := http.StatusOK
	switch {
	case len(success) == 0:
		status = http.StatusUnprocessableEntity
	case len(failed) > 0:
		status = http.StatusMultiStatus
	}
	writeJSON(w, status, map[string]any{"results": map[string]any{"success": success, "failed": failed}})
	return nil
}

func firstOf(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

// purePath normalises rel as Python's PurePosixPath prints it: "a//b/"
// becomes "a/b", "./x" becomes "x", "" becomes ".", and ".." stays.
func purePath(rel string) string {
	var parts []string
	for _, part := range strings.Split(rel, "/") {
		if part != "" && part != "." {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return "."
	}
	return strings.Join(parts, "/")
}

// mkdirFailure is the "msg" of a failed mkdir item. For a file system
// error it has the form of the Python repr that upstream sends, e.g.
// "FileExistsError(17, 'File exists')".
func mkdirFailure(err error) string {
	var fsErr *volume.FSError
	if errors.As(err, &fsErr) && fsErr.Errno != 0 {
		return fmt.Sprintf("%s(%d, '%s')", pythonOSError(fsErr.Errno), int(fsErr.Errno), fsErr.Msg)
	}
	var typed *volume.Error
	if errors.As(err, &typed) {
		return typed.Msg
	}
	return translate(err).msg
}

// pythonOSError returns the OSError subclass Python raises for errno.
func pythonOSError(errno syscall.Errno) string {
	switch errno {
	case syscall.EEXIST:
		return "FileExistsError"
	case syscall.ENOENT:
		return "FileNotFoundError"
	case syscall.ENOTDIR:
		return "NotADirectoryError"
	case syscall.EISDIR:
		return "IsADirectoryError"
	case syscall.EACCES, syscall.EPERM:
		return "PermissionError"
	}
	return "OSError"
}

func (s *server) listFiles(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "relpath")
	if err != nil {
		return err
	}
	relpath := p.relpath("relpath")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "LIST_FILES", "volume", volumeName, "vfid", id.String(), "relpath", relpath)
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	entries, err := v.List(r.Context(), id, relpath)
	if err != nil {
		return err
	}
	items := make([]map[string]any, len(entries))
	for i, e := range entries {
		items[i] = map[string]any{
			"name": e.Name,
			"type": string(e.Type),
			"stat": map[string]any{
				"mode":     e.Stat.Mode,
				"size":     e.Stat.Size,
				"created":  isoTime(e.Stat.Created),
				"modified": isoTime(e.Stat.Modified),
			},
			"symlink_target": e.SymlinkTarget,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

// isoTime formats t as Python's datetime.isoformat() of an aware UTC time,
// which the manager parses: "2024-05-01T12:34:56.789012+00:00", with the
// fraction left out when it is zero.
func isoTime(t time.Time) string {
	t = t.UTC()
	s := t.Format("2006-01-02T15:04:05")
	if usec := t.Nanosecond() / 1000; usec != 0 {
		s += fmt.Sprintf(".%06d", usec)
	}
	return s + "+00:00"
}

func (s *server) renameFile(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "relpath", "new_name", "is_dir")
	if err != nil {
		return err
	}
	relpath, newName := p.relpath("relpath"), p.str("new_name")
	p.toBool("is_dir", false) // accepted and ignored, as upstream since 22.03
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "RENAME_FILE", "volume", volumeName, "vfid", id.String(), "relpath", relpath, "new_name", newName)
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}
	return writeNoContent(w, v.Rename(r.Context(), id, relpath, newName))
}

func (s *server) moveFile(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "src_relpath", "dst_relpath")
	if err != nil {
		return err
	}
	src, dst := p.relpath("src_relpath"), p.relpath("dst_relpath")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "MOVE_FILE", "volume", volumeName, "vfid", id.String(), "relpath", src, "dst_relpath", dst)
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}
	return writeNoContent(w, v.Move(r.Context(), id, src, dst))
}

// fetchFile streams a regular file. Unlike upstream, which responds with 200
// with an empty body for every error, a missing file is 404 and other
// failures are 4xx or 5xx before the first byte.
func (s *server) fetchFile(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "relpath")
	if err != nil {
		return err
	}
	relpath := p.relpath("relpath")
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "FETCH_FILE", "volume", volumeName, "vfid", id.String(), "relpath", relpath)
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	f, err := v.Fetch(r.Context(), id, relpath)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil && r.Context().Err() == nil {
		// The status line is already sent, so the client sees a truncated
		// body.
		s.log.Warn("fetch stopped mid-stream", "vfid", id.String(), "relpath", relpath, "error", err)
	}
	return nil
}

// createDownloadSession mints a download token. Unlike upstream it puts
// "archive" and "unmanaged_path" into the token, and it checks the volume
// and that relpath stays inside the vfolder.
func (s *server) createDownloadSession(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "relpath", "archive", "unmanaged_path")
	if err != nil {
		return err
	}
	relpath := p.relpath("relpath")
	archive := p.toBool("archive", false)
	unmanaged := p.nullableStr("unmanaged_path")
	if unmanaged != nil && !path.IsAbs(*unmanaged) {
		p.invalid["unmanaged_path"] = "value is not an absolute path"
	}
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "CREATE_DOWNLOAD_SESSION", "volume", volumeName, "vfid", id.String(), "relpath", relpath)
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	claims := token.Download{Volume: volumeName, VFID: id, Archive: archive, Expires: s.opts.SessionExpiry(s.opts.Now())}
	if unmanaged != nil {
		claims.UnmanagedPath = *unmanaged
		claims.Relpath, err = beneath.Clean(relpath)
		if err != nil {
			return &apiError{status: http.StatusBadRequest, code: "subpath/invalid", title: "Invalid Subpath",
				msg: fmt.Sprintf("invalid path %q: it escapes the directory or no file can have it", relpath), cause: err}
		}
	} else if claims.Relpath, err = v.CheckPath(r.Context(), id, relpath); err != nil {
		return err
	}
	signed, err := token.MintDownload(s.opts.TokenSecret, claims)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": signed})
	return nil
}

// createUploadSession checks the size against max-upload-size, creates the
// session's staging files through the volume, and mints its token.
func (s *server) createUploadSession(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "relpath", "size")
	if err != nil {
		return err
	}
	relpath, size := p.relpath("relpath"), p.toInt("size")
	if _, bad := p.invalid["size"]; !bad && size < 0 {
		p.invalid["size"] = "value must not be negative"
	}
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "CREATE_UPLOAD_SESSION", "volume", volumeName, "vfid", id.String(), "relpath", relpath, "size", size)
	if s.opts.MaxUploadSize > 0 && size > s.opts.MaxUploadSize {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "upload-too-large", title: "Upload Too Large",
			msg:  fmt.Sprintf("upload size %d is larger than max-upload-size (%d bytes)", size, s.opts.MaxUploadSize),
			data: map[string]any{"size": size, "max_upload_size": s.opts.MaxUploadSize}}
	}
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	expires := s.opts.SessionExpiry(s.opts.Now())
	session, err := v.CreateUpload(r.Context(), volume.UploadRequest{VFID: id, Relpath: relpath, Size: size, Expires: expires})
	if err != nil {
		return err
	}
	signed, err := token.MintUpload(s.opts.TokenSecret, token.Upload{
		Volume: volumeName, VFID: id, Relpath: session.Relpath, Size: size, Session: session.ID, Expires: expires,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": signed})
	return nil
}

func (s *server) deleteFiles(w http.ResponseWriter, r *http.Request, body []byte) error {
	p, volumeName, id, err := folderParams(body, "relpaths", "recursive")
	if err != nil {
		return err
	}
	relpaths := p.relpathList("relpaths", 0, false)
	recursive := p.toBool("recursive", false)
	if err := p.err(); err != nil {
		return err
	}
	s.logCall(r, "DELETE_FILES", "volume", volumeName, "vfid", id.String(), "relpath", firstOf(relpaths), "count", len(relpaths))
	v, err := s.volume(volumeName)
	if err != nil {
		return err
	}

	if err := v.DeleteFiles(r.Context(), id, relpaths, recursive); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	return nil
}
