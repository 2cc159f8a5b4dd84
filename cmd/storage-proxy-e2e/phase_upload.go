package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tusJob is the input of tus/upload.js.
type tusJob struct {
	Concurrency int       `json:"concurrency"`
	ChunkSize   int64     `json:"chunkSize"`
	RetryDelays []int     `json:"retryDelays"`
	Files       []tusFile `json:"files"`
}

type tusFile struct {
	Path      string `json:"path"`
	UploadURL string `json:"uploadUrl"`
	Size      int64  `json:"size"`
	Trace     bool   `json:"trace"`
}

// tusResult is one output line of tus/upload.js.
type tusResult struct {
	Path     string       `json:"path"`
	OK       bool         `json:"ok"`
	Error    *string      `json:"error"`
	Bytes    int64        `json:"bytes"`
	Retries  []tusRetry   `json:"retries"`
	Requests []tusRequest `json:"requests"`
}

type tusRetry struct {
	Status  *int   `json:"status"`
	Message string `json:"message"`
}

// tusRequest is one traced request: the Upload-Offset it sent (PATCH only),
// and the status and Upload-Offset of its response (nil when the request
// failed without a response).
type tusRequest struct {
	Method       string  `json:"method"`
	UploadOffset *string `json:"uploadOffset"`
	Status       *int    `json:"status"`
	Offset       *string `json:"offset"`
}

const (
	tusConcurrency = 4
	uploadTimeout  = 20 * time.Minute
)

// tusRetryDelays are the delays in milliseconds before each retry.
var tusRetryDelays = []int{0, 1000, 3000}

// phaseUpload uploads every file with tus-js-client, four at a time, the
// large file first and through a relay that cuts its connection once, and
// checks that the client resumed from the server's offset.
func (r *runner) phaseUpload() error {
	started := time.Now()
	clientURL, err := url.Parse(r.target.clientURL)
	if err != nil {
		return fmt.Errorf("invalid -client-url %q: %w", r.target.clientURL, err)
	}
	relay, err := startCutRelay(clientURL.Host, r.opts.cutAfter, clientURL.Scheme == "https")
	if err != nil {
		return fmt.Errorf("start the relay: %w", err)
	}
	defer relay.Close()

	job := tusJob{Concurrency: tusConcurrency, ChunkSize: r.opts.chunkSize, RetryDelays: tusRetryDelays}
	large := r.data.large
	relayURL := *clientURL
	relayURL.Host = relay.addr()
	job.Files = append(job.Files, tusFile{Path: large.src, UploadURL: uploadURL(&relayURL, r.uploadTokens[large.rel]), Size: large.want.size, Trace: true})
	for _, f := range r.data.files {
		if f != large {
			job.Files = append(job.Files, tusFile{Path: f.src, UploadURL: uploadURL(clientURL, r.uploadTokens[f.rel]), Size: f.want.size})
		}
	}

	results, err := r.runTus(job)
	if err != nil {
		return err
	}
	byPath := map[string]*fileEntry{}
	for _, f := range r.data.files {
		byPath[f.src] = f
	}
	var largeResult *tusResult
	for i := range results {
		res := &results[i]
		f := byPath[res.Path]
		if f == nil {
			return fmt.Errorf("tus-js-client reported a file it was not given: %q", res.Path)
		}
		if !res.OK {
			return fmt.Errorf("tus-js-client failed to upload %q: %s (retries: %+v)", f.rel, deref(res.Error), res.Retries)
		}
		if f == large {
			largeResult = res
		} else if len(res.Retries) != 0 {
			return fmt.Errorf("tus-js-client had to retry %q although its connection was never cut: %+v", f.rel, res.Retries)
		}
		delete(byPath, res.Path)
	}
	for _, f := range byPath {
		return fmt.Errorf("tus-js-client reported nothing for %q", f.rel)
	}

	resumed, err := checkResume(largeResult, relay, large.want.size)
	if err != nil {
		return fmt.Errorf("%q: %w", large.rel, err)
	}
	summary("upload", r.data.totalBytes(), len(r.data.files), started,
		fmt.Sprintf("tus-js-client, %d at a time, chunkSize %d; %s", tusConcurrency, r.opts.chunkSize, resumed))
	return nil
}

