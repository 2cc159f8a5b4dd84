package main

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"
)

func (b *bench) uploaders() []*server {
	return b.serversWith(func(s *server) bool { return s.upload != uploadNone })
}

// uploadFile sends size bytes of src as one file named name, the way each
// server takes a file: a PUT, a tus creation and one PATCH, or a manager
// session and one PATCH.
func uploadFile(s *server, conn *httpConn, name string, src *os.File, size int64) error {
	body := request{bodyFile: src, bodyLen: size}
	switch s.upload {
	case uploadPut:
		body.method, body.target = "PUT", s.uploadPath+name
		return expectStatus(conn, body, 201)
	case uploadTus:
		location, err := tusCreate(conn, s.uploadPath, size, nil)
		if err != nil {
			return err
		}
		body.method, body.target, body.headers = "PATCH", location, tusPatchHeaders
		return expectStatus(conn, body, 204)
	case uploadProxy:
		target, err := s.proxy.uploadSession(uploadRelDir+"/"+name, size)
		if err != nil {
			return err
		}
		body.method, body.target, body.headers = "PATCH", target, tusPatchHeaders
		return expectStatus(conn, body, 204)
	}
	return fmt.Errorf("%s takes no uploads", s.name)
}

// uploadSmall sends data as one file in one request after any session
// set-up: a PUT, a tus creation-with-upload POST, or a manager session
// and one PATCH.
func uploadSmall(s *server, conn *httpConn, name string, data []byte) error {
	switch s.upload {
	case uploadPut:
		return expectStatus(conn, request{method: "PUT", target: s.uploadPath + name, bodyBytes: data}, 201)
	case uploadTus:
		_, err := tusCreate(conn, s.uploadPath, int64(len(data)), data)
		return err
	case uploadProxy:
		target, err := s.proxy.uploadSession(uploadRelDir+"/"+name, int64(len(data)))
		if err != nil {
			return err
		}
		return expectStatus(conn, request{method: "PATCH", target: target, headers: tusPatchHeaders, bodyBytes: data}, 204)
	}
	return fmt.Errorf("%s takes no uploads", s.name)
}

var tusPatchHeaders = []string{"Tus-Resumable: 1.0.0", "Upload-Offset: 0", "Content-Type: application/offset+octet-stream"}

// tusCreate sends a tus creation POST, with data as the first part of the
// upload when it is not nil (creation-with-upload), and returns the
// upload's path.
func tusCreate(conn *httpConn, base string, size int64, data []byte) (string, error) {
	req := request{method: "POST", target: base, headers: []string{"Tus-Resumable: 1.0.0", "Upload-Length: " + strconv.FormatInt(size, 10)}}
	if data != nil {
		req.headers = append(req.headers, "Content-Type: application/offset+octet-stream")
		req.bodyBytes = data
	}
	resp, err := conn.do(req)
	if err != nil {
		return "", err
	}
	if resp.status != 201 || resp.location == "" {
		return "", fmt.Errorf("POST %s: status %d, Location %q; expected 201 with a Location", base, resp.status, resp.location)
	}
	if data != nil && resp.offset != strconv.Itoa(len(data)) {
		return "", fmt.Errorf("POST %s: Upload-Offset %q after creation-with-upload, expected %d", base, resp.offset, len(data))
	}
	location, err := url.Parse(resp.location)
	if err != nil {
		return "", fmt.Errorf("POST %s: invalid Location %q: %w", base, resp.location, err)
	}
	return location.RequestURI(), nil
}

func expectStatus(conn *httpConn, req request, want int) error {
	req.keepBody = true
	resp, err := conn.do(req)
	if err != nil {
		return err
	}
	if resp.status != want {
		return fmt.Errorf("%s %s: status %d, expected %d; body: %.200s", req.method, shortTarget(req.target), resp.status, want, resp.body)
	}
	return nil
}

// checkUploaded compares the size of a finished upload on disk with
// size. tus peers name their files themselves, so only the total is
// checked for them.
func checkUploaded(s *server, names []string, size int64) error {
	if s.upload == uploadTus {
		return nil
	}
	for _, name := range names {
		info, err := os.Stat(filepath.Join(s.uploadDir, name))
		if err != nil {
			return fmt.Errorf("upload %s: %w", name, err)
		}
		if info.Size() != size {
			return fmt.Errorf("upload %s is %d bytes on disk, expected %d", name, info.Size(), size)
		}
	}
	return nil
}

// afterUploads removes what a run uploaded and writes back dirty pages,
// so that the next run starts from the same state. Neither is timed.
func (b *bench) afterUploads(s *server) {
	if err := s.clearUploads(); err != nil {
		b.notes = append(b.notes, fmt.Sprintf("%s: clearing uploads failed: %v", s.name, err))
	}
	exec.Command("sync").Run()
}

