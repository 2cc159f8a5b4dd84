package dataplane

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bai-storage/storage-proxy/control/token"
)

// signClaims signs claims as an HS256 JWT with key, bypassing the schema
// checks of token.Mint*, so a test can build tokens the minting side never
// would.
func signClaims(t *testing.T, key []byte, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// replaceHeader swaps the JOSE header of tok for header, keeping the claims
// and signature segments.
func replaceHeader(tok, header string) string {
	parts := strings.SplitN(tok, ".", 3)
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + parts[1] + "." + parts[2]
}

// replaceClaims swaps the claims segment of tok, keeping its signature.
func replaceClaims(tok, claims string) string {
	parts := strings.SplitN(tok, ".", 3)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(claims)) + "." + parts[2]
}

// TestHostileTokens sends forged, expired and misused tokens to /download
// and /upload. Each is rejected with 400 problem+json before any file is
// opened: the download body contains nothing of the file and the upload's
// partial file stays empty.
func TestHostileTokens(t *testing.T) {
	e := newEnv(t, testModes[0])
	secretContent := []byte("file content that no forged token may read")
	e.writeFile("f.txt", secretContent)
	uploadURL, session := e.uploadSession("up.bin", 3)
	partial := filepath.Join(e.staging, session)
	goodUpload := strings.TrimPrefix(uploadURL, e.base+"/upload?token=")
	goodDownload := e.downloadToken("f.txt")

	downloadClaims := func() jwt.MapClaims {
		return jwt.MapClaims{"op": "download", "volume": "local", "vfid": e.vf.String(), "relpath": "f.txt",
			"exp": time.Now().Add(time.Hour).Unix()}
	}
	uploadClaims := func() jwt.MapClaims {
		return jwt.MapClaims{"op": "upload", "volume": "local", "vfid": e.vf.String(), "relpath": "up.bin",
			"size": 3, "session": session, "exp": time.Now().Add(time.Hour).Unix()}
	}
	without := func(claims jwt.MapClaims, key string) jwt.MapClaims {
		delete(claims, key)
		return claims
	}
	with := func(claims jwt.MapClaims, key string, value any) jwt.MapClaims {
		claims[key] = value
		return claims
	}
	key := []byte(testSecret)
	lastByteDiffers := append([]byte(testSecret[:len(testSecret)-1]), testSecret[len(testSecret)-1]^1)
	expiredBySecond := time.Now().Add(-time.Second).Unix()

	type hostileToken struct {
		name, token, reason string
	}
	forged := func(good string, claims func() jwt.MapClaims, tamperedClaims string) []hostileToken {
		return []hostileToken{
			{"alg none", unsigned(replaceHeader(good, `{"alg":"none","typ":"JWT"}`)), "alg value is not allowed"},
			{"alg none with signature", replaceHeader(good, `{"alg":"none","typ":"JWT"}`), "alg value is not allowed"},
			{"RS256 header over the HMAC key", replaceHeader(good, `{"alg":"RS256","typ":"JWT"}`), "alg value is not allowed"},
			{"HS512", func() string {
				tok, err := jwt.NewWithClaims(jwt.SigningMethodHS512, claims()).SignedString(key)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}(), "alg value is not allowed"},
			{"no exp", signClaims(t, key, without(claims(), "exp")), `missing the "exp" claim`},
			{"expired by one second", signClaims(t, key, with(claims(), "exp", expiredBySecond)), "Signature has expired"},
			{"tampered claims", replaceClaims(good, tamperedClaims), "Signature verification failed"},
			{"wrong key", signClaims(t, []byte("another-secret"), claims()), "Signature verification failed"},
			{"key differing in the last byte", signClaims(t, lastByteDiffers, claims()), "Signature verification failed"},
			{"empty key", signClaims(t, []byte{}, claims()), "Signature verification failed"},
			{"garbage", "not-a-token", "Invalid token"},
		}
	}

	t.Run("download", func(t *testing.T) {
		tampered := `{"op":"download","volume":"local","vfid":"` + e.vf.String() + `","relpath":"../../../../etc/hostname","exp":9999999999}`
		cases := forged(goodDownload, downloadClaims, tampered)
		cases = append(cases,
			hostileToken{"upload token", goodUpload, "value is not exactly 'download'"},
		)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				resp, body := e.get(e.base+"/download?token="+c.token, nil)
				expectTokenRejected(t, resp, body, c.reason)
				if bytes.Contains(body, secretContent) {
					t.Errorf("the response carries the file")
				}
			})
		}
	})

	t.Run("upload", func(t *testing.T) {
		tampered := `{"op":"upload","volume":"local","vfid":"` + e.vf.String() + `","relpath":"up.bin","size":1000000,"session":"` +
			session + `","exp":9999999999}`
		cases := forged(goodUpload, uploadClaims, tampered)
		cases = append(cases,
			hostileToken{"download token", goodDownload, "value is not exactly 'upload'"},
		)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				u := e.base + "/upload?token=" + c.token
				resp, body := e.patch(u, 0, []byte("abc"))
				expectTokenRejected(t, resp, body, c.reason)
				resp = e.head(u)
				if resp.StatusCode != 400 {
					t.Errorf("HEAD: status %d, want 400", resp.StatusCode)
				}
				if got := fileSize(t, partial); got != 0 {
					t.Errorf("the partial file has %d bytes after a rejected PATCH", got)
				}
			})
		}
	})

	t.Run("unknown volume", func(t *testing.T) {
		resp, body := e.get(e.downloadURL("f.txt", "", func(d *token.Download) { d.Volume = "other" }), nil)
		expectStatus(t, "download", resp, body, 400)
		if p := problem(t, body); p["type"] != typeInvalidVolume {
			t.Errorf("download: type %v, want %s", p["type"], typeInvalidVolume)
		}
		u, otherSession := e.uploadSession("up2.bin", 3, func(u *token.Upload) { u.Volume = "other" })
		resp, body = e.patch(u, 0, []byte("abc"))
		expectStatus(t, "upload", resp, body, 400)
		if p := problem(t, body); p["type"] != typeInvalidVolume {
			t.Errorf("upload: type %v, want %s", p["type"], typeInvalidVolume)
		}
		if got := fileSize(t, filepath.Join(e.staging, otherSession)); got != 0 {
			t.Errorf("the partial file has %d bytes", got)
		}
	})

	// The genuine tokens still work, so the rejections above are about the
	// forgery and not a broken setup.
	resp, body := e.get(e.base+"/download?token="+goodDownload, nil)
	expectStatus(t, "genuine download token", resp, body, 200)
	resp, body = e.patch(uploadURL, 0, []byte("abc"))
	expectStatus(t, "genuine upload token", resp, body, 204)
	if got, _ := os.ReadFile(filepath.Join(e.vfPath, "up.bin")); string(got) != "abc" {
		t.Errorf("up.bin contains %q", got)
	}
}

// unsigned drops the signature of tok and keeps the trailing dot, the form
// of an "alg": "none" JWT.
func unsigned(tok string) string {
	return tok[:strings.LastIndexByte(tok, '.')+1]
}

// jsonText renders a decoded JSON value for a substring check: a string as
// itself, anything else as JSON.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// expectTokenRejected checks a 400 problem+json whose data names the token
// and contains reason.
func expectTokenRejected(t *testing.T, resp *http.Response, body []byte, reason string) {
	t.Helper()
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400; body %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", got)
	}
	data, _ := problem(t, body)["data"].(map[string]any)
	if data == nil || data["token"] == nil {
		t.Fatalf("data %v, want a token entry", data)
	}
	if got := jsonText(data["token"]); !strings.Contains(got, reason) {
		t.Errorf("token error %s, want it to contain %q", got, reason)
	}
}
