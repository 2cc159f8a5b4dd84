package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// sendChunkSize is the most one sendfile round or copy write sends before
// the write deadline is pushed forward. The runtime loops inside one round,
// and Linux sends at most 0x7ffff000 bytes per sendfile call.
const sendChunkSize = 4 << 20

// copyBufferSize is the read size of the copy data path.
const copyBufferSize = 1 << 20

// bufferPool hands out byte slices of one size. A slice must not be used
// after it is put back.
type bufferPool struct {
	size int
	pool sync.Pool
}

func newBufferPool(size int) *bufferPool {
	p := &bufferPool{size: size}
	p.pool.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return p
}

func (p *bufferPool) get() *[]byte  { return p.pool.Get().(*[]byte) }
func (p *bufferPool) put(b *[]byte) { p.pool.Put(b) }

var copyBuffers = newBufferPool(copyBufferSize)

// errFileShrank cuts a download off when the file ends before the bytes
// promised in Content-Length. The connection is then closed, never padded.
var errFileShrank = errors.New("file ended before the announced Content-Length")

// fileBody is the response body of a regular-file download: length bytes of
// file from offset start. fasthttp calls WriteTo, which sends them with
// sendfile under TCP_CORK, or through a pooled buffer on the copy path, and
// then CloseWithError, which closes the file and writes the access log line.
type fileBody struct {
	server   *Server
	entry    *accessEntry
	status   int
	file     *os.File
	start    int64
	length   int64
	conn     net.Conn
	sendfile bool

	sent int64
}

// SupportsBodyWriteTo lets fasthttp call WriteTo instead of Read.
func (b *fileBody) SupportsBodyWriteTo() bool { return true }

// WriteTo sends the section to w, fasthttp's fixed-size body writer. It
// returns an error, and fasthttp closes the connection, if the file ends
// early or the client stops reading for longer than WriteTimeout.
func (b *fileBody) WriteTo(w io.Writer) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok && b.sendfile {
		return b.sendfileTo(rf)
	}
	return b.copyTo(w)
}

// sendfileTo hands the file to w.ReadFrom in sendChunkSize rounds. fasthttp
// passes an *io.LimitedReader over an *os.File down to the connection's
// ReadFrom, which the runtime serves with sendfile from the file's offset.
func (b *fileBody) sendfileTo(w io.ReaderFrom) (int64, error) {
	if _, err := b.file.Seek(b.start, io.SeekStart); err != nil {
		return 0, err
	}
	if setCork(b.conn, true) {
		defer setCork(b.conn, false)
	}
	for b.sent < b.length {
		chunk := min(b.length-b.sent, sendChunkSize)
		b.pushDeadline()
		n, err := w.ReadFrom(&io.LimitedReader{R: b.file, N: chunk})
		b.sent += n
		if err != nil {
			return b.sent, err
		}
		if n < chunk {
			return b.sent, fmt.Errorf("%w: sent %d of %d bytes", errFileShrank, b.sent, b.length)
		}
	}
	return b.sent, nil
}

// copyTo reads the section with pread into a pooled buffer and writes it.
func (b *fileBody) copyTo(w io.Writer) (int64, error) {
	buf := copyBuffers.get()
	defer copyBuffers.put(buf)
	for b.sent < b.length {
		chunk := (*buf)[:min(int64(len(*buf)), b.length-b.sent)]
		n, err := b.file.ReadAt(chunk, b.start+b.sent)
		if n == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				return b.sent, fmt.Errorf("%w: sent %d of %d bytes", errFileShrank, b.sent, b.length)
			}
			return b.sent, err
		}
		b.pushDeadline()
		written, err := w.Write(chunk[:n])
		b.sent += int64(written)
		if err != nil {
			return b.sent, err
		}
	}
	return b.sent, nil
}

// Read is the io.Reader fallback that fasthttp uses if it does not call
// WriteTo; it reads the section in order.
func (b *fileBody) Read(p []byte) (int, error) {
	left := b.length - b.sent
	if left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), left)]
	n, err := b.file.ReadAt(p, b.start+b.sent)
	b.sent += int64(n)
	if n > 0 {
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		return 0, errFileShrank
	}
	return 0, err
}

// pushDeadline gives the next chunk a full WriteTimeout.
func (b *fileBody) pushDeadline() {
	if b.conn != nil {
		_ = b.conn.SetWriteDeadline(time.Now().Add(b.server.opts.WriteTimeout))
	}
}

// CloseWithError closes the file and writes the access log line; err is
// the error that ended the response early, if any.
func (b *fileBody) CloseWithError(err error) error {
	closeErr := b.file.Close()
	b.server.finishAccess(b.entry, b.status, b.sent, err)
	b.server.requests.Done()
	return closeErr
}
