package dataplane

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"errors"
	"io"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// archiveChunkSize is the size of the chunks of a ZIP response: the buffer
// between the ZIP writer and the connection.
const archiveChunkSize = 256 << 10

// maxArchiveComment bounds the ZIP comment that lists skipped symlinks
// (the format allows 65535 bytes).
const maxArchiveComment = 60000

// storedExtensions are the file name extensions of formats that are already
// compressed, which ArchiveDeflate stores instead of deflating.
var storedExtensions = map[string]bool{
	".zip": true, ".gz": true, ".tgz": true, ".bz2": true, ".tbz2": true, ".xz": true, ".txz": true,
	".zst": true, ".lz4": true, ".lzma": true, ".7z": true, ".rar": true, ".br": true,
	".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true, ".avif": true, ".heic": true,
	".mp4": true, ".mkv": true, ".mov": true, ".webm": true, ".avi": true,
	".mp3": true, ".aac": true, ".ogg": true, ".opus": true, ".flac": true, ".m4a": true,
	".parquet": true, ".npz": true, ".pt": true, ".whl": true, ".jar": true,
	".docx": true, ".xlsx": true, ".pptx": true, ".pdf": true,
}

// flateWriters pools level-1 deflate writers, which cost about 1 MB each.
// A writer must not be used after it is put back.
var flateWriters sync.Pool

// pooledFlate returns its deflate writer to flateWriters on Close.
type pooledFlate struct {
	*flate.Writer
}

func (p pooledFlate) Close() error {
	err := p.Writer.Close()
	flateWriters.Put(p.Writer)
	return err
}

func newPooledFlate(w io.Writer) (io.WriteCloser, error) {
	if fw, ok := flateWriters.Get().(*flate.Writer); ok {
		fw.Reset(w)
		return pooledFlate{fw}, nil
	}
	fw, err := flate.NewWriter(w, flate.BestSpeed)
	if err != nil {
		return nil, err
	}
	return pooledFlate{fw}, nil
}

