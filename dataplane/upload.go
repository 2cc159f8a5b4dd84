package dataplane

import (
	"mime"
	"path"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// tusVersion is the tus protocol version served, without extensions.
const tusVersion = "1.0.0"

// serveUpload handles /upload: the tus OPTIONS, HEAD and PATCH requests.
// Every response, errors included, carries the upload CORS headers and
// Tus-Resumable.
func (s *Server) serveUpload(ctx *fasthttp.RequestCtx, entry *accessEntry) {
	addUploadCORS(ctx)
	ctx.Response.Header.Set("Tus-Resumable", tusVersion)
	var err *apiError
	switch {
	case ctx.IsOptions():
		s.serveTusOptions(ctx)
	case ctx.IsHead():
		err = s.uploadHead(ctx)
	case ctx.IsPatch():
		err = s.uploadPatch(ctx, entry)
	default:
		methodNotAllowed(ctx, "OPTIONS, HEAD, PATCH")
		rejectUnreadBody(ctx)
	}
	if err != nil {
		s.logAPIError(ctx, err)
		writeProblem(ctx, err)
	}
}

// serveTusOptions serves tus capability discovery, which needs no token.
func (s *Server) serveTusOptions(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Tus-Version", tusVersion)
	if s.opts.MaxUploadSize >= 0 {
		h.Set("Tus-Max-Size", strconv.FormatInt(s.opts.MaxUploadSize, 10))
	}
	h.Set("X-Content-Type-Options", "nosniff")
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// setSessionHeaders sets the headers of a successful HEAD or PATCH.
func setSessionHeaders(ctx *fasthttp.RequestCtx, offset, length int64) {
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-store")
	h.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	h.Set("Upload-Length", strconv.FormatInt(length, 10))
}

// uploadHead reports the session's durable offset. If a PATCH holds the
// session but its client has stalled, HEAD makes it stop first, so the
// offset reported is where a resumed PATCH must start. A session whose
// partial file is complete but not yet moved into place (the server
// stopped in between) is finalized here.
func (s *Server) uploadHead(ctx *fasthttp.RequestCtx) *apiError {
	ss, apiErr := s.openSession(ctx)
	if apiErr != nil {
		return apiErr
	}
	defer ss.close()
	size := ss.claims.Size
	if ss.finished() {
		setSessionHeaders(ctx, size, size)
		return nil
	}

	locked, apiErr := ss.lock()
	if apiErr != nil {
		return apiErr
	}
	if ss.finished() {
		setSessionHeaders(ctx, size, size)
		return nil
	}
	if !locked && s.opts.SessionLocks != nil {
		// Only the lock holder can tell which bytes were acknowledged. The
		// file's size may include bytes of a PATCH that is still running,
		// or of a holder that died and whose lock has not expired yet.
		return sessionLocked()
	}
	offset, apiErr := ss.durableOffset()
	if apiErr != nil {
		return apiErr
	}
	if locked && offset == size {
		if apiErr := ss.finalize(); apiErr != nil {
			return apiErr
		}
	}
	setSessionHeaders(ctx, offset, size)
	return nil
}

// uploadPatch appends the request body to the session at Upload-Offset.
func (s *Server) uploadPatch(ctx *fasthttp.RequestCtx, entry *accessEntry) *apiError {
	offset, apiErr := parseUploadOffset(ctx)
	if apiErr != nil {
		rejectUnreadBody(ctx)
		return apiErr
	}
	if apiErr := checkPatchContentType(ctx); apiErr != nil {
		rejectUnreadBody(ctx)
		return apiErr
	}
	ss, apiErr := s.openSession(ctx)
	if apiErr != nil {
		rejectUnreadBody(ctx)
		return apiErr
	}
	defer ss.close()
	size := ss.claims.Size
	if s.opts.MaxUploadSize >= 0 && size > s.opts.MaxUploadSize {
		rejectUnreadBody(ctx)
		return uploadTooLarge("the session's size of "+strconv.FormatInt(size, 10)+
			" bytes is above the maximum upload size of "+strconv.FormatInt(s.opts.MaxUploadSize, 10)+" bytes", -1)
	}
	if ss.finished() {
		return finishedPatch(ctx, offset, size)
	}

	locked, apiErr := ss.lock()
	if apiErr == nil && !locked {
		apiErr = sessionLocked()
	}
	if apiErr != nil {
		rejectUnreadBody(ctx)
		return apiErr
	}
	if ss.finished() {
		return finishedPatch(ctx, offset, size)
	}
	return s.appendToSession(ctx, entry, ss, offset)
}

func sessionLocked() *apiError {
	return &apiError{
		status: fasthttp.StatusLocked,
		typ:    typeUploadLocked,
		title:  "Upload session is locked",
		msg:    "another request of this session is in progress; retry after it ends",
	}
}

// finishedPatch responds to a PATCH of a session whose file is complete. An
// empty PATCH at the final offset (a retried last request whose response was
// lost) succeeds. Any other offset is a conflict, as on an open session, so
// no response reports bytes as stored that were not.
func finishedPatch(ctx *fasthttp.RequestCtx, offset, size int64) *apiError {
	rejectUnreadBody(ctx)
	if offset != size {
		return offsetMismatch(offset, size)
	}
	setSessionHeaders(ctx, size, size)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

func offsetMismatch(offset, durable int64) *apiError {
	return (&apiError{
		status: fasthttp.StatusConflict,
		typ:    typeOffsetMismatch,
		title:  "Upload offset mismatch",
		msg:    "Upload-Offset " + strconv.FormatInt(offset, 10) + " does not match the stored offset " + strconv.FormatInt(durable, 10),
	}).withOffset(durable)
}

// appendToSession runs a locked PATCH: offset and size checks, the body
// copy, the flush and, once the size is reached, finalization.
func (s *Server) appendToSession(ctx *fasthttp.RequestCtx, entry *accessEntry, ss *session, offset int64) *apiError {
	size := ss.claims.Size
	durable, apiErr := ss.durableOffset()
	if apiErr != nil {
		rejectUnreadBody(ctx)
		return apiErr
	}
	if offset != durable {
		rejectUnreadBody(ctx)
		return offsetMismatch(offset, durable)
	}
	remaining := size - durable
	contentLength := int64(ctx.Request.Header.ContentLength())
	if contentLength > remaining {
		rejectUnreadBody(ctx)
		return uploadTooLarge("the body of "+strconv.FormatInt(contentLength, 10)+" bytes is longer than the "+
			strconv.FormatInt(remaining, 10)+" bytes left in the session", durable)
	}
	if apiErr := s.checkTargetPath(ss); apiErr != nil {
		rejectUnreadBody(ctx)
		return apiErr
	}

	end, apiErr := s.receiveBody(ctx, ss, durable, remaining, contentLength)
	entry.received = end - durable
	if apiErr != nil {
		rejectUnreadBody(ctx)
		return apiErr
	}
	if end == size {
		if apiErr := ss.finalize(); apiErr != nil {
			return apiErr.withOffset(end)
		}
	}
	setSessionHeaders(ctx, end, size)
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// checkTargetPath rejects, before any byte is written, a target whose
// existing directories escape the vfolder through a symlink or include a
// file where a directory must be, and a target that is a directory.
func (s *Server) checkTargetPath(ss *session) *apiError {
	vfolder, err := openVFolder(ss.mount, ss.claims.VFID)
	if err != nil {
		if isNotFound(err) {
			return vfolderNotFound(err)
		}
		return unavailable("cannot open the vfolder", err)
	}
	defer vfolder.Close()
	parent, apiErr := openTargetParent(vfolder, path.Dir(ss.target), false)
	if apiErr != nil || parent == nil {
		return apiErr
	}
	defer parent.Close()
	return checkTargetNotDir(parent, path.Base(ss.target))
}

func uploadTooLarge(msg string, offset int64) *apiError {
	e := &apiError{
		status: fasthttp.StatusRequestEntityTooLarge,
		typ:    typeUploadTooLarge,
		title:  "Upload too large",
		msg:    msg,
	}
	if offset >= 0 {
		e = e.withOffset(offset)
	}
	return e
}

// parseUploadOffset reads the required Upload-Offset header: a
// non-negative decimal integer.
func parseUploadOffset(ctx *fasthttp.RequestCtx) (int64, *apiError) {
	value := ctx.Request.Header.Peek("Upload-Offset")
	if value == nil {
		return 0, invalidParams("Upload-Offset", "header is required")
	}
	n, ok := parseDigits(strings.TrimSpace(string(value)))
	if !ok {
		return 0, invalidParams("Upload-Offset", "value is not a non-negative integer")
	}
	return n, nil
}

// checkPatchContentType requires the tus media type of PATCH bodies.
func checkPatchContentType(ctx *fasthttp.RequestCtx) *apiError {
	mediaType, _, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType()))
	if err == nil && mediaType == "application/offset+octet-stream" {
		return nil
	}
	return &apiError{
		status: fasthttp.StatusUnsupportedMediaType,
		typ:    typeUnsupportedMedia,
		title:  "Unsupported Media Type",
		msg:    "PATCH bodies must have Content-Type: application/offset+octet-stream",
	}
}

// rejectUnreadBody marks a response decided before the request body was
// read: the connection closes after the response instead of reading a body
// of any size. The close lingers, so a client still sending receives the
// response rather than a reset.
func rejectUnreadBody(ctx *fasthttp.RequestCtx) {
	if ctx.Request.Header.ContentLength() == 0 {
		return
	}
	ctx.SetConnectionClose()
	requestLinger(ctx.Conn())
}
