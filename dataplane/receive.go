package dataplane

import (
	"errors"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"
)

// uploadChunkSize is the size of the pooled buffers that a PATCH body is
// read into and written from; each PATCH holds two of them.
const uploadChunkSize = 256 << 10

var uploadBuffers = newBufferPool(uploadChunkSize)

// receiver copies one PATCH body into the partial file: it reads the socket
// into a pooled buffer and writes each full buffer with pwrite at its
// explicit offset. With Server.overlapWrites a writer goroutine writes one
// buffer while the next is read.
//
// NOTE: overlapping is off because it measured no gain on a 2-vCPU VM
// shared with the client (BenchmarkUpload: 1 GiB PATCHes to tmpfs and ext4
// over 127.0.0.1, within that machine's ±20% noise). It is untested on
// larger machines, where a pwrite blocked by writeback could overlap the
// next socket read.
type receiver struct {
	server *Server
	ctx    *fasthttp.RequestCtx
	ss     *session
	stream io.Reader

	start         int64 // offset where this PATCH started (durable)
	limit         int64 // bytes the session still accepts
	contentLength int64 // -1 when the body is chunked
	lastData      time.Time
	// recorded is the offset last recorded under a shared session lock,
	// relative to start; lost is that lock's Lost channel (nil otherwise).
	recorded int64
	lost     <-chan struct{}

	// written is the number of bytes written to the file so far, counting
	// only completed writes. The writer goroutine updates it; the handler
	// reads it only after waitWrite.
	written int64

	writes   chan []byte
	done     chan writeResult
	inFlight bool
}

type writeResult struct {
	n   int
	err error
}

// receiveBody copies the PATCH body into the session's partial file from
// offset start, flushes it, and returns the new durable offset. On any
// stop (client gone, idle, lock stolen, disk full, shutdown) the bytes that
// arrived are kept and flushed, and the error response carries the offset.
func (s *Server) receiveBody(ctx *fasthttp.RequestCtx, ss *session, start, limit, contentLength int64) (int64, *apiError) {
	r := &receiver{
		server:        s,
		ctx:           ctx,
		ss:            ss,
		stream:        ctx.RequestBodyStream(),
		start:         start,
		limit:         limit,
		contentLength: contentLength,
		lastData:      time.Now(),
		writes:        make(chan []byte),
		done:          make(chan writeResult),
	}
	if ss.shared != nil {
		r.lost = ss.shared.Lost()
	}
	if s.overlapWrites {
		go r.writeLoop()
		defer close(r.writes)
	}
	return r.sync(r.copyBody())
}

// writeLoop writes each buffer it receives at the next offset and reports
// the result. It ends when writes is closed.
func (r *receiver) writeLoop() {
	fileIO := r.server.opts.FileIO
	for buf := range r.writes {
		n, err := writeFull(fileIO, r.ss.fd, buf, r.start+r.written)
		r.written += int64(n)
		r.done <- writeResult{n: n, err: err}
	}
}

// submit hands buf to the writer and waits for the previous write, whose
// error it returns. buf must not be touched until the next submit or
// waitWrite returns.
func (r *receiver) submit(buf []byte) error {
	if !r.server.overlapWrites {
		n, err := writeFull(r.server.opts.FileIO, r.ss.fd, buf, r.start+r.written)
		r.written += int64(n)
		return err
	}
	err := r.waitWrite()
	r.writes <- buf
	r.inFlight = true
	return err
}

// waitWrite waits for the write in flight, if any, and returns its error.
func (r *receiver) waitWrite() error {
	if !r.inFlight {
		return nil
	}
	r.inFlight = false
	return (<-r.done).err
}

// errStop is the reason copyBody stopped early, with the error to respond.
type errStop struct {
	apiErr  *apiError
	overrun bool
}

