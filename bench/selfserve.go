package main

import (
	"archive/zip"
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// runServe is the `bench serve` subcommand: the harness starts its own
// copy with it so that the limit and the net/http baseline run in their
// own processes, and their CPU is measured apart from the client's.
func runServe(args []string) int {
	fs := flag.NewFlagSet("bench serve", flag.ContinueOnError)
	kind := fs.String("kind", "", `server to run: "limit" or "nethttp"`)
	addr := fs.String("addr", "", "listen address, host:port")
	root := fs.String("root", "", "folder whose files GET serves")
	uploadDir := fs.String("upload-dir", "", "folder that PUT /upload/NAME writes to")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !strings.HasPrefix(*addr, "127.0.0.1:") {
		fmt.Fprintf(os.Stderr, "bench serve: -addr %q must be on 127.0.0.1\n", *addr)
		return 2
	}
	var err error
	switch *kind {
	case "limit":
		err = serveLimit(*addr, *root, *uploadDir)
	case "nethttp":
		err = serveNetHTTP(*addr, *root, *uploadDir)
	default:
		err = fmt.Errorf("invalid -kind %q: use limit or nethttp", *kind)
	}
	fmt.Fprintln(os.Stderr, "bench serve:", err)
	return 1
}

// serveLimit is the machine's limit: a minimal HTTP/1.1 responder with no
// routing, no headers beyond the required ones and no checks.
//
//	GET /sf/PATH    sendfile under TCP_CORK (Range: bytes=a-b honoured)
//	GET /cp/PATH    pread into a 256 KiB buffer and write (Range honoured)
//	GET /tree/DIR   every regular file below DIR, back to back with
//	                sendfile, then close: the bytes a ZIP of DIR would carry
//	PUT /upload/N   splice from the socket into a new file N of upload-dir
func serveLimit(addr, root, uploadDir string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveLimitConn(conn.(*net.TCPConn), root, uploadDir)
	}
}

func serveLimitConn(conn *net.TCPConn, root, uploadDir string) {
	defer conn.Close()
	reader := bufio.NewReaderSize(conn, 16<<10)
	buf := make([]byte, 256<<10)
	for {
		method, path, headers, err := readRequestHead(reader)
		if err != nil {
			return
		}
		switch {
		case method == "GET" && strings.HasPrefix(path, "/tree/"):
			sendTree(conn, filepath.Join(root, path[len("/tree/"):]))
			return
		case method == "GET" && (strings.HasPrefix(path, "/sf/") || strings.HasPrefix(path, "/cp/")):
			err = sendFileRange(conn, filepath.Join(root, path[4:]), headers["range"], path[1:3] == "sf", buf)
		case method == "PUT" && strings.HasPrefix(path, "/upload/"):
			length, _ := strconv.ParseInt(headers["content-length"], 10, 64)
			err = receiveSplice(conn, reader, filepath.Join(uploadDir, filepath.Base(path)), length)
		default:
			_, err = conn.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
		}
		if err != nil {
			return
		}
	}
}

// readRequestHead reads a request line and headers. Header names are
// lower-cased.
func readRequestHead(reader *bufio.Reader) (method, path string, headers map[string]string, err error) {
	line, err := reader.ReadString('\n')
	if err != nil {
		return "", "", nil, err
	}
	parts := strings.Fields(line)
	if len(parts) != 3 {
		return "", "", nil, fmt.Errorf("malformed request line %q", line)
	}
	headers = map[string]string{}
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			return "", "", nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return parts[0], parts[1], headers, nil
		}
		name, value, _ := strings.Cut(line, ":")
		headers[strings.ToLower(name)] = strings.TrimSpace(value)
	}
}

