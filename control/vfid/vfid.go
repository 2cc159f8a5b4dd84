// Package vfid parses quota scope ids and vfolder ids and maps them onto the
// vfs on-disk layout:
//
//	<mount>/<qs-hex>/<f0f1>/<f2f3>/<f4…f31>   vfolder inside a quota scope
//	<mount>/<f0f1>/<f2f3>/<f4…f31>            legacy vfolder without a quota scope
//
// where qs-hex is the quota scope's UUID and f the folder's UUID, both as 32
// lowercase hex digits. The scope type is not part of the path, so a user
// and a project with the same UUID share a directory, as upstream does.
//
// This package is shared by the control plane and the data plane; it imports
// nothing from this module.
package vfid

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// ScopeType is the kind of a quota scope.
type ScopeType string

// The quota scope types of the wire contract.
const (
	ScopeUser    ScopeType = "user"
	ScopeProject ScopeType = "project"
)

// UUID is a 128-bit identifier; the zero value is the nil UUID.
type UUID [16]byte

// Hex returns the UUID as 32 lowercase hex digits.
func (u UUID) Hex() string { return hex.EncodeToString(u[:]) }

// String returns the canonical dashed lowercase form.
func (u UUID) String() string {
	h := u.Hex()
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ParseUUID accepts the canonical dashed form (8-4-4-4-12) or 32 hex digits,
// in either case.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := s
	if len(s) == 36 {
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return u, fmt.Errorf("invalid UUID %q", s)
		}
		h = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	}
	if len(h) != 32 {
		return u, fmt.Errorf("invalid UUID %q", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("invalid UUID %q", s)
	}
	return u, nil
}

// QuotaScopeID identifies a quota scope: a user's or a project's directory on
// a volume.
type QuotaScopeID struct {
	Type ScopeType
	UUID UUID
}

// qsidPattern is the shape upstream checks before parsing a qsid.
var qsidPattern = regexp.MustCompile(`^[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*:[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*$`)

// ErrInvalid is wrapped by every parse error of this package.
var ErrInvalid = errors.New("invalid identifier")

// ParseQuotaScopeID parses "<type>:<uuid>" where type is "user" or "project"
// (any case) and uuid is dashed or 32 hex digits.
func ParseQuotaScopeID(s string) (QuotaScopeID, error) {
	var q QuotaScopeID
	if !qsidPattern.MatchString(s) {
		return q, fmt.Errorf("%w: quota scope id %q is not of the form <user|project>:<uuid>", ErrInvalid, s)
	}
	typ, id, _ := strings.Cut(s, ":")
	switch ScopeType(strings.ToLower(typ)) {
	case ScopeUser:
		q.Type = ScopeUser
	case ScopeProject:
		q.Type = ScopeProject
	default:
		return q, fmt.Errorf("%w: quota scope type %q is not \"user\" or \"project\"", ErrInvalid, typ)
	}
	u, err := ParseUUID(id)
	if err != nil {
		return q, fmt.Errorf("%w: quota scope id %q: %v", ErrInvalid, s, err)
	}
	q.UUID = u
	return q, nil
}

// String returns the canonical form, e.g. "user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11".
func (q QuotaScopeID) String() string { return string(q.Type) + ":" + q.UUID.String() }

// PathName returns the quota scope's directory name: the UUID as 32 hex digits.
func (q QuotaScopeID) PathName() string { return q.UUID.Hex() }

// Path returns the quota scope's directory under the volume mount path.
func (q QuotaScopeID) Path(mount string) string { return filepath.Join(mount, q.PathName()) }

// VFolderID identifies a vfolder. QuotaScope is nil for a legacy vfid that
// names only the folder.
type VFolderID struct {
	QuotaScope *QuotaScopeID
	Folder     UUID
}

// Parse parses "<qsid>/<folder-uuid>" or the legacy "<folder-uuid>".
func Parse(s string) (VFolderID, error) {
	var v VFolderID
	qs, folder, found := strings.Cut(s, "/")
	if !found {
		folder = qs
	} else {
		q, err := ParseQuotaScopeID(qs)
		if err != nil {
			return v, err
		}
		v.QuotaScope = &q
	}
	u, err := ParseUUID(folder)
	if err != nil {
		return v, fmt.Errorf("%w: vfolder id %q: %v", ErrInvalid, s, err)
	}
	v.Folder = u
	return v, nil
}

// String returns the canonical form: "<canonical qsid>/<32 hex>", or the 32
// hex digits alone for a legacy vfid.
func (v VFolderID) String() string {
	if v.QuotaScope == nil {
		return v.Folder.Hex()
	}
	return v.QuotaScope.String() + "/" + v.Folder.Hex()
}

// QuotaScopePath returns the directory of the vfolder's quota scope, or the
// mount path itself for a legacy vfid.
func (v VFolderID) QuotaScopePath(mount string) string {
	if v.QuotaScope == nil {
		return mount
	}
	return v.QuotaScope.Path(mount)
}

// Path returns the vfolder's directory: <quota scope path>/aa/bb/rest.
func (v VFolderID) Path(mount string) string {
	h := v.Folder.Hex()
	return filepath.Join(v.QuotaScopePath(mount), h[0:2], h[2:4], h[4:])
}

// StagingDir returns the directory that holds the partial files of uploads
// into this vfolder. It lies in the quota scope directory, outside every
// vfolder's tree but on the same filesystem, so the final rename is atomic
// and a user's file named ".upload" does not interfere.
func (v VFolderID) StagingDir(mount string) string {
	return filepath.Join(v.QuotaScopePath(mount), StagingDirName)
}

// Names of the proxy's own directories inside a quota scope directory (or the
// mount path, for the legacy layout). None of them can collide with a vfolder
// directory, whose first level is two hex digits.
const (
	StagingDirName = ".upload"
	TrashDirName   = ".trash"
	CloneDirName   = ".clone"
)
