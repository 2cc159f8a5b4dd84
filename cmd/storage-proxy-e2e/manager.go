package main

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// managerClient calls the manager API the way the Backend.AI manager does:
// a JSON body on every call (GET included) and the shared secret in
// X-BackendAI-Storage-Auth-Token.
type managerClient struct {
	baseURL string
	secret  string
	http    *http.Client

	calls     atomic.Int64
	wireBytes atomic.Int64 // request plus response body bytes
}

// newManagerClient returns a client of the manager API at baseURL that
// verifies an https server against pool (nil: the system roots).
func newManagerClient(baseURL, secret string, pool *x509.CertPool) *managerClient {
	return &managerClient{
		baseURL: baseURL,
		secret:  secret,
		// The manager's own client gives each call 5 minutes.
		http: newHTTPClient(pool, 5*time.Minute),
	}
}

// call sends body as JSON (nil sends no body, as the manager does for
// GET /volumes), requires the status want and decodes the response into
// out unless out is nil. The error names the route, both statuses and the
// response body.
func (m *managerClient) call(method, route string, body any, want int, out any) error {
	var reqBody io.Reader
	var sent int
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reqBody, sent = bytes.NewReader(encoded), len(encoded)
	}
	req, err := http.NewRequest(method, m.baseURL+route, reqBody)
	if err != nil {
		return err
	}
	req.Header.Set("X-BackendAI-Storage-Auth-Token", m.secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := m.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, route, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	m.calls.Add(1)
	m.wireBytes.Add(int64(sent + len(respBody)))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, route, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s with %s: status %d, want %d; body: %s", method, route, describeBody(body), resp.StatusCode, want, truncate(respBody, 500))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(respBody, out); err != nil {
		return fmt.Errorf("%s %s: decode response %s: %w", method, route, truncate(respBody, 500), err)
	}
	return nil
}

func describeBody(body any) string {
	if body == nil {
		return "no body"
	}
	encoded, _ := json.Marshal(body)
	return truncate(encoded, 300)
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

// parallel runs do(i) for i in [0, n) on workers goroutines and returns the
// first error. After an error no new index is started.
func parallel(n, workers int, do func(i int) error) error {
	var (
		next     atomic.Int64
		failed   atomic.Bool
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := do(i); err != nil {
					once.Do(func() { firstErr = err })
					failed.Store(true)
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// newUUID returns a random (version 4) UUID in the dashed form.
func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// folderUUID returns a random folder id as the manager sends it in a
// vfid: a version 4 UUID as 32 lowercase hex digits.
func folderUUID() string {
	u := newUUID()
	return u[0:8] + u[9:13] + u[14:18] + u[19:23] + u[24:36]
}
