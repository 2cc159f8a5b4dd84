package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// phaseDownload downloads the folder back as the SDK, the web UI and
// download managers do, and compares every byte. curl fetches a sample of
// the source tree and every generated file. curl also fetches the large
// file, interrupted and resumed with Range and If-Range, and aria2c fetches
// it with 16 connections. Last comes the whole folder as a ZIP.
func (r *runner) phaseDownload() error {
	started := time.Now()
	dir := filepath.Join(r.workDir, "download")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var stats downloadStats

	sample := r.downloadSample()
	tokens, err := r.downloadTokens(r.vfid, relpaths(sample))
	if err != nil {
		return err
	}
	step := time.Now()
	if err := r.curlFiles(dir, sample, tokens, &stats); err != nil {
		return err
	}
	curlSeconds := secondsSince(&step)

	large := r.data.large
	largeToken, err := r.downloadToken(r.vfid, large.rel, false)
	if err != nil {
		return err
	}
	step = time.Now()
	resumedAt, err := r.curlResume(dir, large, largeToken, &stats)
	if err != nil {
		return err
	}
	resumeSeconds := secondsSince(&step)
	if err := r.aria2Large(dir, large, largeToken, &stats); err != nil {
		return err
	}
	aria2Seconds := secondsSince(&step)
	entries, err := r.checkZip(dir, &stats)
	if err != nil {
		return err
	}
	zipSeconds := secondsSince(&step)

	summary("download", stats.bytes, stats.files, started,
		fmt.Sprintf("curl: %d files in %.1f s; curl: large file cut at %d, resumed with Range/If-Range (206) in %.1f s; aria2c -x16 -s16: large file in %.1f s; ZIP: %d entries, %d bytes, tested and hashed in %.1f s; all hashes match",
			len(sample), curlSeconds, resumedAt, resumeSeconds, aria2Seconds, entries, stats.zipBytes, zipSeconds))
	return nil
}

// secondsSince returns the seconds since *start and resets *start to now.
func secondsSince(start *time.Time) float64 {
	now := time.Now()
	seconds := now.Sub(*start).Seconds()
	*start = now
	return seconds
}

// downloadStats counts the body bytes received and the files compared.
type downloadStats struct {
	bytes    int64
	files    int
	zipBytes int64
}

// downloadSample returns every generated file but the large one and about
// -sample files spread evenly over the source tree.
func (r *runner) downloadSample() []*fileEntry {
	var source, sample []*fileEntry
	for _, f := range r.data.files {
		switch {
		case f == r.data.large:
		case f.odd:
			sample = append(sample, f)
		default:
			source = append(source, f)
		}
	}
	if r.opts.sample == 0 || len(source) == 0 {
		return sample
	}
	step := max(len(source)/r.opts.sample, 1)
	for i := 0; i < len(source) && i/step < r.opts.sample; i += step {
		sample = append(sample, source[i])
	}
	return sample
}

func relpaths(files []*fileEntry) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.rel
	}
	return out
}

// downloadURL returns <client_api>/download?token=<JWT> plus extra query
// parameters.
func (r *runner) downloadURL(token string, extra ...string) string {
	query := url.Values{"token": {token}}
	for i := 0; i+1 < len(extra); i += 2 {
		query.Set(extra[i], extra[i+1])
	}
	return strings.TrimSuffix(r.target.clientURL, "/") + "/download?" + query.Encode()
}

// curlFiles downloads files with one curl process (8 transfers at a time),
// as the SDK does (token only), and compares each file's status, size and
// hash. For generated files it also checks the download headers.
func (r *runner) curlFiles(dir string, files []*fileEntry, tokens map[string]string, stats *downloadStats) error {
	var config strings.Builder
	for i, f := range files {
		// "next" separates the transfers, and a trailing one would start
		// a transfer without a URL.
		if i > 0 {
			config.WriteString("next\n")
		}
		fmt.Fprintf(&config, "url = %s\noutput = %s\nwrite-out = \"%%{http_code} %%{size_download} %%{filename_effective}\\n\"\nsilent\nshow-error\n",
			curlQuote(r.downloadURL(tokens[f.rel])), curlQuote(filepath.Join(dir, strconv.Itoa(i))))
		// "next" resets every option, so each transfer names the CAs.
		if r.caFile != "" {
			fmt.Fprintf(&config, "cacert = %s\n", curlQuote(r.caFile))
		}
		if f.odd {
			fmt.Fprintf(&config, "dump-header = %s\n", curlQuote(filepath.Join(dir, strconv.Itoa(i)+".headers")))
		}
	}
	configPath := filepath.Join(dir, "curl.config")
	if err := os.WriteFile(configPath, []byte(config.String()), 0o600); err != nil {
		return err
	}
	out, err := r.curl("--parallel", "--parallel-max", "8", "-K", configPath).Output()
	if err != nil {
		return fmt.Errorf("curl -K %s: %w (%s)", configPath, err, exitDetail(err))
	}

	status := map[string][2]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return fmt.Errorf("curl printed %q, want status, size and file name", line)
		}
		code, err1 := strconv.ParseInt(fields[0], 10, 64)
		size, err2 := strconv.ParseInt(fields[1], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("curl printed %q, want status, size and file name", line)
		}
		status[fields[2]] = [2]int64{code, size}
	}

	for i, f := range files {
		outPath := filepath.Join(dir, strconv.Itoa(i))
		result, ok := status[outPath]
		if !ok {
			return fmt.Errorf("curl: no result for %q", f.rel)
		}
		if result[0] != http.StatusOK {
			body, _ := os.ReadFile(outPath)
			return fmt.Errorf("curl GET /download of %q: status %d, want 200; body: %s", f.rel, result[0], truncate(body, 300))
		}
		got, err := hashFile(outPath)
		if err != nil {
			return err
		}
		if err := compareDigest(f.rel, "curl", f.want, got); err != nil {
			return err
		}
		if f.odd {
			if err := checkFileHeaders(filepath.Join(dir, strconv.Itoa(i)+".headers"), f); err != nil {
				return err
			}
		}
		stats.bytes += got.size
		stats.files++
		os.Remove(outPath)
	}
	return nil
}

