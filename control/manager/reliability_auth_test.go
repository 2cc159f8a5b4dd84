package manager

import (
	"net/http"
	"testing"
)

// TestManagerSecretNearMisses sends secrets that differ from the configured
// one in the ways a timing or prefix comparison would get wrong. Each gets
// 403, and the one exact secret still gets 200. Spaces around the value are
// not tried: HTTP strips them from every field value (RFC 9110, 5.5).
func TestManagerSecretNearMisses(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	lastByte := testSecret[:len(testSecret)-1] + string(testSecret[len(testSecret)-1]^1)
	cases := []struct {
		name, token string
		present     bool
		title       string
	}{
		{"empty header", "", true, "Forbidden (missing auth token)"},
		{"last byte differs", lastByte, true, "Forbidden (invalid auth token)"},
		{"one byte short", testSecret[:len(testSecret)-1], true, "Forbidden (invalid auth token)"},
		{"one byte long", testSecret + "x", true, "Forbidden (invalid auth token)"},
		{"different case", "MANAGER-SECRET-FOR-TESTS", true, "Forbidden (invalid auth token)"},
		{"space inside", testSecret[:4] + " " + testSecret[4:], true, "Forbidden (invalid auth token)"},
		{"wrong secret", "not-the-secret", true, "Forbidden (invalid auth token)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			header := http.Header{}
			if c.present {
				header[authHeader] = []string{c.token}
			}
			r := h.send("GET", "/volumes", nil, header)
			m := r.expectProblem(t, 403, "forbidden")
			if m["title"] != c.title {
				t.Errorf("title = %v, want %q", m["title"], c.title)
			}
		})
	}

	header := http.Header{}
	header.Set(authHeader, testSecret)
	if r := h.send("GET", "/volumes", nil, header); r.status != 200 {
		t.Errorf("the exact secret: status %d, want 200; body %s", r.status, r.body)
	}
}
