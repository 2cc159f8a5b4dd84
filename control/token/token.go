// Package token mints and verifies the session tokens of the client API: the
// HS256 JWTs that the manager API hands out for one download or one upload
// session, and that clients present as the `token` query parameter.
//
// Only HS256 is accepted, every token must carry `exp`, and the claims are
// checked against the same schema as upstream 24.09: `op`, `volume`, `vfid`,
// `relpath`, plus `size` and `session` for uploads and `archive` and
// `unmanaged_path` for downloads. Extra claims are ignored.
//
// This package is shared by the control plane (minting) and the data plane
// (verifying); it imports only control/vfid from this module.
package token

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

// Operation names carried in the `op` claim.
const (
	OpDownload = "download"
	OpUpload   = "upload"
)

// Download holds the claims of a download token.
type Download struct {
	Volume  string
	VFID    vfid.VFolderID
	Relpath string
	// Archive requests a directory streamed as a ZIP.
	Archive bool
	// UnmanagedPath, when non-empty, is an absolute directory used in place
	// of the vfolder. Only the manager can put it into a token.
	UnmanagedPath string
	Expires       time.Time
}

// Upload holds the claims of an upload token.
type Upload struct {
	Volume  string
	VFID    vfid.VFolderID
	Relpath string
	// Size is the total number of bytes the session will receive.
	Size int64
	// Session is the 32-hex-digit session id, the partial file's name.
	Session string
	Expires time.Time
}

// sessionPattern is the shape of a session id minted by this proxy. It keeps
// a token's session claim from naming any other file.
var sessionPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Error is a token that failed verification. Reason is set for a token that
// could not be decoded or whose signature or expiry is wrong; Fields is set
// for a token whose claims do not match the schema, keyed by claim name.
type Error struct {
	// Missing is set when the request carried no token at all.
	Missing bool
	Reason  string
	Fields  map[string]string
}

func (e *Error) Error() string {
	if e.Missing {
		return "token is required"
	}
	if e.Reason != "" {
		return "cannot decode the given value as JWT: " + e.Reason
	}
	b, _ := json.Marshal(e.Fields)
	return "invalid token claims: " + string(b)
}

// Data returns the value that goes under "token" in the problem+json `data`
// object: a string for decoding failures, an object for claim failures.
func (e *Error) Data() any {
	if e.Missing {
		return "is required"
	}
	if e.Reason != "" {
		return e.Error()
	}
	return e.Fields
}

// MintDownload signs a download token.
func MintDownload(secret []byte, d Download) (string, error) {
	claims := jwt.MapClaims{
		"op":      OpDownload,
		"volume":  d.Volume,
		"vfid":    d.VFID.String(),
		"relpath": d.Relpath,
		"archive": d.Archive,
		"exp":     d.Expires.Unix(),
	}
	if d.UnmanagedPath != "" {
		claims["unmanaged_path"] = d.UnmanagedPath
	} else {
		claims["unmanaged_path"] = nil
	}
	return sign(secret, claims)
}

// MintUpload signs an upload token.
func MintUpload(secret []byte, u Upload) (string, error) {
	if !sessionPattern.MatchString(u.Session) {
		return "", fmt.Errorf("mint upload token: session id %q is not 32 lowercase hex digits", u.Session)
	}
	return sign(secret, jwt.MapClaims{
		"op":      OpUpload,
		"volume":  u.Volume,
		"vfid":    u.VFID.String(),
		"relpath": u.Relpath,
		"size":    u.Size,
		"session": u.Session,
		"exp":     u.Expires.Unix(),
	})
}

func sign(secret []byte, claims jwt.MapClaims) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("mint token: empty secret")
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	return s, nil
}

