package dataplane

import (
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzTusHeaders feeds the tus PATCH header checks and the upload target
// join arbitrary Upload-Offset, Content-Type, dst_dir and relpath values.
// An accepted offset is exactly the non-negative decimal value, and an
// accepted target is a clean relative path that cannot leave the vfolder.
func FuzzTusHeaders(f *testing.F) {
	for _, seed := range []struct{ offset, contentType, dstDir, relpath string }{
		{"0", "application/offset+octet-stream", "", "f.bin"},
		{"1048576", "Application/Offset+Octet-Stream; x=1", "inside/deeper", "x.bin"},
		{"-1", "application/octet-stream", "../../../../tmp", "x.bin"},
		{"abc", "", "/tmp", "../other/x.bin"},
		{" 5 ", "application/offset+octet-stream ;", "a", ".."},
		{"+5", "application/offset+octet-stream", "..%2f..%2f", "%2e%2e/x"},
		{"9223372036854775807", "application/offset+octet-stream", "a//b", "a/./b"},
		{"9223372036854775808", "application/offset+octet-stream", "a\x00b", "bad\xff\xfename"},
		{"5368709120", "application/offset+octet-stream", strings.Repeat("a/", 64), strings.Repeat("n", 256)},
		{"0x10", "application/offset+octet-stream", `..\..`, "."},
	} {
		f.Add(seed.offset, seed.contentType, seed.dstDir, seed.relpath)
	}
	f.Fuzz(func(t *testing.T, offset, contentType, dstDir, relpath string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.Set("Upload-Offset", offset)
		ctx.Request.Header.SetContentType(contentType)
		ctx.Request.SetRequestURI("/upload?token=x&dst_dir=" + url.QueryEscape(dstDir))

		// fasthttp trims and may reject header values, so the checks use
		// the stored value, which is what the handler reads.
		stored := strings.TrimSpace(string(ctx.Request.Header.Peek("Upload-Offset")))
		n, apiErr := parseUploadOffset(&ctx)
		want, wantErr := strconv.ParseInt(stored, 10, 64)
		digitsOnly := stored != "" && strings.Trim(stored, "0123456789") == ""
		switch {
		case apiErr == nil && (wantErr != nil || !digitsOnly || n != want || n < 0):
			t.Fatalf("Upload-Offset %q accepted as %d", stored, n)
		case apiErr != nil && wantErr == nil && digitsOnly:
			t.Fatalf("Upload-Offset %q rejected: %v", stored, apiErr)
		case apiErr != nil && apiErr.status != fasthttp.StatusBadRequest:
			t.Fatalf("Upload-Offset %q: status %d, want 400", stored, apiErr.status)
		}

		if apiErr := checkPatchContentType(&ctx); apiErr != nil && apiErr.status != fasthttp.StatusUnsupportedMediaType {
			t.Fatalf("Content-Type %q: status %d, want 415", contentType, apiErr.status)
		}

		target, apiErr := uploadTarget(ctx.QueryArgs(), relpath)
		if apiErr != nil {
			if apiErr.status != fasthttp.StatusBadRequest {
				t.Fatalf("dst_dir %q, relpath %q: status %d, want 400", dstDir, relpath, apiErr.status)
			}
			return
		}
		if target == "" || target == "." || strings.HasPrefix(target, "/") || path.Clean(target) != target {
			t.Fatalf("dst_dir %q, relpath %q: target %q is not a clean relative path", dstDir, relpath, target)
		}
		if target == ".." || strings.HasPrefix(target, "../") {
			t.Fatalf("dst_dir %q, relpath %q: target %q climbs out", dstDir, relpath, target)
		}
		if strings.ContainsRune(target, 0) {
			t.Fatalf("dst_dir %q, relpath %q: target %q contains NUL", dstDir, relpath, target)
		}
	})
}
