package dataplane

import (
	"net/http"
	"strings"
	"testing"
)

func TestCORSActualRequests(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		e.writeFile("f.txt", []byte("hello"))
		origin := "https://ui.example"

		cases := []struct {
			name       string
			url        string
			headers    map[string]string
			status     int
			wantExpose []string
		}{
			{"download", e.downloadURL("f.txt", ""), map[string]string{"Origin": origin}, 200,
				[]string{"Content-Disposition", "ETag", "Accept-Ranges", "Content-Length"}},
			{"ranged download", e.downloadURL("f.txt", ""), map[string]string{"Origin": origin, "Range": "bytes=1-"}, 206,
				[]string{"Content-Disposition", "Content-Range", "Content-Length"}},
			{"download error", e.downloadURL("missing.txt", ""), map[string]string{"Origin": origin}, 404, []string{"Content-Length"}},
			{"liveness", e.base + "/", map[string]string{"Origin": origin}, 200, []string{"Content-Length"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp, _ := e.get(c.url, c.headers)
				if resp.StatusCode != c.status {
					t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
				}
				if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
					t.Errorf("Access-Control-Allow-Origin %q, want %q", got, origin)
				}
				if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
					t.Errorf("Access-Control-Allow-Credentials %q, want true", got)
				}
				exposed := strings.Split(resp.Header.Get("Access-Control-Expose-Headers"), ",")
				for _, name := range c.wantExpose {
					if !containsFold(exposed, name) {
						t.Errorf("Access-Control-Expose-Headers %q lacks %s", exposed, name)
					}
				}
				for _, name := range safelistedResponseHeaders {
					if containsFold(exposed, name) {
						t.Errorf("Access-Control-Expose-Headers %q lists the safelisted %s", exposed, name)
					}
				}
			})
		}

		resp, _ := e.get(e.downloadURL("f.txt", ""), nil)
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("without Origin: Access-Control-Allow-Origin %q, want none", got)
		}
	})
}

func containsFold(list []string, name string) bool {
	for _, s := range list {
		if strings.EqualFold(strings.TrimSpace(s), name) {
			return true
		}
	}
	return false
}

func TestCORSPreflight(t *testing.T) {
	e := newEnv(t, testModes[0])
	for _, path := range []string{"/", "/download"} {
		t.Run(path, func(t *testing.T) {
			resp, body := e.do(http.MethodOptions, e.base+path, nil, map[string]string{
				"Origin":                         "https://ui.example",
				"Access-Control-Request-Method":  "GET",
				"Access-Control-Request-Headers": "x-requested-with, range",
			})
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      "https://ui.example",
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     "GET",
				"Access-Control-Allow-Headers":     "X-REQUESTED-WITH,RANGE",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if got := resp.Header.Get("Access-Control-Max-Age"); got != "" {
				t.Errorf("Access-Control-Max-Age %q, want none", got)
			}

			resp, body = e.do(http.MethodOptions, e.base+path, nil, map[string]string{"Origin": "https://ui.example"})
			if resp.StatusCode != 403 || !strings.HasPrefix(string(body), "CORS preflight request failed: ") {
				t.Errorf("without Access-Control-Request-Method: status %d, body %q", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
				t.Errorf("403 Content-Type %q, want text/plain", got)
			}
			resp, _ = e.do(http.MethodOptions, e.base+path, nil, map[string]string{"Access-Control-Request-Method": "GET"})
			if resp.StatusCode != 403 {
				t.Errorf("without Origin: status %d, want 403", resp.StatusCode)
			}
		})
	}
}

func TestCORSUpload(t *testing.T) {
	e := newEnv(t, testModes[0])
	u, _ := e.uploadSession("f.bin", 10)
	check := func(request string, resp *http.Response) {
		t.Helper()
		for k, v := range map[string]string{
			"Access-Control-Allow-Origin":   "*",
			"Access-Control-Allow-Methods":  "*",
			"Access-Control-Allow-Headers":  uploadAllowHeaders,
			"Access-Control-Expose-Headers": uploadExposeHeaders,
			"Tus-Resumable":                 "1.0.0",
		} {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s: %s %q, want %q", request, k, got, v)
			}
		}
		if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "" {
			t.Errorf("%s: Access-Control-Allow-Credentials %q, want none", request, got)
		}
	}
	withOrigin := map[string]string{"Origin": "https://ui.example", "Tus-Resumable": "1.0.0"}
	resp, _ := e.do(http.MethodHead, u, nil, withOrigin)
	check("HEAD", resp)
	resp, _ = e.do(http.MethodHead, e.base+"/upload?token=bad", nil, withOrigin)
	check("HEAD with a bad token", resp)
	resp, _ = e.patch(u, 3, []byte("x"))
	check("409", resp)
	resp, _ = e.do(http.MethodOptions, e.base+"/upload", nil, withOrigin)
	check("OPTIONS", resp)
}
