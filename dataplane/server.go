package dataplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/bai-storage/storage-proxy/control/metrics"
)

// Defaults for the zero values of Options.
const (
	// DefaultMaxUploadSize is upstream's max-upload-size default, "100g".
	DefaultMaxUploadSize = 100 << 30

	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultUploadIdleTimeout = 10 * time.Second
)

// Data paths for file downloads (Options.DataPath).
const (
	// DataPathSendfile sends regular files with sendfile(2) from the page
	// cache, under TCP_CORK. Connections that are not plain TCP (TLS) fall
	// back to DataPathCopy per request.
	DataPathSendfile = "sendfile"
	// DataPathCopy reads files into large pooled buffers and writes them to
	// the connection.
	DataPathCopy = "copy"
)

// Archive compression methods (Options.ArchiveCompression).
const (
	// ArchiveStore stores every ZIP entry uncompressed.
	ArchiveStore = "store"
	// ArchiveDeflate deflates (level 1) every entry whose extension does not
	// mark it as already compressed, and stores the rest.
	ArchiveDeflate = "deflate"
)

// Options configures a Server. The zero value of every field is usable,
// except that TokenSecret and Volumes must be set for any token to verify.
type Options struct {
	// TokenSecret is the HS256 key of the session tokens
	// (storage-proxy.secret). Required.
	TokenSecret []byte

	// Volumes maps a volume name onto its mount path, which must be
	// absolute and already symlink-resolved. A token naming any other
	// volume gets 400.
	Volumes map[string]string

	// MaxUploadSize is the largest upload in bytes, advertised as
	// Tus-Max-Size and enforced on PATCH (413). Zero means
	// DefaultMaxUploadSize; -1 means unlimited, and Tus-Max-Size is then
	// left out.
	MaxUploadSize int64

	// DataPath is DataPathSendfile (the default when empty) or
	// DataPathCopy.
	DataPath string

	// SessionLocks, when set, replaces the flock on each session's partial
	// file, for proxies that share a volume (upload-lock = "etcd"). Nil
	// uses flock(2).
	SessionLocks SessionLocks

	// TLS, when set, serves every connection over TLS with these settings
	// (the client API's ssl-enabled). Bodies then move with DataPathCopy,
	// since sendfile cannot encrypt. Serve must then be given plain TCP
	// listeners: the Server does the handshake itself, so that it can
	// still close a connection lingering and cut it off at Shutdown.
	TLS *tls.Config

	// ArchiveCompression is ArchiveStore (the default when empty) or
	// ArchiveDeflate, for ZIP downloads of directories.
	ArchiveCompression string

	// FileIO writes and flushes upload bytes. Nil means SyscallFileIO.
	// The Server does not close it.
	FileIO FileIO

	// ReadTimeout bounds reading one request's headers, and the body of
	// every request but a PATCH. Zero means DefaultReadTimeout.
	ReadTimeout time.Duration

	// WriteTimeout bounds each write of a response: a download chunk of at
	// most 4 MiB, or a whole small response. A client that accepts no byte
	// for this long is disconnected. Zero means DefaultWriteTimeout.
	WriteTimeout time.Duration

	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration

	// UploadIdleTimeout ends a PATCH whose client sent no byte for this
	// long; what arrived is kept and flushed, and the session unlocked.
	// Zero means DefaultUploadIdleTimeout.
	UploadIdleTimeout time.Duration

	// Version is reported by GET / as "storage-proxy".
	Version string

	// Metrics receives request, byte and session counts. Nil records
	// nothing.
	Metrics *metrics.Data

	// Logger receives service logs; access log lines go to
	// Logger.With("logger", "http.access"). Nil discards both.
	Logger *slog.Logger
}