// curl returns a curl command with args. -q comes first, so that no
// option in ~/.curlrc, such as insecure, applies. --cacert names the run's
// CAs for https URLs. In a -K file it applies only up to the first "next".
func (r *runner) curl(args ...string) *exec.Cmd {
	prefix := []string{"-q"}
	if r.caFile != "" {
		prefix = append(prefix, "--cacert", r.caFile)
	}
	return exec.Command("curl", append(prefix, args...)...)
}

// curlQuote quotes s for a curl config file.
func curlQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func exitDetail(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) && len(exit.Stderr) > 0 {
		return strings.TrimSpace(truncate(exit.Stderr, 500))
	}
	return "no output on stderr"
}

// readHeaders parses a header dump of one response written by curl -D.
func readHeaders(p string) (*http.Response, error) {
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		return nil, fmt.Errorf("parse the response headers in %s: %w", p, err)
	}
	resp.Body.Close()
	return resp, nil
}

// checkFileHeaders checks the headers of a single-file download against
// the client API contract: octet-stream, byte ranges, Last-Modified, and
// the Content-Disposition that contentDisposition builds.
func checkFileHeaders(headerPath string, f *fileEntry) error {
	resp, err := readHeaders(headerPath)
	if err != nil {
		return err
	}
	h := resp.Header
	if got := h.Get("Content-Type"); got != "application/octet-stream" {
		return fmt.Errorf("GET /download of %q: Content-Type %q, want application/octet-stream", f.rel, got)
	}
	if got := h.Get("Accept-Ranges"); got != "bytes" {
		return fmt.Errorf("GET /download of %q: Accept-Ranges %q, want bytes", f.rel, got)
	}
	if _, err := http.ParseTime(h.Get("Last-Modified")); err != nil {
		return fmt.Errorf("GET /download of %q: Last-Modified %q is not an HTTP date", f.rel, h.Get("Last-Modified"))
	}
	name := path.Base(f.rel)
	if got, want := h.Get("Content-Disposition"), contentDisposition(name); got != want {
		if decoded, ok := decodedFilenameStar(got); !ok || decoded != name || !strings.HasPrefix(got, asciiDisposition(name)) {
			return fmt.Errorf("GET /download of %q: Content-Disposition %q, want %q", f.rel, got, want)
		}
	}
	return nil
}

// asciiDisposition returns `attachment;filename="<ascii>"; ` for name:
// non-ASCII characters dropped and quotes escaped, as upstream writes it.
func asciiDisposition(name string) string {
	var ascii strings.Builder
	for _, c := range name {
		switch {
		case c == '"':
			ascii.WriteString(`\"`)
		case c < 0x80:
			ascii.WriteRune(c)
		}
	}
	return `attachment;filename="` + ascii.String() + `"; `
}

// contentDisposition returns the Content-Disposition upstream sends for
// name, with upper-case percent escapes:
//
//	attachment;filename="<ascii>"; filename*=UTF-8''<percent-encoded UTF-8>
func contentDisposition(name string) string {
	var pct strings.Builder
	for _, b := range []byte(name) {
		if isUnreserved(b) {
			pct.WriteByte(b)
		} else {
			fmt.Fprintf(&pct, "%%%02X", b)
		}
	}
	return asciiDisposition(name) + "filename*=UTF-8''" + pct.String()
}

func isUnreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_' || b == '.' || b == '-' || b == '~'
}

// decodedFilenameStar returns the decoded filename* value of a
// Content-Disposition header, accepting lower-case escapes, and whether
// the value consists only of unreserved characters and escapes.
func decodedFilenameStar(header string) (string, bool) {
	_, encoded, ok := strings.Cut(header, "filename*=UTF-8''")
	if !ok {
		return "", false
	}
	for i := 0; i < len(encoded); i++ {
		if encoded[i] == '%' {
			i += 2
			continue
		}
		if !isUnreserved(encoded[i]) {
			return "", false
		}
	}
	decoded, err := url.PathUnescape(encoded)
	return decoded, err == nil
}

