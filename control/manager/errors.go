package manager

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/bai-storage/storage-proxy/control/volume"
)

// problemTypePrefix starts the "type" URI of every problem+json body.
const problemTypePrefix = "https://api.backend.ai/probs/storage/"

// retryAfterSeconds is the Retry-After of a 503 response for an unavailable
// volume: long enough for an operator to notice, short enough for the
// manager's next attempt to see a remounted volume.
const retryAfterSeconds = 30

// apiError is an error response of the manager API, the only error type that
// reaches the HTTP edge. Handlers and volumes return other errors, which
// translate turns into an apiError once.
type apiError struct {
	status int
	// code is the problem type after problemTypePrefix. When it is empty,
	// body is sent as application/json instead of a problem.
	code  string
	title string
	msg   string
	data  any
	// body is a route-specific application/json body.
	body map[string]any
	// retryAfter, in seconds, sets Retry-After when positive.
	retryAfter int
	// cause is logged, never sent.
	cause error
}

func (e *apiError) Error() string {
	s := strconv.Itoa(e.status) + " " + e.code + ": " + e.msg
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *apiError) Unwrap() error { return e.cause }

// translate maps an error of a handler or a volume to its response.
func translate(err error) *apiError {
	var api *apiError
	if errors.As(err, &api) {
		return api
	}
	var fsErr *volume.FSError
	if errors.As(err, &fsErr) {
		return fsErrorResponse(fsErr)
	}
	var typed *volume.Error
	if errors.As(err, &typed) {
		return typedErrorResponse(typed)
	}
	return &apiError{status: http.StatusInternalServerError, code: "generic", title: "Storage Proxy Error",
		msg: "internal error in the storage proxy; its log has the details", cause: err}
}

// fsErrorResponse is upstream's fs-errors body: 400 application/json
// {"msg", "errno", "paths"}, with an errno of 0 sent as null.
func fsErrorResponse(e *volume.FSError) *apiError {
	var errno any
	if e.Errno != 0 {
		errno = int(e.Errno)
	}
	paths := e.Paths
	if paths == nil {
		paths = []string{}
	}
	return &apiError{status: http.StatusBadRequest, msg: e.Msg, cause: e,
		body: map[string]any{"msg": e.Msg, "errno": errno, "paths": paths}}
}

func typedErrorResponse(e *volume.Error) *apiError {
	resp := &apiError{msg: e.Msg, cause: e}
	if e.Field != "" {
		resp.data = map[string]any{e.Field: e.Msg}
	}
	switch {
	case errors.Is(e, volume.ErrVFolderNotFound):
		resp.status, resp.code, resp.title = http.StatusNotFound, "vfolder/not-found", "VFolder Not Found"
	case errors.Is(e, volume.ErrQuotaScopeNotFound):
		resp.status, resp.code, resp.title = http.StatusNotFound, "quota/scope/not-found", "Quota Scope Not Found"
	case errors.Is(e, volume.ErrFileNotFound):
		resp.status, resp.code, resp.title = http.StatusNotFound, "file-not-found", "File not found"
	case errors.Is(e, volume.ErrVFolderExists):
		resp.status, resp.code, resp.title = http.StatusConflict, "vfolder/already-exists", "VFolder Already Exists"
	case errors.Is(e, volume.ErrQuotaScopeExists):
		resp.status, resp.code, resp.title = http.StatusConflict, "quota/scope/already-exists", "Quota Scope Already Exists"
		resp.msg = "Volume already exists with given quota scope."
	case errors.Is(e, volume.ErrInvalidPath):
		resp.status, resp.code, resp.title = http.StatusBadRequest, "subpath/invalid", "Invalid Subpath"
	case errors.Is(e, volume.ErrInvalidArgument):
		resp.status, resp.code, resp.title = http.StatusBadRequest, "invalid-api-params", "Invalid API parameters"
	case errors.Is(e, volume.ErrUnsupported):
		resp.status, resp.code, resp.title = http.StatusBadRequest, "unsupported-operation", "Unsupported operation by the storage backend"
	case errors.Is(e, volume.ErrUnavailable):
		resp.status, resp.code, resp.title = http.StatusServiceUnavailable, "volume/unavailable", "Volume Unavailable"
		resp.retryAfter = retryAfterSeconds
	case errors.Is(e, volume.ErrInsufficientStorage):
		resp.status, resp.code, resp.title = http.StatusInsufficientStorage, "insufficient-storage", "Insufficient Storage"
	default:
		resp.status, resp.code, resp.title = http.StatusInternalServerError, "generic", "Storage Proxy Error"
	}
	return resp
}

// writeError sends the response for err and logs it: server-side failures at
// ERROR with their cause, client errors at INFO. A request whose client
// went away gets no response and no error record.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, name string, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		s.log.Debug("client closed the connection before the response", "api", name)
		return
	}
	resp := translate(err)
	attrs := []any{"api", name, "status", resp.status, "error", err}
	if resp.status >= 500 {
		s.log.Error("manager API call failed", attrs...)
	} else {
		s.log.Info("manager API call rejected", attrs...)
	}
	writeErrorResponse(w, resp)
}

func writeErrorResponse(w http.ResponseWriter, resp *apiError) {
	if resp.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(resp.retryAfter))
	}
	if resp.code == "" {
		writeJSON(w, resp.status, resp.body)
		return
	}
	problem := map[string]any{
		"type":  problemTypePrefix + resp.code,
		"title": resp.title,
		"msg":   resp.msg,
	}
	if resp.data != nil {
		problem["data"] = resp.data
	}
	writeBody(w, resp.status, "application/problem+json", problem)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json; charset=utf-8", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Unreachable: only maps of strings, numbers, booleans and slices of
		// them, built in this package, are encoded.
		status, body = http.StatusInternalServerError, []byte(`{"msg":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// logAttrs returns slog attributes of a call for one log record.
func logAttrs(pairs ...string) []any {
	attrs := make([]any, 0, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		attrs = append(attrs, slog.String(pairs[i], pairs[i+1]))
	}
	return attrs
}
