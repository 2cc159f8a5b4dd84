package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"time"
)

// httpConn is a minimal HTTP/1.1 client on one keep-alive connection. It
// exists so that the client spends as little of the 2 shared cores as it
// can: request headers are built in a reused buffer, bodies are sent with
// sendfile and responses are read into one reused buffer and dropped.
type httpConn struct {
	addr   string
	conn   *net.TCPConn
	reader *bufio.Reader
	head   []byte
	sink   []byte
	// timeout bounds one request and its response.
	timeout time.Duration
}

// request is one HTTP request. The body is bodyBytes, or else bodyLen
// bytes of bodyFile from offset 0, or nothing.
type request struct {
	method    string
	target    string // path and query
	headers   []string
	bodyBytes []byte
	bodyFile  *os.File
	bodyLen   int64
	keepBody  bool // store the response body in response.body
}

// response is the part of an HTTP response that the client keeps.
type response struct {
	status   int
	location string
	offset   string // Upload-Offset
	bodyLen  int64
	body     []byte
}

func newHTTPConn(addr string, timeout time.Duration) *httpConn {
	return &httpConn{addr: addr, sink: make([]byte, 256<<10), timeout: timeout}
}

func (h *httpConn) dial() error {
	conn, err := net.DialTimeout("tcp", h.addr, 10*time.Second)
	if err != nil {
		return err
	}
	h.conn = conn.(*net.TCPConn)
	if h.reader == nil {
		h.reader = bufio.NewReaderSize(h.conn, 64<<10)
	} else {
		h.reader.Reset(h.conn)
	}
	return nil
}

func (h *httpConn) close() {
	if h.conn != nil {
		h.conn.Close()
		h.conn = nil
	}
}

// do sends req and reads the whole response. A request that fails before
// any response byte on a reused connection is sent once more on a new
// connection, because the server may have closed the idle connection.
func (h *httpConn) do(req request) (response, error) {
	reused := h.conn != nil
	resp, started, err := h.roundTrip(req)
	if err != nil && reused && !started {
		h.close()
		resp, _, err = h.roundTrip(req)
	}
	if err != nil {
		h.close()
		return resp, fmt.Errorf("%s %s: %w", req.method, shortTarget(req.target), err)
	}
	return resp, nil
}

func (h *httpConn) roundTrip(req request) (resp response, started bool, err error) {
	if h.conn == nil {
		if err := h.dial(); err != nil {
			return resp, false, err
		}
	}
	h.conn.SetDeadline(time.Now().Add(h.timeout))

	// Headers, then the body.
	bodyLen := int64(len(req.bodyBytes))
	if req.bodyFile != nil {
		bodyLen = req.bodyLen
	}
	h.head = h.head[:0]
	h.head = append(h.head, req.method...)
	h.head = append(h.head, ' ')
	h.head = append(h.head, req.target...)
	h.head = append(h.head, " HTTP/1.1\r\nHost: "...)
	h.head = append(h.head, h.addr...)
	h.head = append(h.head, "\r\nUser-Agent: storage-proxy-bench\r\n"...)
	for _, line := range req.headers {
		h.head = append(h.head, line...)
		h.head = append(h.head, "\r\n"...)
	}
	if bodyLen > 0 || req.method == "PUT" || req.method == "POST" || req.method == "PATCH" {
		h.head = append(h.head, "Content-Length: "...)
		h.head = strconv.AppendInt(h.head, bodyLen, 10)
		h.head = append(h.head, "\r\n"...)
	}
	h.head = append(h.head, "\r\n"...)
	if len(req.bodyBytes) > 0 && len(h.head)+len(req.bodyBytes) <= 64<<10 {
		h.head = append(h.head, req.bodyBytes...)
		req.bodyBytes = nil
	}
	if _, err := h.conn.Write(h.head); err != nil {
		return resp, false, err
	}
	if len(req.bodyBytes) > 0 {
		if _, err := h.conn.Write(req.bodyBytes); err != nil {
			return resp, false, err
		}
	}
	if req.bodyFile != nil {
		if _, err := req.bodyFile.Seek(0, io.SeekStart); err != nil {
			return resp, false, err
		}
		// TCPConn.ReadFrom with an *os.File under a LimitedReader is
		// sendfile.
		if _, err := h.conn.ReadFrom(&io.LimitedReader{R: req.bodyFile, N: req.bodyLen}); err != nil {
			return resp, false, err
		}
	}

	resp, started, err = h.readResponse(req)
	return resp, started, err
}

func (h *httpConn) readResponse(req request) (resp response, started bool, err error) {
	line, err := h.reader.ReadSlice('\n')
	if err != nil {
		return resp, len(line) > 0, err
	}
	started = true
	if len(line) < 12 || string(line[:5]) != "HTTP/" {
		return resp, true, fmt.Errorf("malformed status line %q", line)
	}
	resp.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return resp, true, fmt.Errorf("malformed status line %q", line)
	}

	contentLength := int64(-1)
	chunked, closing := false, false
	for {
		line, err := h.reader.ReadSlice('\n')
		if err != nil {
			return resp, true, err
		}
		text := strings.TrimRight(string(line), "\r\n")
		if text == "" {
			break
		}
		name, value, _ := strings.Cut(text, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "content-length":
			contentLength, err = strconv.ParseInt(value, 10, 64)
			if err != nil {
				return resp, true, fmt.Errorf("invalid Content-Length %q", value)
			}
		case "transfer-encoding":
			chunked = strings.EqualFold(value, "chunked")
		case "connection":
			closing = strings.EqualFold(value, "close")
		case "location":
			resp.location = value
		case "upload-offset":
			resp.offset = value
		}
	}

	// Body: fixed length, chunked, or until the server closes.
	var body io.Reader
	switch {
	case req.method == "HEAD" || resp.status == 204 || resp.status == 304 || (resp.status >= 100 && resp.status < 200):
		body = nil
	case contentLength >= 0:
		body = io.LimitReader(h.reader, contentLength)
	case chunked:
		body = httputil.NewChunkedReader(h.reader)
	default:
		body, closing = h.reader, true
	}
	if body != nil {
		resp.bodyLen, resp.body, err = h.drain(body, req.keepBody)
		if err != nil {
			return resp, true, err
		}
		if contentLength >= 0 && resp.bodyLen != contentLength {
			return resp, true, fmt.Errorf("body ended after %d of %d bytes", resp.bodyLen, contentLength)
		}
		// The chunked reader stops after the last chunk; the trailer
		// section and its closing CRLF are still unread.
		if chunked && contentLength < 0 {
			for {
				line, err := h.reader.ReadSlice('\n')
				if err != nil {
					return resp, true, err
				}
				if len(strings.TrimRight(string(line), "\r\n")) == 0 {
					break
				}
			}
		}
	}
	if closing {
		h.close()
	}
	return resp, true, nil
}

// drain reads body to its end into the reused sink, keeping a copy only
// when keep is set.
func (h *httpConn) drain(body io.Reader, keep bool) (int64, []byte, error) {
	var total int64
	var kept []byte
	for {
		n, err := body.Read(h.sink)
		total += int64(n)
		if keep {
			kept = append(kept, h.sink[:n]...)
		}
		if errors.Is(err, io.EOF) {
			return total, kept, nil
		}
		if err != nil {
			return total, kept, err
		}
	}
}

// shortTarget drops the query of a target for error messages, because a
// query may carry a session token.
func shortTarget(target string) string {
	path, _, found := strings.Cut(target, "?")
	if found {
		return path + "?…"
	}
	return path
}