// runU1 measures one upload of one large file in one request.
func (b *bench) runU1() {
	b.results.define(metric{ID: "U1", Title: fmt.Sprintf("U1 one %s upload in one PATCH", formatBytes(b.opts.u1Size)), Unit: "MB/s", HigherBetter: true, Baseline: "limit-splice", CPUUnit: "s/GiB"})
	src := filepath.Join(b.src, "u1.bin")
	for run := range b.opts.runs {
		for _, s := range b.uploaders() {
			b.runMeasured([]string{"U1"}, s, func() ([]float64, float64, error) {
				f, err := os.Open(src)
				if err != nil {
					return nil, 0, err
				}
				defer f.Close()
				conn := newHTTPConn(s.addr, requestTimeout)
				defer conn.close()
				name := fmt.Sprintf("u1-%d.bin", run)
				started := time.Now()
				if err := uploadFile(s, conn, name, f, b.opts.u1Size); err != nil {
					return nil, 0, err
				}
				elapsed := time.Since(started)
				return []float64{mbPerSecond(b.opts.u1Size, elapsed)}, gib(b.opts.u1Size), checkUploaded(s, []string{name}, b.opts.u1Size)
			})
			b.afterUploads(s)
		}
	}
}

// runU2 measures concurrent uploads, each one file in one request.
func (b *bench) runU2() {
	b.results.define(metric{ID: "U2", Title: fmt.Sprintf("U2 %d concurrent %s uploads", b.opts.u2Uploads, formatBytes(b.opts.u2Size)), Unit: "MB/s", HigherBetter: true, Baseline: "limit-splice", CPUUnit: "s/GiB"})
	src := filepath.Join(b.src, "u2.bin")
	for run := range b.opts.runs {
		for _, s := range b.uploaders() {
			b.runMeasured([]string{"U2"}, s, func() ([]float64, float64, error) {
				names := make([]string, b.opts.u2Uploads)
				for i := range names {
					names[i] = fmt.Sprintf("u2-%d-%02d.bin", run, i)
				}
				started := time.Now()
				err := forEach(b.opts.u2Uploads, b.opts.u2Uploads, func(i int) error {
					f, err := os.Open(src)
					if err != nil {
						return err
					}
					defer f.Close()
					conn := newHTTPConn(s.addr, requestTimeout)
					defer conn.close()
					return uploadFile(s, conn, names[i], f, b.opts.u2Size)
				})
				elapsed := time.Since(started)
				if err == nil {
					err = checkUploaded(s, names, b.opts.u2Size)
				}
				total := int64(b.opts.u2Uploads) * b.opts.u2Size
				return []float64{mbPerSecond(total, elapsed)}, gib(total), err
			})
			b.afterUploads(s)
		}
	}
}

// runU3 measures many small files, each its own upload (for the proxy a
// manager session plus one PATCH), on concurrent keep-alive clients.
func (b *bench) runU3() {
	b.results.define(metric{ID: "U3", Title: fmt.Sprintf("U3 %d files of %s, %d clients", b.opts.u3Files, formatBytes(b.opts.u3Size), b.opts.u3Conns), Unit: "files/s", HigherBetter: true, Baseline: "limit-splice", CPUUnit: "s/1k req"})
	data := make([]byte, b.opts.u3Size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for run := range b.opts.runs {
		for _, s := range b.uploaders() {
			b.runMeasured([]string{"U3"}, s, func() ([]float64, float64, error) {
				var done atomic.Int64
				deadline := time.Now().Add(3 * time.Minute)
				conns := make([]*httpConn, b.opts.u3Conns)
				for i := range conns {
					conns[i] = newHTTPConn(s.addr, time.Minute)
					defer conns[i].close()
				}
				var slot atomic.Int64
				started := time.Now()
				err := forEach(b.opts.u3Conns, b.opts.u3Conns, func(int) error {
					conn := conns[slot.Add(1)-1]
					for i := done.Add(1) - 1; i < int64(b.opts.u3Files); i = done.Add(1) - 1 {
						if time.Now().After(deadline) {
							return fmt.Errorf("U3 run stopped after 3 minutes with %d of %d files", i, b.opts.u3Files)
						}
						if err := uploadSmall(s, conn, fmt.Sprintf("u3-%d-%06d", run, i), data); err != nil {
							return err
						}
					}
					return nil
				})
				elapsed := time.Since(started)
				if err == nil {
					err = checkUploaded(s, []string{fmt.Sprintf("u3-%d-%06d", run, b.opts.u3Files-1)}, b.opts.u3Size)
				}
				return []float64{float64(b.opts.u3Files) / elapsed.Seconds()}, float64(b.opts.u3Files) / 1000, err
			})
			b.afterUploads(s)
		}
	}
}