// sendFileRange sends the file, or the one range of it that rangeHeader
// ("bytes=a-b") requests.
func sendFileRange(conn *net.TCPConn, path, rangeHeader string, useSendfile bool, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		_, err = conn.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	start, length := int64(0), size
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " + strconv.FormatInt(size, 10) + "\r\n\r\n"
	if first, last, ok := parseByteRange(rangeHeader, size); ok {
		start, length = first, last-first+1
		head = fmt.Sprintf("HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d\r\nContent-Length: %d\r\n\r\n", first, last, size, length)
	}

	if !useSendfile {
		if _, err := conn.Write([]byte(head)); err != nil {
			return err
		}
		for done := int64(0); done < length; {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), length-done)], start+done)
			if n > 0 {
				if _, werr := conn.Write(buf[:n]); werr != nil {
					return werr
				}
				done += int64(n)
			}
			if err != nil && !(errors.Is(err, io.EOF) && done == length) {
				return err
			}
		}
		return nil
	}

	// TCP_CORK holds the header until the first body pages join it, and
	// the uncork flushes the last partial segment.
	setCork(conn, true)
	defer setCork(conn, false)
	if _, err := conn.Write([]byte(head)); err != nil {
		return err
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	_, err = conn.ReadFrom(&io.LimitedReader{R: f, N: length})
	return err
}

// parseByteRange parses one "bytes=a-b" or "bytes=a-" range.
func parseByteRange(header string, size int64) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first >= size {
		return 0, 0, false
	}
	last = size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil {
			return 0, 0, false
		}
		last = min(last, size-1)
	}
	return first, last, last >= first
}

func setCork(conn *net.TCPConn, on bool) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	value := 0
	if on {
		value = 1
	}
	raw.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK, value)
	})
}

// sendTree sends every regular file below dir in WalkDir order with
// sendfile, with no length and no framing: the response ends when the
// connection closes.
func sendTree(conn *net.TCPConn, dir string) {
	if _, err := conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")); err != nil {
		return
	}
	filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || !entry.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = conn.ReadFrom(f)
		return err
	})
}

// receiveSplice writes length bytes of the request body to a new file:
// first what the header reader already buffered, then the rest with
// splice (os.File.ReadFrom of a LimitedReader over the TCP connection).
func receiveSplice(conn *net.TCPConn, reader *bufio.Reader, path string, length int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buffered := min(int64(reader.Buffered()), length)
	if buffered > 0 {
		head, _ := reader.Peek(int(buffered))
		if _, err := f.Write(head); err != nil {
			f.Close()
			return err
		}
		reader.Discard(int(buffered))
	}
	if remain := length - buffered; remain > 0 {
		if _, err := f.ReadFrom(&io.LimitedReader{R: conn, N: remain}); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = conn.Write([]byte("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
	return err
}

// serveNetHTTP is the plain-Go baseline: what net/http gives with no
// tuning.
//
//	GET /files/PATH  http.ServeContent (ranges, conditionals)
//	GET /tree/DIR    archive/zip with the Store method, streamed
//	PUT /upload/N    io.Copy of the body into a new file N of upload-dir
func serveNetHTTP(addr, root, uploadDir string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /files/", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(filepath.Join(root, filepath.Clean("/"+r.URL.Path[len("/files/"):])))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, info.Name(), info.ModTime(), f)
	})
	mux.HandleFunc("GET /tree/", func(w http.ResponseWriter, r *http.Request) {
		dir := filepath.Join(root, filepath.Clean("/"+r.URL.Path[len("/tree/"):]))
		w.Header().Set("Content-Type", "application/zip")
		if err := writeStoredZip(w, dir); err != nil {
			panic(http.ErrAbortHandler)
		}
	})
	mux.HandleFunc("PUT /upload/", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(filepath.Join(uploadDir, filepath.Base(r.URL.Path)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, err = io.Copy(f, r.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	return http.ListenAndServe(addr, mux)
}

// writeStoredZip writes every regular file below dir as an uncompressed
// ZIP entry named by its path relative to dir.
func writeStoredZip(w io.Writer, dir string) error {
	archive := zip.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || !entry.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := entry.Info()
		if err != nil {
			return err
		}
		header, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		header.Name, header.Method = filepath.ToSlash(rel), zip.Store
		dst, err := archive.CreateHeader(header)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(dst, f)
		return err
	})
	if err != nil {
		return err
	}
	return archive.Close()
}
