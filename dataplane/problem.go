package dataplane

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// problemTypePrefix starts every problem type URI of the storage proxy.
const problemTypePrefix = "https://api.backend.ai/probs/storage/"

// Problem types of the client API. The first three and their titles are
// upstream 24.09's, and the volume and vfolder ones are newer upstream's.
// The others are this proxy's, for the tus checks that upstream does not
// make.
const (
	typeInvalidParams   = problemTypePrefix + "invalid-api-params"
	typeFileNotFound    = problemTypePrefix + "file-not-found"
	typeNoSuchSession   = problemTypePrefix + "no-such-upload-session"
	typeInvalidVolume   = problemTypePrefix + "volume/invalid"
	typeVFolderNotFound = problemTypePrefix + "vfolder/not-found"

	typeOffsetMismatch   = problemTypePrefix + "upload-offset-mismatch"
	typeUploadTooLarge   = problemTypePrefix + "upload-too-large"
	typeUnsupportedMedia = problemTypePrefix + "unsupported-media-type"
	typeUploadLocked     = problemTypePrefix + "upload-locked"
	typeUploadTimeout    = problemTypePrefix + "upload-timeout"
	typeTargetConflict   = problemTypePrefix + "upload-target-conflict"
	typeInsufficientDisk = problemTypePrefix + "insufficient-storage"
	typeUnavailable      = problemTypePrefix + "temporarily-unavailable"
)

// retryAfterSeconds is the Retry-After value of 503 responses: long enough
// for a briefly overloaded or remounting file system, short enough that a
// tus client resumes soon.
const retryAfterSeconds = 5

// apiError is an error response for the client: a status, a problem type
// and title, and an optional message and data object. Handlers return it
// and writeProblem renders it once. The raw cause goes to the log only.
type apiError struct {
	status int
	typ    string
	title  string
	msg    string
	data   any

	// offset, when hasOffset is set, is sent as Upload-Offset (tus error
	// responses carry it on 408, 409, 413, 423, 503 and 507).
	offset    int64
	hasOffset bool

	// cause is the underlying error, logged but never sent.
	cause error
}

func (e *apiError) Error() string {
	s := strconv.Itoa(e.status) + " " + e.title
	if e.msg != "" {
		s += ": " + e.msg
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *apiError) Unwrap() error { return e.cause }

// withOffset returns e with the Upload-Offset header value set.
func (e *apiError) withOffset(off int64) *apiError {
	e.offset, e.hasOffset = off, true
	if e.data == nil {
		e.data = map[string]int64{"upload_offset": off}
	}
	return e
}

// invalidParams is the 400 of upstream's schema validation: data maps the
// field name onto its message, or onto a nested object.
func invalidParams(field string, value any) *apiError {
	return &apiError{
		status: fasthttp.StatusBadRequest,
		typ:    typeInvalidParams,
		title:  "Invalid API parameters",
		data:   map[string]any{field: value},
	}
}

func fileNotFound(cause error) *apiError {
	return &apiError{status: fasthttp.StatusNotFound, typ: typeFileNotFound, title: "File not found", cause: cause}
}

// notRegularFile is the 400 for a download of something that is neither a
// regular file nor, with archive set, a directory. Upstream put the message
// into the type URI; this is the corrected body.
func notRegularFile() *apiError {
	return &apiError{
		status: fasthttp.StatusBadRequest,
		typ:    typeInvalidParams,
		title:  "Invalid API parameters (The file is not a regular file.)",
	}
}

func noSuchSession() *apiError {
	return &apiError{status: fasthttp.StatusNotFound, typ: typeNoSuchSession, title: "No such upload session"}
}

func invalidVolume(name string) *apiError {
	return &apiError{
		status: fasthttp.StatusBadRequest,
		typ:    typeInvalidVolume,
		title:  "Invalid Volume",
		msg:    "volume " + strconv.Quote(name) + " is not configured on this storage proxy",
	}
}

func vfolderNotFound(cause error) *apiError {
	return &apiError{status: fasthttp.StatusNotFound, typ: typeVFolderNotFound, title: "VFolder Not Found", cause: cause}
}

// unavailable is the 503 for a server-side failure that a retry may clear.
// Clients must resume, not restart, so it is never reported as 404.
func unavailable(msg string, cause error) *apiError {
	return &apiError{
		status: fasthttp.StatusServiceUnavailable,
		typ:    typeUnavailable,
		title:  "Service temporarily unavailable",
		msg:    msg,
		cause:  cause,
	}
}

// isNoSpace reports whether err is the file system or the quota running out.
func isNoSpace(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// problemBody is the JSON shape of a problem+json response.
type problemBody struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	Msg   string `json:"msg,omitempty"`
	Data  any    `json:"data,omitempty"`
}

// writeProblem sets e as the response: status, problem+json body and, for
// 503, Retry-After. Headers already set (CORS, tus) are kept.
func writeProblem(ctx *fasthttp.RequestCtx, e *apiError) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(e.status)
	if e.hasOffset {
		ctx.Response.Header.Set("Upload-Offset", strconv.FormatInt(e.offset, 10))
	}
	if e.status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	body, err := json.Marshal(problemBody{Type: e.typ, Title: e.title, Msg: e.msg, Data: e.data})
	if err != nil {
		// Only a data value that JSON cannot encode gets here; drop it.
		body, _ = json.Marshal(problemBody{Type: e.typ, Title: e.title, Msg: e.msg})
	}
	ctx.SetContentType("application/problem+json")
	ctx.SetBody(body)
}

// writeText sets a plain-text response in upstream's "<status>: <reason>" form.
func writeText(ctx *fasthttp.RequestCtx, status int, text string) {
	ctx.Response.ResetBody()
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(text)
}