// VerifyDownload checks a download token's signature, expiry and claims at
// time now. A failure is always an *Error.
func VerifyDownload(secret []byte, tok string, now time.Time) (Download, error) {
	var d Download
	claims, err := parse(secret, tok, now)
	if err != nil {
		return d, err
	}

	fields := map[string]string{}
	checkOp(claims, OpDownload, fields)
	d.Volume = nonEmptyString(claims, "volume", fields)
	d.VFID = vfolderID(claims, fields)
	d.Relpath = nonEmptyString(claims, "relpath", fields)
	if v, ok := claims["archive"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			fields["archive"] = "value is not a boolean"
		}
		d.Archive = b
	}
	if v, ok := claims["unmanaged_path"]; ok && v != nil {
		s, isString := v.(string)
		if !isString {
			fields["unmanaged_path"] = "value is not a string or null"
		}
		d.UnmanagedPath = s
	}
	d.Expires = expiry(claims)
	if len(fields) > 0 {
		return d, &Error{Fields: fields}
	}
	return d, nil
}

// VerifyUpload checks an upload token's signature, expiry and claims at time
// now. A failure is always an *Error.
func VerifyUpload(secret []byte, tok string, now time.Time) (Upload, error) {
	var u Upload
	claims, err := parse(secret, tok, now)
	if err != nil {
		return u, err
	}

	fields := map[string]string{}
	checkOp(claims, OpUpload, fields)
	u.Volume = nonEmptyString(claims, "volume", fields)
	u.VFID = vfolderID(claims, fields)
	u.Relpath = nonEmptyString(claims, "relpath", fields)
	u.Session = nonEmptyString(claims, "session", fields)
	if u.Session != "" && !sessionPattern.MatchString(u.Session) {
		fields["session"] = "value is not a session id"
	}
	switch v := claims["size"].(type) {
	case float64:
		if v != math.Trunc(v) || v < 0 || v > math.MaxInt64/2 {
			fields["size"] = "value is not a non-negative integer"
		}
		u.Size = int64(v)
	case nil:
		fields["size"] = "is required"
	default:
		fields["size"] = "value is not a non-negative integer"
	}
	u.Expires = expiry(claims)
	if len(fields) > 0 {
		return u, &Error{Fields: fields}
	}
	return u, nil
}

func parse(secret []byte, tok string, now time.Time) (jwt.MapClaims, error) {
	if tok == "" {
		return nil, &Error{Missing: true}
	}
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	parsed, err := parser.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		// jwt reports a disallowed alg as an invalid signature. Upstream's
		// PyJWT names the alg, which is more useful to the client.
		if parsed != nil && parsed.Header["alg"] != jwt.SigningMethodHS256.Alg() {
			return nil, &Error{Reason: "The specified alg value is not allowed"}
		}
		return nil, &Error{Reason: reason(err)}
	}
	return claims, nil
}

// reason turns a jwt error into the short reason upstream's PyJWT reports,
// so clients that match on it keep working.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "Signature has expired"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "Signature verification failed"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return `Token is missing the "exp" claim`
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "The token is not yet valid (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "The token is not yet valid (iat)"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "Invalid token: " + err.Error()
	default:
		return err.Error()
	}
}

func checkOp(claims jwt.MapClaims, want string, fields map[string]string) {
	if op, _ := claims["op"].(string); op != want {
		fields["op"] = fmt.Sprintf("value is not exactly '%s'", want)
	}
}

func nonEmptyString(claims jwt.MapClaims, key string, fields map[string]string) string {
	v, ok := claims[key]
	if !ok || v == nil {
		fields[key] = "is required"
		return ""
	}
	s, isString := v.(string)
	if !isString || s == "" {
		fields[key] = "value is not a non-empty string"
		return ""
	}
	return s
}

func vfolderID(claims jwt.MapClaims, fields map[string]string) vfid.VFolderID {
	s := nonEmptyString(claims, "vfid", fields)
	if s == "" {
		return vfid.VFolderID{}
	}
	v, err := vfid.Parse(s)
	if err != nil {
		fields["vfid"] = err.Error()
	}
	return v
}

func expiry(claims jwt.MapClaims) time.Time {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}
	}
	return exp.Time
}