// curlResume downloads the large file with curl, slowed down and stopped
// after a second, then resumes it as the SDK does: Range from the bytes
// received and If-Range with the first response's Last-Modified. The proxy
// must return 206 with the rest of the file. It returns the resume offset.
func (r *runner) curlResume(dir string, f *fileEntry, token string, stats *downloadStats) (int64, error) {
	partPath := filepath.Join(dir, "large.part")
	firstHeaders := filepath.Join(dir, "large.part.headers")
	first := r.curl("-sS", "--limit-rate", "20M", "--max-time", "1", "-D", firstHeaders, "-o", partPath, r.downloadURL(token))
	err := first.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 28 {
		return 0, fmt.Errorf("curl --limit-rate 20M --max-time 1 for %q: %v, want a timeout (exit status 28)", f.rel, err)
	}
	resp, err := readHeaders(firstHeaders)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != f.want.size {
		return 0, fmt.Errorf("GET /download of %q: status %d with Content-Length %d, want 200 with %d", f.rel, resp.StatusCode, resp.ContentLength, f.want.size)
	}
	lastModified := resp.Header.Get("Last-Modified")
	if _, err := http.ParseTime(lastModified); err != nil {
		return 0, fmt.Errorf("GET /download of %q: Last-Modified %q is not an HTTP date", f.rel, lastModified)
	}

	part, err := os.Open(partPath)
	if err != nil {
		return 0, err
	}
	defer part.Close()
	h := xxhash.New()
	received, err := io.Copy(h, part)
	if err != nil {
		return 0, err
	}
	if received <= 0 || received >= f.want.size {
		return 0, fmt.Errorf("the interrupted curl download of %q received %d bytes, want some but not all of %d", f.rel, received, f.want.size)
	}

	restHeaders := filepath.Join(dir, "large.rest.headers")
	rest := r.curl("-sS", "-D", restHeaders, "-H", fmt.Sprintf("Range: bytes=%d-", received), "-H", "If-Range: "+lastModified, "-o", "-", r.downloadURL(token))
	body, err := rest.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr bytes.Buffer
	rest.Stderr = &stderr
	if err := rest.Start(); err != nil {
		return 0, err
	}
	restBytes, copyErr := io.CopyBuffer(h, body, make([]byte, 1<<20))
	if err := rest.Wait(); err != nil || copyErr != nil {
		return 0, fmt.Errorf("resumed curl download of %q: %v %v %s", f.rel, err, copyErr, stderr.String())
	}
	resp, err = readHeaders(restHeaders)
	if err != nil {
		return 0, err
	}
	wantRange := fmt.Sprintf("bytes %d-%d/%d", received, f.want.size-1, f.want.size)
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != wantRange || resp.ContentLength != f.want.size-received {
		return 0, fmt.Errorf("GET /download of %q with Range: bytes=%d- and If-Range: %s: status %d, Content-Range %q, Content-Length %d; want 206, %q, %d",
			f.rel, received, lastModified, resp.StatusCode, resp.Header.Get("Content-Range"), resp.ContentLength, wantRange, f.want.size-received)
	}
	got := digest{size: received + restBytes, hash: h.Sum64()}
	if err := compareDigest(f.rel, "curl resumed with Range", f.want, got); err != nil {
		return 0, err
	}
	stats.bytes += got.size
	stats.files++
	os.Remove(partPath)
	return received, nil
}

// aria2Large downloads the large file with aria2c over 16 connections, each
// fetching its own range, and compares it. Any failed request fails the
// download (--max-tries=1), so retries cannot hide a server error.
// --no-conf skips aria2c's config file, so no option there can turn off
// the certificate check.
func (r *runner) aria2Large(dir string, f *fileEntry, token string, stats *downloadStats) error {
	name := "large.aria2"
	args := []string{"--no-conf=true", "-x16", "-s16", "--max-tries=1", "--file-allocation=none",
		"--allow-overwrite=true", "--auto-file-renaming=false", "--console-log-level=warn",
		"--summary-interval=0", "--download-result=hide"}
	if r.caFile != "" {
		args = append(args, "--ca-certificate="+r.caFile)
	}
	args = append(args, "-d", dir, "-o", name, r.downloadURL(token))
	out, err := exec.Command("aria2c", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("aria2c -x16 -s16 for %q: %w\n%s", f.rel, err, truncate(out, 2000))
	}
	outPath := filepath.Join(dir, name)
	got, err := hashFile(outPath)
	if err != nil {
		return err
	}
	if err := compareDigest(f.rel, "aria2c -x16 -s16", f.want, got); err != nil {
		return err
	}
	stats.bytes += got.size
	stats.files++
	return os.Remove(outPath)
}