// uploadURL returns <client_api>/upload?token=<JWT>, the URL the web UI
// gives tus-js-client as both uploadUrl and endpoint.
func uploadURL(base *url.URL, token string) string {
	u := *base
	u.Path = "/upload"
	u.RawQuery = url.Values{"token": {token}}.Encode()
	return u.String()
}

// nodeEnv returns the driver's environment for node with the run's CAs
// added to node's default roots through NODE_EXTRA_CA_CERTS. It drops
// NODE_TLS_REJECT_UNAUTHORIZED, which could turn certificate checks off,
// and an inherited NODE_EXTRA_CA_CERTS, so that node trusts what curl and
// aria2c trust. A CA file that node cannot load makes it print a warning,
// and the uploads then fail verification.
func (r *runner) nodeEnv() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "NODE_TLS_REJECT_UNAUTHORIZED=") || strings.HasPrefix(kv, "NODE_EXTRA_CA_CERTS=")
	})
	if r.caFile != "" {
		env = append(env, "NODE_EXTRA_CA_CERTS="+r.caFile)
	}
	return env
}

func deref(s *string) string {
	if s == nil {
		return "(no message)"
	}
	return *s
}

// runTus runs tus/upload.js on job and returns its result lines.
func (r *runner) runTus(job tusJob) ([]tusResult, error) {
	input, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), uploadTimeout)
	defer cancel()
	script := filepath.Join(r.opts.tusDir, "upload.js")
	if _, err := os.Stat(filepath.Join(r.opts.tusDir, "node_modules", "tus-js-client")); err != nil {
		return nil, fmt.Errorf("tus-js-client is not installed in %s: run npm ci there", r.opts.tusDir)
	}
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = r.nodeEnv()
	cmd.Stdin = bytes.NewReader(input)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", script, err)
	}

	var results []tusResult
	var decodeErr error
	scanner := bufio.NewScanner(stdout)
	scanner.Buffer(make([]byte, 64<<10), 64<<20)
	for scanner.Scan() {
		var res tusResult
		if err := json.Unmarshal(scanner.Bytes(), &res); err != nil && decodeErr == nil {
			decodeErr = fmt.Errorf("node %s printed a line that is not a result: %q", script, truncate(scanner.Bytes(), 200))
		}
		results = append(results, res)
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("tus uploads did not finish within %s", uploadTimeout)
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	// A failed upload makes node exit 1, so report the file rather than
	// the exit status when its line is there.
	for _, res := range results {
		if !res.OK {
			return results, nil
		}
	}
	if waitErr != nil {
		return nil, fmt.Errorf("node %s: %w", script, waitErr)
	}
	return results, nil
}