// normalize validates o and returns a copy with defaults filled in.
func (o Options) normalize() (Options, error) {
	var errs []error
	if len(o.TokenSecret) == 0 {
		errs = append(errs, errors.New("dataplane: TokenSecret is empty (set storage-proxy.secret)"))
	}
	for name, mount := range o.Volumes {
		if name == "" {
			errs = append(errs, errors.New("dataplane: a volume has an empty name"))
		}
		if !filepath.IsAbs(mount) || filepath.Clean(mount) != mount {
			errs = append(errs, fmt.Errorf("dataplane: volume %q: mount path %q is not an absolute clean path", name, mount))
		}
	}

	switch {
	case o.MaxUploadSize == 0:
		o.MaxUploadSize = DefaultMaxUploadSize
	case o.MaxUploadSize < -1:
		errs = append(errs, fmt.Errorf("dataplane: MaxUploadSize %d is invalid (use -1 for unlimited)", o.MaxUploadSize))
	}

	switch o.DataPath {
	case "":
		o.DataPath = DataPathSendfile
	case DataPathSendfile, DataPathCopy:
	default:
		errs = append(errs, fmt.Errorf("dataplane: DataPath %q is invalid (use %q or %q)", o.DataPath, DataPathSendfile, DataPathCopy))
	}
	if o.TLS != nil {
		o.DataPath = DataPathCopy
	}
	switch o.ArchiveCompression {
	case "":
		o.ArchiveCompression = ArchiveStore
	case ArchiveStore, ArchiveDeflate:
	default:
		errs = append(errs, fmt.Errorf("dataplane: ArchiveCompression %q is invalid (use %q or %q)",
			o.ArchiveCompression, ArchiveStore, ArchiveDeflate))
	}

	o.ReadTimeout = durationOrDefault(o.ReadTimeout, DefaultReadTimeout, "ReadTimeout", &errs)
	o.WriteTimeout = durationOrDefault(o.WriteTimeout, DefaultWriteTimeout, "WriteTimeout", &errs)
	o.IdleTimeout = durationOrDefault(o.IdleTimeout, DefaultIdleTimeout, "IdleTimeout", &errs)
	o.UploadIdleTimeout = durationOrDefault(o.UploadIdleTimeout, DefaultUploadIdleTimeout, "UploadIdleTimeout", &errs)

	if o.FileIO == nil {
		o.FileIO = SyscallFileIO{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, errors.Join(errs...)
}

func durationOrDefault(d, def time.Duration, name string, errs *[]error) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		*errs = append(*errs, fmt.Errorf("dataplane: %s %v is negative", name, d))
	}
	return d
}

// Server serves the client API on fasthttp. Create it with New, run it with
// Serve on one or more listeners, and stop it with Shutdown.
type Server struct {
	opts      Options
	log       *slog.Logger
	accessLog *slog.Logger
	http      *fasthttp.Server

	// abort is closed when Shutdown's context ends with requests still in
	// flight: uploads then stop at their next read poll, flush and unlock.
	abort     chan struct{}
	abortOnce sync.Once

	// requests counts handlers and response streams still running, so
	// Shutdown can wait for uploads to flush and unlock.
	requests sync.WaitGroup

	// overlapWrites makes a PATCH write one buffer while it reads the next,
	// instead of one after the other; benchmarks compare both.
	overlapWrites bool

	// downloadTokens remembers verified download tokens.
	downloadTokens *downloadTokenCache

	// connsMu guards conns, the accepted TCP connections not yet closed.
	connsMu sync.Mutex
	conns   map[*serverConn]struct{}
}

// New validates opts and returns a Server that is not yet serving.
func New(opts Options) (*Server, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:      o,
		log:       o.Logger,
		accessLog: o.Logger.With("logger", "http.access"),
		abort:     make(chan struct{}),
		conns:     make(map[*serverConn]struct{}),

		downloadTokens: newDownloadTokenCache(),
	}
	s.http = &fasthttp.Server{
		Handler:                       s.handle,
		Name:                          "",
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		StreamRequestBody:             true,
		DisablePreParseMultipartForm:  true,
		DisableHeaderNamesNormalizing: false,
		CloseOnShutdown:               true,
		ReadTimeout:                   o.ReadTimeout,
		WriteTimeout:                  o.WriteTimeout,
		IdleTimeout:                   o.IdleTimeout,
		// Upload bodies are read in the handler in 256 KiB chunks, which
		// bypass this buffer; it only holds request headers.
		ReadBufferSize: 16 << 10,
		Logger:         fasthttpLogger{log: o.Logger},
	}
	s.log.Info("client API configured",
		"data_path", o.DataPath, "archive_compression", o.ArchiveCompression,
		"max_upload_size", o.MaxUploadSize, "volumes", len(o.Volumes), "tls", o.TLS != nil)
	return s, nil
}