// serveArchive serves GET or HEAD of a directory with archive set: a ZIP
// streamed with chunked encoding. It owns dir from here on.
func (s *Server) serveArchive(ctx *fasthttp.RequestCtx, entry *accessEntry, dir *os.File, name string, noCache bool) {
	h := &ctx.Response.Header
	h.Set("Content-Disposition", contentDisposition(name+".zip"))
	if noCache {
		h.Set("Cache-Control", "no-store")
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/zip")
	body := &archiveBody{
		server:  s,
		entry:   entry,
		dir:     dir,
		conn:    ctx.Conn(),
		deflate: s.opts.ArchiveCompression == ArchiveDeflate,
	}
	s.requests.Add(1)
	entry.deferred = true
	ctx.SetBodyStream(body, -1)
}

// archiveBody streams a directory tree as a ZIP. Memory stays bounded to
// one chunk buffer, one copy buffer, one deflate writer and one open
// directory per level of depth. Only the ZIP central directory, which
// archive/zip keeps until the end, grows with the number of entries.
type archiveBody struct {
	server  *Server
	entry   *accessEntry
	dir     *os.File
	conn    net.Conn
	deflate bool

	sent    int64
	skipped []string
	zw      *zip.Writer
	buf     []byte
}

// SupportsBodyWriteTo lets fasthttp call WriteTo for the chunked body.
func (a *archiveBody) SupportsBodyWriteTo() bool { return true }

// errArchiveRead is returned by Read: the archive is only written by WriteTo.
var errArchiveRead = errors.New("archive body is written with WriteTo only")

func (a *archiveBody) Read([]byte) (int, error) { return 0, errArchiveRead }

// WriteTo writes the ZIP to w, fasthttp's chunked writer. An error ends the
// response without its final chunk, so the client sees a failed download.
func (a *archiveBody) WriteTo(w io.Writer) (int64, error) {
	bw := bufio.NewWriterSize(&deadlineWriter{w: w, body: a}, archiveChunkSize)
	a.zw = zip.NewWriter(bw)
	if a.deflate {
		a.zw.RegisterCompressor(zip.Deflate, newPooledFlate)
	}
	buf := copyBuffers.get()
	defer copyBuffers.put(buf)
	a.buf = *buf

	written, err := a.walk(a.dir, "")
	if err != nil {
		return a.sent, err
	}
	if written == 0 {
		// Upstream's entry for an empty requested directory.
		if _, err := a.zw.CreateHeader(&zip.FileHeader{Name: "./", Method: zip.Store}); err != nil {
			return a.sent, err
		}
	}
	if len(a.skipped) > 0 {
		if err := a.zw.SetComment(skippedComment(a.skipped)); err != nil {
			return a.sent, err
		}
	}
	if err := a.zw.Close(); err != nil {
		return a.sent, err
	}
	if err := bw.Flush(); err != nil {
		return a.sent, err
	}
	return a.sent, nil
}

// walk adds the entries below dir, named prefix + their name, and returns
// how many it added. Directories are opened one component at a time with
// O_NOFOLLOW, so the walk never leaves the tree. Symlinks are skipped and
// listed in the archive comment. Other special files are skipped silently.
func (a *archiveBody) walk(dir *os.File, prefix string) (int, error) {
	written := 0
	for {
		entries, err := dir.ReadDir(256)
		for _, e := range entries {
			n, addErr := a.add(dir, e, prefix)
			if addErr != nil {
				return written, addErr
			}
			written += n
		}
		if errors.Is(err, io.EOF) || err == nil && len(entries) == 0 {
			return written, nil
		}
		if err != nil {
			return written, err
		}
	}
}

// add adds one directory entry e of dir and returns how many ZIP entries
// that made.
func (a *archiveBody) add(dir *os.File, e os.DirEntry, prefix string) (int, error) {
	name := prefix + e.Name()
	switch {
	case e.Type()&os.ModeSymlink != 0:
		a.skipped = append(a.skipped, name)
		return 0, nil
	case e.IsDir():
		return a.addDir(dir, e.Name(), name)
	case e.Type().IsRegular():
		return a.addFile(dir, e.Name(), name)
	}
	return 0, nil
}

func (a *archiveBody) addDir(parent *os.File, base, name string) (int, error) {
	sub, err := openAt(parent, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
	if err != nil {
		if isNotFound(err) {
			// Removed, or swapped for a symlink, since it was listed.
			return 0, nil
		}
		return 0, err
	}
	defer sub.Close()
	n, err := a.walk(sub, name+"/")
	if err != nil || n > 0 {
		return n, err
	}
	fh := &zip.FileHeader{Name: name + "/", Method: zip.Store}
	if st, statErr := sub.Stat(); statErr == nil {
		fh.Modified = st.ModTime()
		fh.SetMode(st.Mode())
	}
	if _, err := a.zw.CreateHeader(fh); err != nil {
		return 0, err
	}
	return 1, nil
}

func (a *archiveBody) addFile(parent *os.File, base, name string) (int, error) {
	f, err := openAt(parent, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK)
	if err != nil {
		if isNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() {
		return 0, nil
	}
	fh := &zip.FileHeader{Name: name, Method: a.method(name), Modified: st.ModTime()}
	fh.SetMode(st.Mode())
	ew, err := a.zw.CreateHeader(fh)
	if err != nil {
		return 0, err
	}
	// A file that grows while it is read is cut at its size at open time.
	// One that shrinks is stored as it ends, because the ZIP data
	// descriptor records the real size.
	if _, err := io.CopyBuffer(ew, io.LimitReader(f, st.Size()), a.buf); err != nil {
		return 0, err
	}
	return 1, nil
}

func (a *archiveBody) method(name string) uint16 {
	if !a.deflate || storedExtensions[strings.ToLower(path.Ext(name))] {
		return zip.Store
	}
	return zip.Deflate
}

// openAt opens name in dir with openat(2) and the given flags plus
// O_CLOEXEC.
func openAt(dir *os.File, name string, flags int) (*os.File, error) {
	for {
		fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

// skippedComment lists skipped symlinks for the ZIP comment, cut to fit.
func skippedComment(skipped []string) string {
	var b strings.Builder
	b.WriteString("symbolic links not archived:")
	for i, name := range skipped {
		if b.Len()+len(name)+64 > maxArchiveComment {
			b.WriteString(" … and ")
			b.WriteString(strconv.Itoa(len(skipped) - i))
			b.WriteString(" more")
			break
		}
		b.WriteString("\n")
		b.WriteString(name)
	}
	return b.String()
}

// CloseWithError closes the directory and writes the access log line.
func (a *archiveBody) CloseWithError(err error) error {
	closeErr := a.dir.Close()
	a.server.finishAccess(a.entry, fasthttp.StatusOK, a.sent, err)
	a.server.requests.Done()
	return closeErr
}

// deadlineWriter gives each chunk written to the connection a full
// WriteTimeout and counts the bytes.
type deadlineWriter struct {
	w    io.Writer
	body *archiveBody
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.body.conn != nil {
		_ = d.body.conn.SetWriteDeadline(time.Now().Add(d.body.server.opts.WriteTimeout))
	}
	n, err := d.w.Write(p)
	d.body.sent += int64(n)
	return n, err
}
