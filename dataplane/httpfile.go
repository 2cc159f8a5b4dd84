package dataplane

import (
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

// fileMeta holds the size and validators of a downloaded file.
type fileMeta struct {
	size    int64
	modTime time.Time
	etag    string // strong, with quotes
}

// newFileMeta derives the validators from st. The ETag hashes device,
// inode, size and mtime in nanoseconds, so a file rewritten within the same
// second, or swapped for another of the same size, gets a new ETag.
func newFileMeta(st *unix.Stat_t) fileMeta {
	var b [32]byte
	binary.LittleEndian.PutUint64(b[0:], st.Dev)
	binary.LittleEndian.PutUint64(b[8:], st.Ino)
	binary.LittleEndian.PutUint64(b[16:], uint64(st.Size))
	mtime := time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	binary.LittleEndian.PutUint64(b[24:], uint64(mtime.UnixNano()))
	return fileMeta{
		size:    st.Size,
		modTime: mtime,
		etag:    `"` + strconv.FormatUint(xxhash.Sum64(b[:]), 16) + `"`,
	}
}

// lastModified returns the Last-Modified value: RFC 1123 in GMT.
func (m fileMeta) lastModified() string { return m.modTime.UTC().Format(http.TimeFormat) }

// byteRange is a satisfiable range [start, start+length).
type byteRange struct {
	start, length int64
}

// rangeOutcome is the kind of response that a Range header selects.
type rangeOutcome int

const (
	rangeFull          rangeOutcome = iota // no usable Range: send the whole file
	rangePartial                           // one satisfiable range: 206
	rangeUnsatisfiable                     // 416
)

// parseRange interprets a Range header for a file of size bytes (RFC 9110
// section 14). Only one range of unit "bytes" is honoured. A header that is
// malformed, names another unit, or lists several ranges is ignored, which
// RFC 9110 allows, so the whole file is sent and no response is larger than
// the file. A zero-length file ignores Range too, because no byte range of
// it exists, and a 200 lets a resuming client finish instead of retrying a
// 416.
func parseRange(header string, size int64) (rangeOutcome, byteRange) {
	if header == "" || size == 0 {
		return rangeFull, byteRange{}
	}
	unit, spec, ok := strings.Cut(header, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return rangeFull, byteRange{}
	}
	spec = strings.TrimSpace(spec)
	if spec == "" || strings.Contains(spec, ",") {
		return rangeFull, byteRange{}
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return rangeFull, byteRange{}
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)

	if first == "" {
		// Suffix range "-n": the last n bytes, or the whole file if n is
		// larger. "-0" selects nothing.
		n, ok := parseDigits(last)
		if !ok {
			return rangeFull, byteRange{}
		}
		if n == 0 {
			return rangeUnsatisfiable, byteRange{}
		}
		n = min(n, size)
		return rangePartial, byteRange{start: size - n, length: n}
	}

	start, ok := parseDigits(first)
	if !ok {
		return rangeFull, byteRange{}
	}
	end := size - 1
	if last != "" {
		e, ok := parseDigits(last)
		if !ok || e < start {
			return rangeFull, byteRange{}
		}
		end = min(e, size-1)
	}
	if start >= size {
		return rangeUnsatisfiable, byteRange{}
	}
	return rangePartial, byteRange{start: start, length: end - start + 1}
}

// parseDigits parses a non-empty run of ASCII digits that fits an int64.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// conditionResult is the outcome of the precondition headers.
type conditionResult int

const (
	conditionProceed conditionResult = iota
	conditionNotModified
	conditionFailed
)

// requestConditions holds the precondition headers of a GET or HEAD.
type requestConditions struct {
	ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince, ifRange string
}

// evaluate applies RFC 9110 section 13.2.2 in its order: If-Match, else
// If-Unmodified-Since (412); then If-None-Match, else If-Modified-Since
// (304). Dates compare at one-second resolution, as Last-Modified has.
func (c requestConditions) evaluate(m fileMeta) conditionResult {
	lastMod := m.modTime.Truncate(time.Second)
	if c.ifMatch != "" {
		if !etagListMatches(c.ifMatch, m.etag, true) {
			return conditionFailed
		}
	} else if t, ok := parseHTTPDate(c.ifUnmodifiedSince); ok && lastMod.After(t) {
		return conditionFailed
	}
	if c.ifNoneMatch != "" {
		if etagListMatches(c.ifNoneMatch, m.etag, false) {
			return conditionNotModified
		}
	} else if t, ok := parseHTTPDate(c.ifModifiedSince); ok && !lastMod.After(t) {
		return conditionNotModified
	}
	return conditionProceed
}

// rangeAllowed applies If-Range (RFC 9110 section 13.1.5): the range is
// honoured only if the validator still matches. An entity tag must equal
// the current strong ETag (a weak one never matches). A date must equal
// Last-Modified exactly, and Last-Modified counts as strong only when the
// file is at least a second older than now, because a file changed twice in
// one second keeps its Last-Modified.
func (c requestConditions) rangeAllowed(m fileMeta, now time.Time) bool {
	v := strings.TrimSpace(c.ifRange)
	switch {
	case v == "":
		return true
	case strings.HasPrefix(v, `"`):
		return v == m.etag
	case strings.HasPrefix(v, "W/"):
		return false
	}
	t, ok := parseHTTPDate(v)
	if !ok {
		return false
	}
	lastMod := m.modTime.Truncate(time.Second)
	return t.Equal(lastMod) && now.Sub(m.modTime) >= time.Second
}

// etagListMatches reports whether the If-Match or If-None-Match list
// contains etag or "*". strong selects the strong comparison (If-Match),
// where a weak tag never matches; otherwise W/ prefixes are ignored.
func etagListMatches(list, etag string, strong bool) bool {
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		if strings.HasPrefix(tag, "W/") {
			if strong {
				continue
			}
			tag = tag[2:]
		}
		if tag == etag {
			return true
		}
	}
	return false
}

// parseHTTPDate parses the three date formats of RFC 9110 section 5.6.7.
func parseHTTPDate(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := http.ParseTime(s)
	return t, err == nil
}

// contentDisposition builds upstream's header value for a download named
// name, with this exact spacing:
//
//	attachment;filename="<ascii>"; filename*=UTF-8''<percent-encoded>
//
// The ASCII fallback drops non-ASCII and control characters and escapes `"`
// and `\`. If nothing but dots and spaces is left, it is "download". The
// RFC 5987 form percent-encodes every byte but A-Z a-z 0-9 _ . - ~. Neither
// part can contain CR, LF or any other byte that ends a header.
func contentDisposition(name string) string {
	var ascii strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c < 0x20 || c >= 0x7f:
			continue
		case c == '"' || c == '\\':
			ascii.WriteByte('\\')
		}
		ascii.WriteByte(c)
	}
	fallback := ascii.String()
	if strings.Trim(fallback, ". ") == "" {
		fallback = "download"
	}

	var pct strings.Builder
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isUnreserved(c) {
			pct.WriteByte(c)
			continue
		}
		pct.WriteByte('%')
		pct.WriteByte(hexDigits[c>>4])
		pct.WriteByte(hexDigits[c&0x0f])
	}
	return `attachment;filename="` + fallback + `"; filename*=UTF-8''` + pct.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == '.' || c == '-' || c == '~'
}
