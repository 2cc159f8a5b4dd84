package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"github.com/bai-storage/storage-proxy/control/beneath"
)

// The kinds of failure a caller branches on. Volume methods return them
// wrapped in an *Error, so errors.Is(err, ErrVFolderNotFound) works.
var (
	ErrVFolderNotFound     = errors.New("vfolder not found")
	ErrQuotaScopeNotFound  = errors.New("quota scope not found")
	ErrFileNotFound        = errors.New("file not found")
	ErrVFolderExists       = errors.New("vfolder already exists")
	ErrQuotaScopeExists    = errors.New("quota scope already exists")
	ErrInvalidPath         = errors.New("invalid path")
	ErrInvalidArgument     = errors.New("invalid argument")
	ErrUnsupported         = errors.New("operation not supported by the storage backend")
	ErrUnavailable         = errors.New("volume unavailable")
	ErrInsufficientStorage = errors.New("insufficient storage")
)

// Error is a typed failure of a Volume method.
type Error struct {
	// Kind is one of the Err* values of this package.
	Kind error
	// Msg is the client-facing message. It names paths only relative to
	// the vfolder and never contains the cause.
	Msg string
	// Field names the request parameter at fault, if one is.
	Field string
	// Err is the cause, for logs only.
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Msg
	}
	return e.Msg + ": " + e.Err.Error()
}

// Is reports whether target is the error's Kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// FSError is a file system failure on paths inside a vfolder. It is the
// {"msg", "errno", "paths"} body of the manager API.
type FSError struct {
	// Errno is the failed call's errno, or 0 when the failure has none
	// (the body then carries "errno": null).
	Errno syscall.Errno
	// Msg is the strerror(3) text of Errno, or a message when Errno is 0.
	Msg string
	// Paths are the paths involved, relative to the vfolder root.
	Paths []string
	// Err is the cause, for logs only.
	Err error
}

func (e *FSError) Error() string {
	s := fmt.Sprintf("%s (errno %d, paths %q)", e.Msg, int(e.Errno), e.Paths)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *FSError) Unwrap() error { return e.Err }

func newError(kind error, field, msg string, cause error) *Error {
	return &Error{Kind: kind, Field: field, Msg: msg, Err: cause}
}

// invalidPath reports a relpath that escapes its vfolder or that no file
// can have. field names the request parameter.
func invalidPath(field, rel string, cause error) *Error {
	reason := "it escapes the vfolder"
	if errors.Is(cause, beneath.ErrInvalid) {
		reason = "it contains a NUL byte or invalid UTF-8, or is too long"
	}
	return newError(ErrInvalidPath, field, fmt.Sprintf("invalid path %q: %s", truncate(rel), reason), cause)
}

// pathError turns the error of a file system call on the vfolder path rel
// into the error a Volume method returns: ErrInvalidPath for an escape,
// ErrInsufficientStorage for a full disk or quota, and otherwise an
// *FSError naming rel.
func pathError(field, rel string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, beneath.ErrEscape) || errors.Is(err, beneath.ErrInvalid) {
		return invalidPath(field, rel, err)
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		var typed *Error
		var fsErr *FSError
		if errors.As(err, &typed) || errors.As(err, &fsErr) {
			return err
		}
		return &FSError{Msg: "file system operation failed", Paths: []string{rel}, Err: err}
	}
	if errno == syscall.ENOSPC || errno == syscall.EDQUOT {
		return newError(ErrInsufficientStorage, "", "not enough space left on the volume or in the quota", err)
	}
	return &FSError{Errno: errno, Msg: strerror(errno), Paths: []string{rel}, Err: err}
}

// strerror returns the C library's text for errno ("No such file or
// directory"), which is what upstream's Python puts into "msg".
func strerror(errno syscall.Errno) string {
	s := errno.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

// isNotExist reports whether err means that a path component is missing or
// is not what the call expected, so the path does not name an existing
// directory.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errnoOf(err) == syscall.ENOTDIR
}

// truncate shortens a client-supplied path for messages, so a 4 KiB path
// does not fill the response.
func truncate(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