// checkResume requires that the relay cut the large file's upload exactly
// once and that the client then resumed from the server's offset. After
// the cut, the client must send HEAD and get an offset above zero, and every
// PATCH must carry the offset that the server returned last. A 409 or 423
// (the proxy may still hold the broken PATCH's lock) is allowed because the
// client then asks again with HEAD. The server must not report more than
// the relay delivered before the cut, and the relay must not have carried
// the file twice. It returns a description of the resume for the summary
// line.
func checkResume(res *tusResult, relay *cutRelay, size int64) (string, error) {
	if cuts := relay.cuts.Load(); cuts != 1 {
		return "", fmt.Errorf("the relay cut %d connections, want 1 (it carried %d bytes)", cuts, relay.upstreamBytes.Load())
	}
	if err := relay.recordError(); err != nil {
		return "", fmt.Errorf("the relay could not count the HTTP bytes of the upload: %w", err)
	}
	if len(res.Retries) == 0 {
		return "", errors.New("the relay cut the connection but tus-js-client never retried")
	}
	reqs := res.Requests
	if len(reqs) == 0 || reqs[0].Method != "HEAD" {
		return "", fmt.Errorf("the first request was not HEAD, as it is with uploadUrl set: %+v", firstRequests(reqs))
	}

	// The cut broke the first request that got no response.
	broken := slices.IndexFunc(reqs, func(req tusRequest) bool { return req.Status == nil })
	if broken < 0 || reqs[broken].Method != "PATCH" {
		return "", fmt.Errorf("no PATCH failed without a response although the relay cut one: %+v", firstRequests(reqs))
	}
	if next := reqs[broken+1:]; len(next) == 0 || next[0].Method != "HEAD" {
		return "", fmt.Errorf("after the cut the client did not send HEAD first: %+v", firstRequests(next))
	}

	resumeAt, conflicts := int64(-1), 0
	var serverOffset *string // the Upload-Offset the server returned last
	for _, req := range reqs[broken+1:] {
		if req.Status == nil {
			return "", fmt.Errorf("a %s failed without a response after the resume, although the relay cuts only once", req.Method)
		}
		if req.Method == "PATCH" {
			if serverOffset == nil || req.UploadOffset == nil || *req.UploadOffset != *serverOffset {
				return "", fmt.Errorf("after the cut a PATCH sent Upload-Offset %s, but the server last returned %s", derefOr(req.UploadOffset, "none"), derefOr(serverOffset, "none"))
			}
			if *req.Status == 409 || *req.Status == 423 {
				conflicts++
				serverOffset = nil // the client must ask again with HEAD
				continue
			}
		}
		if *req.Status != 200 && *req.Status != 204 {
			return "", fmt.Errorf("after the cut a %s returned status %d", req.Method, *req.Status)
		}
		offset, err := parseOffset(req.Offset, size)
		if err != nil {
			return "", fmt.Errorf("after the cut a %s returned status %d with %w", req.Method, *req.Status, err)
		}
		if req.Method == "PATCH" {
			if sent, _ := parseOffset(req.UploadOffset, size); offset < sent {
				return "", fmt.Errorf("a PATCH from offset %d returned Upload-Offset %d", sent, offset)
			}
		}
		if req.Method == "HEAD" && resumeAt < 0 {
			if offset == 0 {
				return "", errors.New("the first HEAD after the cut returned Upload-Offset 0: the server lost what it had stored")
			}
			resumeAt = offset
		}
		serverOffset = req.Offset
	}
	if last, _ := parseOffset(serverOffset, size); serverOffset == nil || last != size {
		return "", fmt.Errorf("the last response returned Upload-Offset %s, want %d", derefOr(serverOffset, "none"), size)
	}
	return checkRelayBytes(relay, size, resumeAt, fmt.Sprintf("%d requests, %d conflicts", len(reqs), conflicts))
}

// checkRelayBytes compares the bytes the relay carried with the resume at
// server offset resumeAt, and returns the description of the resume with
// detail added.
//
// Over TLS the relay cannot read the HTTP bytes, so it counts an upper
// bound whose excess over the true count never shrinks. Both checks hold
// for that bound as for the exact count over plain TCP.
func checkRelayBytes(relay *cutRelay, size, resumeAt int64, detail string) (string, error) {
	carried, payload, cutPayload := relay.upstreamBytes.Load(), relay.payloadBytes.Load(), relay.cutPayload.Load()

	// The server can store only body bytes that arrived before the cut.
	if resumeAt > cutPayload {
		return "", fmt.Errorf("the first HEAD after the cut returned Upload-Offset %d, but the relay delivered at most %d HTTP bytes before the cut", resumeAt, cutPayload)
	}
	// Resending from zero would push the whole file through the relay
	// after the cut, besides the requests' headers.
	if payload-cutPayload >= size {
		return "", fmt.Errorf("the relay carried %d HTTP bytes after the cut for a %d-byte file (%d before the cut): the client restarted instead of resuming",
			payload-cutPayload, size, cutPayload)
	}

	if !relay.tlsRecords {
		return fmt.Sprintf("large file cut after %d bytes, resumed at server offset %d (%s, relay carried %d bytes)",
			relay.cutAfter, resumeAt, detail, carried), nil
	}
	return fmt.Sprintf("large file cut after %d bytes of TLS records (at most %d HTTP bytes), resumed at server offset %d (%s, relay carried %d bytes of TLS records, at most %d HTTP bytes)",
		relay.cutAfter, cutPayload, resumeAt, detail, carried, payload), nil
}

// parseOffset parses an Upload-Offset value, which must lie in [0, size].
func parseOffset(value *string, size int64) (int64, error) {
	if value == nil {
		return 0, errors.New("no Upload-Offset")
	}
	offset, err := strconv.ParseInt(*value, 10, 64)
	if err != nil || offset < 0 || offset > size {
		return 0, fmt.Errorf("Upload-Offset %q, want a number from 0 to %d", *value, size)
	}
	return offset, nil
}

func derefOr(s *string, fallback string) string {
	if s == nil {
		return fallback
	}
	return *s
}

func firstRequests(reqs []tusRequest) []tusRequest {
	return reqs[:min(len(reqs), 5)]
}
