package volume

import (
	"bytes"
	"encoding/binary"
	"sync"

	"golang.org/x/sys/unix"
)

// direntBufferSize is the getdents64(2) buffer of one open directory. At
// about 32 bytes per short name, one call returns some 2,000 entries.
const direntBufferSize = 64 << 10

// direntBuffers keeps getdents buffers between walks. A reader returns its
// buffer to the pool in release. Names are copied out of the buffer when
// they are parsed, so nothing refers to a released buffer.
var direntBuffers = sync.Pool{New: func() any {
	b := make([]byte, direntBufferSize)
	return &b
}}

// dirent is one directory entry: its name and its d_type (unix.DT_*),
// which is DT_UNKNOWN on file systems that do not fill it in.
type dirent struct {
	name string
	typ  uint8
}

// direntReader reads the entries of an open directory in getdents64 order,
// skipping "." and "..". It does not own fd.
type direntReader struct {
	fd       int
	buf      *[]byte
	pos, end int
	eof      bool
}

func newDirentReader(fd int) *direntReader {
	return &direntReader{fd: fd, buf: direntBuffers.Get().(*[]byte)}
}

// next appends up to max entries to out and returns it. It returns fewer
// than max only at the end of the directory, after which r.eof is set.
func (r *direntReader) next(out []dirent, max int) ([]dirent, error) {
	for len(out) < max {
		if r.pos >= r.end {
			if r.eof {
				return out, nil
			}
			if err := r.fill(); err != nil {
				return out, err
			}
			continue
		}
		out = r.parseOne(out)
	}
	return out, nil
}

func (r *direntReader) fill() error {
	for {
		n, err := unix.Getdents(r.fd, *r.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		r.pos, r.end = 0, n
		if n == 0 {
			r.eof = true
		}
		return nil
	}
}

// parseOne decodes the linux_dirent64 at r.pos: d_ino (8 bytes), d_off (8),
// d_reclen (2), d_type (1), then the NUL-terminated name.
func (r *direntReader) parseOne(out []dirent) []dirent {
	rec := (*r.buf)[r.pos:r.end]
	reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
	typ := rec[18]
	name := rec[19:reclen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	r.pos += reclen

	if string(name) == "." || string(name) == ".." {
		return out
	}
	return append(out, dirent{name: string(name), typ: typ})
}

// rewind starts the directory over from its first entry.
func (r *direntReader) rewind() error {
	if _, err := unix.Seek(r.fd, 0, 0); err != nil {
		return err
	}
	r.pos, r.end, r.eof = 0, 0, false
	return nil
}

// release returns the buffer to the pool. The reader is unusable after it.
func (r *direntReader) release() {
	if r.buf != nil {
		direntBuffers.Put(r.buf)
		r.buf = nil
	}
}
