package dataplane

import (
	"bytes"
	"strings"

	"github.com/valyala/fasthttp"
)

// The fixed CORS headers of /upload (upstream's tus handler): any origin,
// no credentials.
const (
	uploadAllowHeaders  = "Tus-Resumable, Upload-Length, Upload-Metadata, Upload-Offset, Content-Type"
	uploadExposeHeaders = uploadAllowHeaders
)

// addUploadCORS sets the CORS headers that every /upload response carries,
// errors included, so a browser's tus client can read them.
func addUploadCORS(ctx *fasthttp.RequestCtx) {
	h := &ctx.Response.Header
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Headers", uploadAllowHeaders)
	h.Set("Access-Control-Expose-Headers", uploadExposeHeaders)
	h.Set("Access-Control-Allow-Methods", "*")
}

// safelistedResponseHeaders are the CORS-safelisted response header names
// that upstream's CORS layer leaves out of Access-Control-Expose-Headers.
var safelistedResponseHeaders = []string{
	"Cache-Control", "Content-Language", "Content-Type", "Expires", "Last-Modified", "Pragma",
}

// addCORS adds the CORS headers of / and /download to an actual response:
// with an Origin request header, the origin is echoed with credentials
// allowed, and every response header that is not safelisted is exposed.
// Without Origin nothing is added. Call it after all other headers are set.
func addCORS(ctx *fasthttp.RequestCtx) {
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		return
	}
	var expose []string
	hasLength := false
	for key := range ctx.Response.Header.All() {
		name := string(key)
		switch {
		case isSafelisted(name), strings.HasPrefix(strings.ToLower(name), "access-control-"),
			strings.EqualFold(name, "Connection"), strings.EqualFold(name, "Date"):
			continue
		case strings.EqualFold(name, "Content-Length"):
			hasLength = true
		}
		expose = append(expose, name)
	}
	// A body set with SetBody gets its Content-Length only when written.
	if !hasLength && ctx.Response.Header.ContentLength() >= 0 && ctx.Response.StatusCode() != fasthttp.StatusNotModified {
		expose = append(expose, "Content-Length")
	}
	h := &ctx.Response.Header
	h.SetBytesV("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if len(expose) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(expose, ","))
	}
}

func isSafelisted(name string) bool {
	for _, s := range safelistedResponseHeaders {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// servePreflight responds to a CORS preflight OPTIONS request on / or
// /download the way upstream's CORS layer does.
func servePreflight(ctx *fasthttp.RequestCtx) {
	origin := ctx.Request.Header.Peek("Origin")
	if len(origin) == 0 {
		writeText(ctx, fasthttp.StatusForbidden,
			"CORS preflight request failed: origin header is not specified in the request")
		return
	}
	method := ctx.Request.Header.Peek("Access-Control-Request-Method")
	if len(method) == 0 {
		writeText(ctx, fasthttp.StatusForbidden,
			"CORS preflight request failed: 'Access-Control-Request-Method' header is not specified")
		return
	}
	h := &ctx.Response.Header
	h.SetBytesV("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.SetBytesV("Access-Control-Allow-Methods", method)
	if requested := ctx.Request.Header.Peek("Access-Control-Request-Headers"); len(requested) > 0 {
		h.Set("Access-Control-Allow-Headers", preflightHeaderList(requested))
	}
}

// preflightHeaderList turns "x-a, Content-Type" into "X-A,CONTENT-TYPE":
// names upper-cased and comma-joined, as upstream responds.
func preflightHeaderList(requested []byte) string {
	var names []string
	for _, part := range bytes.Split(requested, []byte(",")) {
		name := strings.TrimSpace(string(part))
		if name == "" || !isToken(name) {
			continue
		}
		names = append(names, strings.ToUpper(name))
	}
	return strings.Join(names, ",")
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2), so
// that nothing else is echoed into a response header.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}
