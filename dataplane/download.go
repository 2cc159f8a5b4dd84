package dataplane

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/beneath"
	"github.com/bai-storage/storage-proxy/control/token"
)

// serveDownload handles /download: GET and HEAD of a file or, with
// archive, a directory as a ZIP; OPTIONS is the CORS preflight.
func (s *Server) serveDownload(ctx *fasthttp.RequestCtx, entry *accessEntry) {
	switch {
	case ctx.IsOptions():
		servePreflight(ctx)
		return
	case ctx.IsGet(), ctx.IsHead():
	default:
		methodNotAllowed(ctx, "GET, HEAD, OPTIONS")
		addCORS(ctx)
		return
	}
	if err := s.download(ctx, entry); err != nil {
		s.logAPIError(ctx, err)
		if err.status == fasthttp.StatusForbidden {
			writeText(ctx, err.status, "")
		} else {
			writeProblem(ctx, err)
		}
	}
	addCORS(ctx)
}

// downloadParams are the query parameters of /download after validation.
type downloadParams struct {
	claims  token.Download
	dstDir  string
	archive bool
	noCache bool
}

func (s *Server) parseDownloadParams(args *fasthttp.Args) (downloadParams, *apiError) {
	var p downloadParams
	if len(args.Peek("token")) == 0 {
		return p, invalidParams("token", "is required")
	}
	claims, err := s.downloadTokens.verify(s.opts.TokenSecret, args.Peek("token"), time.Now())
	if err != nil {
		return p, tokenError(err)
	}
	p.claims = claims
	if args.Has("dst_dir") {
		p.dstDir = string(args.Peek("dst_dir"))
		if p.dstDir == "" {
			return p, invalidParams("dst_dir", "value is not a non-empty string")
		}
	}
	var ok bool
	if p.archive, ok = queryBool(args, "archive"); !ok {
		return p, invalidParams("archive", "value is not a boolean")
	}
	if p.noCache, ok = queryBool(args, "no_cache"); !ok {
		return p, invalidParams("no_cache", "value is not a boolean")
	}
	p.archive = p.archive || claims.Archive
	return p, nil
}

// tokenError turns a token verification failure into the 400 whose data
// carries the failure under "token".
func tokenError(err error) *apiError {
	var te *token.Error
	if errors.As(err, &te) {
		return invalidParams("token", te.Data())
	}
	return invalidParams("token", err.Error())
}

// queryBool parses an optional boolean query parameter with upstream's
// ToBool words. A missing parameter is false; ok is false for any other
// word.
func queryBool(args *fasthttp.Args, key string) (value, ok bool) {
	if !args.Has(key) {
		return false, true
	}
	switch strings.ToLower(string(args.Peek(key))) {
	case "t", "true", "y", "yes", "on", "1", "1.0":
		return true, true
	case "false", "n", "no", "off", "0", "none", "0.0":
		return false, true
	}
	return false, false
}

func (s *Server) download(ctx *fasthttp.RequestCtx, entry *accessEntry) *apiError {
	p, apiErr := s.parseDownloadParams(ctx.QueryArgs())
	if apiErr != nil {
		return apiErr
	}
	base, baseName, apiErr := s.openDownloadBase(p.claims)
	if apiErr != nil {
		return apiErr
	}
	defer base.Close()

	rel, err := joinClientPath(p.dstDir, p.claims.Relpath)
	if err != nil {
		return fileNotFound(err)
	}
	f, err := base.OpenFile(rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	switch {
	case err == nil:
	case isNotFound(err):
		return fileNotFound(err)
	case errors.Is(err, fs.ErrPermission):
		return &apiError{status: fasthttp.StatusForbidden, cause: err}
	default:
		return unavailable("cannot open the file", err)
	}

	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return unavailable("cannot stat the file", err)
	}
	name := baseName
	if rel != "." {
		name = path.Base(rel)
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFREG:
		s.serveFile(ctx, entry, f, &st, name, p.noCache)
		return nil
	case st.Mode&unix.S_IFMT == unix.S_IFDIR && p.archive:
		s.serveArchive(ctx, entry, f, name, p.noCache)
		return nil
	default:
		f.Close()
		return notRegularFile()
	}
}

// openDownloadBase opens the directory that the token's paths are relative
// to: the token's unmanaged_path if set, else the vfolder. It also returns
// that directory's own name, which names a download of its root.
func (s *Server) openDownloadBase(claims token.Download) (*beneath.Dir, string, *apiError) {
	mountPath, ok := s.opts.Volumes[claims.Volume]
	if !ok {
		return nil, "", invalidVolume(claims.Volume)
	}
	if claims.UnmanagedPath != "" {
		if !filepath.IsAbs(claims.UnmanagedPath) {
			return nil, "", invalidParams("token", map[string]string{"unmanaged_path": "value is not an absolute path"})
		}
		d, err := beneath.Open(filepath.Clean(claims.UnmanagedPath))
		if err != nil {
			return nil, "", fileNotFound(err)
		}
		return d, filepath.Base(claims.UnmanagedPath), nil
	}

	mount, err := openMount(mountPath)
	if err != nil {
		return nil, "", unavailable("the volume is not accessible", err)
	}
	defer mount.Close()
	d, err := openVFolder(mount, claims.VFID)
	switch {
	case err == nil:
		return d, path.Base(d.Path()), nil
	case isNotFound(err):
		return nil, "", fileNotFound(err)
	default:
		return nil, "", unavailable("cannot open the vfolder", err)
	}
}