// copyBody reads the body into two alternating pooled buffers and submits
// each full one for writing. It returns nil when the whole body is stored.
func (r *receiver) copyBody() *errStop {
	first, second := uploadBuffers.get(), uploadBuffers.get()
	defer func() {
		// The writer may still own a buffer; wait before pooling them.
		_ = r.waitWrite()
		uploadBuffers.put(first)
		uploadBuffers.put(second)
	}()
	buf, spare := *first, *second
	fill := 0
	received := int64(0)

	for {
		if r.server.aborted() {
			return r.stopAfterFlush(buf[:fill], unavailable("the server is shutting down; resume the upload", nil))
		}
		r.setReadDeadline()

		// Read at most one byte past the session's size, to detect an
		// oversized chunked body without storing any of its excess.
		want := min(int64(len(buf)-fill), r.limit-received+1)
		n, err := r.stream.Read(buf[fill : fill+int(want)])
		if n > 0 {
			r.lastData = time.Now()
			fill += n
			received += int64(n)
		}
		if received > r.limit {
			return &errStop{overrun: true, apiErr: uploadTooLarge("the body is longer than the "+
				strconv.FormatInt(r.limit, 10)+" bytes left in the session", -1)}
		}
		if fill == len(buf) || err != nil && fill > 0 {
			if werr := r.submit(buf[:fill]); werr != nil {
				return &errStop{apiErr: writeError(werr)}
			}
			buf, spare = spare, buf
			fill = 0
			if r.lost != nil {
				if stop := r.checkpoint(); stop != nil {
					return stop
				}
			}
		}

		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			if r.contentLength >= 0 && received < r.contentLength {
				return &errStop{apiErr: bodyEndedEarly(received, r.contentLength)}
			}
			return r.stopAfterFlush(nil, nil)
		case errors.Is(err, os.ErrDeadlineExceeded):
			if stop := r.checkStall(); stop != nil {
				return stop
			}
		default:
			// The client went away or broke the framing: keep what came.
			return &errStop{apiErr: bodyEndedEarly(received, r.contentLength)}
		}
	}
}

// checkpoint, under a shared session lock, stops the PATCH if the lock was
// lost, and every checkpointBytes flushes and records the offset, so a
// holder that dies costs the next one at most that much.
func (r *receiver) checkpoint() *errStop {
	if r.lockLost() {
		return &errStop{apiErr: lockLost()}
	}
	if r.written-r.recorded < checkpointBytes {
		return nil
	}
	if err := r.waitWrite(); err != nil {
		return &errStop{apiErr: writeError(err)}
	}
	if err := r.server.opts.FileIO.Fsync(r.ss.fd, true); err != nil {
		return &errStop{apiErr: fileSystemError("cannot flush the upload", err)}
	}
	if err := r.ss.recordOffset(r.start + r.written); err != nil {
		return &errStop{apiErr: recordFailed(err)}
	}
	r.recorded = r.written
	return nil
}

// lockLost reports whether the shared session lock ended. It is false
// under flock, where lost is nil.
func (r *receiver) lockLost() bool {
	select {
	case <-r.lost:
		return true
	default:
		return false
	}
}

func lockLost() *apiError {
	return &apiError{
		status: fasthttp.StatusServiceUnavailable,
		typ:    typeUnavailable,
		title:  "Upload session lock lost",
		msg:    "the session's lock in etcd ended during this PATCH; resume with HEAD and PATCH",
	}
}

func recordFailed(err error) *apiError {
	return unavailable("cannot record the upload offset", err)
}

// stopAfterFlush writes the last partial buffer and returns apiErr as the
// stop reason (nil for a normal end).
func (r *receiver) stopAfterFlush(last []byte, apiErr *apiError) *errStop {
	if len(last) > 0 {
		if err := r.submit(last); err != nil {
			return &errStop{apiErr: writeError(err)}
		}
	}
	if err := r.waitWrite(); err != nil {
		return &errStop{apiErr: writeError(err)}
	}
	if apiErr == nil {
		return nil
	}
	return &errStop{apiErr: apiErr}
}