// Serve accepts connections on ln until Shutdown, and then returns nil. It
// may be called for several listeners at once. With Options.TLS set, every
// connection is served over TLS. TCP connections get lingering closes,
// and sendfile unless they are TLS; connections of other kinds get the
// copy data path and close at once.
func (s *Server) Serve(ln net.Listener) error {
	s.log.Info("serving client API", "addr", ln.Addr().String(), "tls", s.opts.TLS != nil)
	return s.http.Serve(&trackingListener{Listener: ln, server: s, tls: s.opts.TLS})
}

// Shutdown stops the listeners, closes idle connections and waits for the
// requests in flight to finish, and for the lingering closes of rejected
// uploads (at most lingerTimeout each). If ctx ends first, it stops what is
// left: uploads flush what they received and unlock their sessions,
// downloads are cut off. It then waits for those handlers to return and
// returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.log.Info("shutting down client API")
	err := s.http.ShutdownWithContext(ctx)
	if err == nil {
		err = s.waitConnsClosed(ctx)
	}
	if err == nil {
		s.requests.Wait()
		return nil
	}
	s.abortOnce.Do(func() { close(s.abort) })
	n := s.closeConns()
	s.log.Warn("client API shutdown deadline reached, closed connections in flight", "connections", n, "error", err)
	s.requests.Wait()
	return err
}

// waitConnsClosed waits until every tracked connection has closed.
func (s *Server) waitConnsClosed(ctx context.Context) error {
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		s.connsMu.Lock()
		n := len(s.conns)
		s.connsMu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// closeConns closes every tracked connection and returns how many there were.
func (s *Server) closeConns() int {
	s.connsMu.Lock()
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.connsMu.Unlock()
	for _, c := range conns {
		c.TCPConn.Close()
	}
	return len(conns)
}

// aborted reports whether Shutdown has given up waiting.
func (s *Server) aborted() bool {
	select {
	case <-s.abort:
		return true
	default:
		return false
	}
}

// handle routes one request and writes its access log line, or leaves that
// to the response's body stream when the body is sent after handle returns.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.requests.Add(1)
	defer s.requests.Done()
	entry := s.startAccess(ctx)

	switch string(ctx.Path()) {
	case "/":
		s.serveRoot(ctx)
	case "/download":
		s.serveDownload(ctx, entry)
	case "/upload":
		s.serveUpload(ctx, entry)
	default:
		writeText(ctx, fasthttp.StatusNotFound, "404: Not Found")
	}

	if ctx.IsHead() && !ctx.Response.IsBodyStream() {
		// fasthttp leaves Content-Length out of a HEAD response without a
		// body stream, so send the length the GET response would have.
		ctx.Response.Header.SetContentLength(len(ctx.Response.Body()))
	}
	if !entry.deferred {
		s.finishAccess(entry, ctx.Response.StatusCode(), int64(len(ctx.Response.Body())), nil)
	}
}

// serveRoot serves GET / (and HEAD /, and the CORS preflight): liveness.
func (s *Server) serveRoot(ctx *fasthttp.RequestCtx) {
	switch {
	case ctx.IsOptions():
		servePreflight(ctx)
		return
	case ctx.IsGet(), ctx.IsHead():
	default:
		methodNotAllowed(ctx, "GET, HEAD, OPTIONS")
		addCORS(ctx)
		return
	}
	version, _ := json.Marshal(s.opts.Version)
	body := fmt.Appendf(nil, `{"status": "ok", "type": "client-facing", "storage-proxy": %s}`, version)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(body)
	addCORS(ctx)
}

func methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	writeText(ctx, fasthttp.StatusMethodNotAllowed, "405: Method Not Allowed")
	ctx.Response.Header.Set("Allow", allow)
}