// serveFile serves GET or HEAD of an open regular file: validators,
// conditional requests, one range, and the body by sendfile or copy. It
// owns f from here on.
func (s *Server) serveFile(ctx *fasthttp.RequestCtx, entry *accessEntry, f *os.File, st *unix.Stat_t, name string, noCache bool) {
	meta := newFileMeta(st)
	h := &ctx.Response.Header
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("Last-Modified", meta.lastModified())
	h.Set("ETag", meta.etag)
	h.Set("Accept-Ranges", "bytes")
	if noCache {
		h.Set("Cache-Control", "no-store")
	}

	req := &ctx.Request.Header
	cond := requestConditions{
		ifMatch:           string(req.Peek("If-Match")),
		ifNoneMatch:       string(req.Peek("If-None-Match")),
		ifModifiedSince:   string(req.Peek("If-Modified-Since")),
		ifUnmodifiedSince: string(req.Peek("If-Unmodified-Since")),
		ifRange:           string(req.Peek("If-Range")),
	}
	switch cond.evaluate(meta) {
	case conditionFailed:
		f.Close()
		ctx.SetStatusCode(fasthttp.StatusPreconditionFailed)
		return
	case conditionNotModified:
		f.Close()
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}

	start, length := int64(0), meta.size
	status := fasthttp.StatusOK
	if rangeHeader := string(req.Peek("Range")); rangeHeader != "" && cond.rangeAllowed(meta, time.Now()) {
		outcome, r := parseRange(rangeHeader, meta.size)
		switch outcome {
		case rangeUnsatisfiable:
			f.Close()
			ctx.SetStatusCode(fasthttp.StatusRequestedRangeNotSatisfiable)
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(meta.size, 10))
			return
		case rangePartial:
			start, length = r.start, r.length
			status = fasthttp.StatusPartialContent
			h.Set("Content-Range", "bytes "+strconv.FormatInt(r.start, 10)+"-"+
				strconv.FormatInt(r.start+r.length-1, 10)+"/"+strconv.FormatInt(meta.size, 10))
		}
	}

	ctx.SetStatusCode(status)
	ctx.SetContentType("application/octet-stream")
	if length <= smallBodyLimit && ctx.IsGet() && s.readSmallBody(ctx, f, start, length) {
		return
	}
	body := &fileBody{
		server:   s,
		entry:    entry,
		status:   status,
		file:     f,
		start:    start,
		length:   length,
		conn:     ctx.Conn(),
		sendfile: s.useSendfile(ctx),
	}
	s.requests.Add(1)
	entry.deferred = true
	ctx.SetBodyStream(body, int(length))
}

// smallBodyLimit is the largest download body that is read into the
// response, so the headers and the body leave in one write. Streaming it
// with sendfile under TCP_CORK takes three more system calls, which cost
// more than copying a few KiB.
const smallBodyLimit = 64 << 10

// readSmallBody reads the length bytes at start straight into the
// response's own body buffer and closes f. It returns false and leaves f
// open when the file is shorter than its fstat size, so the streaming body
// reports the short file.
func (s *Server) readSmallBody(ctx *fasthttp.RequestCtx, f *os.File, start, length int64) bool {
	body := slices.Grow(ctx.Response.SwapBody(nil)[:0], int(length))[:length]
	n, _ := f.ReadAt(body, start)
	if int64(n) != length {
		ctx.Response.SwapBody(body[:0])
		return false
	}
	ctx.Response.SwapBody(body)
	f.Close()
	return true
}

// useSendfile reports whether this response can go out by sendfile: the
// configured data path, on a plain TCP connection.
func (s *Server) useSendfile(ctx *fasthttp.RequestCtx) bool {
	_, isTCP := ctx.Conn().(*serverConn)
	return s.opts.DataPath == DataPathSendfile && isTCP
}

// logAPIError logs the cause of an error response: server-side failures at
// WARN, client mistakes at DEBUG.
func (s *Server) logAPIError(ctx *fasthttp.RequestCtx, e *apiError) {
	if e.status >= 500 {
		s.log.Warn("request failed", "method", string(ctx.Method()), "path", string(ctx.Path()),
			"status", e.status, "error", e)
		return
	}
	s.log.Debug("request rejected", "method", string(ctx.Method()), "path", string(ctx.Path()),
		"status", e.status, "error", e)
}
