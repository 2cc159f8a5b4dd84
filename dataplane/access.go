package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// accessEntry is one request's access log line in the making.
type accessEntry struct {
	start  time.Time
	method string
	path   string
	remote net.Addr
	// query is the redacted query string, built only when the access log
	// is enabled (logged).
	query  string
	logged bool

	// received counts request body bytes stored (PATCH).
	received int64

	// route is the metrics label of the path.
	route string

	// deferred is set when a response body stream writes the line after
	// the body is sent, with the bytes that really went out.
	deferred bool
}

func (s *Server) startAccess(ctx *fasthttp.RequestCtx) *accessEntry {
	e := &accessEntry{
		start:  time.Now(),
		method: string(ctx.Method()),
		path:   string(ctx.Path()),
		remote: ctx.RemoteAddr(),
		logged: s.accessLog.Enabled(context.Background(), slog.LevelInfo),
	}
	if e.logged {
		e.query = redactedQuery(ctx.QueryArgs())
	}
	e.route = routeLabel(e.path)
	if m := s.opts.Metrics; m != nil {
		m.InFlight.WithLabelValues(e.route).Inc()
	}
	return e
}

// routeLabel bounds the route label of metrics to the client API's routes.
func routeLabel(path string) string {
	switch path {
	case "/":
		return "root"
	case "/download":
		return "download"
	case "/upload":
		return "upload"
	}
	return "other"
}

// record adds a finished request to the metrics.
func (s *Server) record(e *accessEntry, status int, bytes int64, err error) {
	m := s.opts.Metrics
	if m == nil {
		return
	}
	m.InFlight.WithLabelValues(e.route).Dec()
	m.Requests.WithLabelValues("client", e.route, e.method, strconv.Itoa(status)).Inc()
	m.Duration.WithLabelValues(e.route).Observe(time.Since(e.start).Seconds())
	if e.received > 0 {
		m.BodyBytes.WithLabelValues(e.route, "in").Add(float64(e.received))
	}
	if e.method == "GET" && bytes > 0 {
		m.BodyBytes.WithLabelValues(e.route, "out").Add(float64(bytes))
	}
	if serverSideFailure(err) {
		m.AbortedResponses.Inc()
	}
}

// finishAccess writes the access log line. err is the error that cut the
// response body short, if any. Such a response is logged as "aborted", and
// an error other than the client going away also gets a WARN line.
func (s *Server) finishAccess(e *accessEntry, status int, bytes int64, err error) {
	s.record(e, status, bytes, err)
	if serverSideFailure(err) {
		s.log.Warn("response body failed", "path", e.path, "remote", e.remote.String(), "bytes", bytes, "error", err)
	}
	if !e.logged {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", e.method),
		slog.String("path", e.path),
		slog.String("query", e.query),
		slog.Int("status", status),
		slog.Int64("bytes", bytes),
		slog.Duration("duration", time.Since(e.start)),
		slog.String("remote", e.remote.String()),
	}
	if e.received > 0 {
		attrs = append(attrs, slog.Int64("received", e.received))
	}
	if err != nil {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	s.accessLog.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

// serverSideFailure reports whether err, which cut a response body short,
// is the server's failure rather than the client leaving or stalling.
func serverSideFailure(err error) bool {
	return err != nil && !isClientGone(err) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// redactedQuery returns the query string with the token's value replaced,
// because tokens are bearer credentials.
func redactedQuery(args *fasthttp.Args) string {
	var b strings.Builder
	for key, value := range args.All() {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(string(key)))
		b.WriteByte('=')
		if string(key) == "token" {
			b.WriteString("REDACTED")
		} else {
			b.WriteString(url.QueryEscape(string(value)))
		}
	}
	return b.String()
}

// fasthttpLogger passes fasthttp's own error lines to slog. Client resets
// and broken pipes are logged at DEBUG because they are not server errors.
type fasthttpLogger struct {
	log *slog.Logger
}

func (l fasthttpLogger) Printf(format string, args ...any) {
	level := slog.LevelWarn
	for _, a := range args {
		if err, ok := a.(error); ok && (isClientGone(err) || errors.Is(err, os.ErrDeadlineExceeded)) {
			level = slog.LevelDebug
		}
	}
	l.log.Log(context.Background(), level, "http server: "+fmt.Sprintf(format, args...))
}