// setReadDeadline sets the deadline of the next socket read. With a known
// Content-Length the read wakes up every readPollInterval, so a stalled
// PATCH notices a steal request or shutdown. A chunked body is read with
// the plain idle deadline, because fasthttp cannot resume a chunk header
// cut by a timeout.
func (r *receiver) setReadDeadline() {
	idleEnd := r.lastData.Add(r.server.opts.UploadIdleTimeout)
	deadline := idleEnd
	if r.contentLength >= 0 {
		if poll := time.Now().Add(readPollInterval); poll.Before(idleEnd) {
			deadline = poll
		}
	}
	_ = r.ctx.SetReadDeadline(deadline)
}

// checkStall decides whether a stalled body read ends the PATCH.
func (r *receiver) checkStall() *errStop {
	if time.Since(r.lastData) >= r.server.opts.UploadIdleTimeout {
		return &errStop{apiErr: &apiError{
			status: fasthttp.StatusRequestTimeout,
			typ:    typeUploadTimeout,
			title:  "Upload body timed out",
			msg:    "no data arrived for " + r.server.opts.UploadIdleTimeout.String() + "; resume with HEAD and PATCH",
		}}
	}
	if r.contentLength >= 0 && r.ss.stealRequested() {
		return &errStop{apiErr: &apiError{
			status: fasthttp.StatusLocked,
			typ:    typeUploadLocked,
			title:  "Upload session taken over",
			msg:    "a newer request took over this stalled upload",
		}}
	}
	if r.server.aborted() {
		return &errStop{apiErr: unavailable("the server is shutting down; resume the upload", nil)}
	}
	return nil
}

// sync makes the written bytes durable and returns the new offset. If the
// flush fails, what reached the disk is unknown, so the file is cut back to
// the offset durable before this PATCH. An oversized body is cut back too.
func (r *receiver) sync(stop *errStop) (int64, *apiError) {
	fileIO := r.server.opts.FileIO
	if stop != nil && stop.overrun {
		if err := r.truncate(); err != nil {
			return r.start, unavailable("cannot undo an oversized PATCH", err).withOffset(r.start)
		}
		return r.start, stop.apiErr.withOffset(r.start)
	}
	end := r.start + r.written
	if err := fileIO.Fsync(r.ss.fd, true); err != nil {
		r.server.log.Warn("cannot flush an upload, dropping this PATCH's bytes",
			"session", r.ss.claims.Session, "offset", r.start, "bytes", r.written, "error", err)
		if terr := r.truncate(); terr != nil {
			r.server.log.Warn("cannot cut the partial upload file back", "session", r.ss.claims.Session, "error", terr)
		}
		return r.start, fileSystemError("cannot flush the upload", err).withOffset(r.start)
	}
	if r.written > r.recorded {
		// Under a shared lock the offset counts only once recorded; the
		// bytes past the last record are cut back by the next holder.
		if r.lockLost() {
			return r.start + r.recorded, lockLost().withOffset(r.start + r.recorded)
		}
		if err := r.ss.recordOffset(end); err != nil {
			r.server.log.Warn("cannot record an upload offset; the bytes past the last record will be received again",
				"session", r.ss.claims.Session, "offset", end, "error", err)
			return r.start + r.recorded, recordFailed(err).withOffset(r.start + r.recorded)
		}
	}
	if stop != nil {
		return end, stop.apiErr.withOffset(end)
	}
	return end, nil
}

func (r *receiver) truncate() error {
	if err := unix.Ftruncate(r.ss.fd, r.start); err != nil {
		return err
	}
	return r.server.opts.FileIO.Fsync(r.ss.fd, true)
}

// writeError returns the error response for a failed write of upload bytes.
func writeError(err error) *apiError {
	return fileSystemError("cannot write the upload", err)
}

func bodyEndedEarly(received, contentLength int64) *apiError {
	msg := "the request body ended after " + strconv.FormatInt(received, 10) + " bytes"
	if contentLength >= 0 {
		msg += " of the " + strconv.FormatInt(contentLength, 10) + " announced"
	}
	return &apiError{
		status: fasthttp.StatusBadRequest,
		typ:    typeInvalidParams,
		title:  "Request body ended early",
		msg:    msg + "; the bytes received were kept, resume with HEAD and PATCH",
	}
}
