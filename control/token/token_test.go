package token

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bai-storage/storage-proxy/control/vfid"
)

var (
	secret = []byte("secure-token-for-users-download-upload-sessions")
	now    = time.Unix(1_800_000_000, 0)
	folder = mustVFID("user:3e1c7c7a-5f0a-4c51-9a2d-0c6a2b7f4e11/9b2f4c1d8e7a4b6c9d0e1f2a3b4c5d6e")
)

func mustVFID(s string) vfid.VFolderID {
	v, err := vfid.Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestDownloadRoundTrip(t *testing.T) {
	tok, err := MintDownload(secret, Download{Volume: "local", VFID: folder, Relpath: "a/b.txt", Archive: true, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	d, err := VerifyDownload(secret, tok, now)
	if err != nil {
		t.Fatalf("VerifyDownload: %v", err)
	}
	if d.Volume != "local" || d.VFID.String() != folder.String() || d.Relpath != "a/b.txt" || !d.Archive || d.UnmanagedPath != "" {
		t.Errorf("claims = %+v", d)
	}
	if !d.Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("Expires = %v", d.Expires)
	}
}

func TestUploadRoundTrip(t *testing.T) {
	tok, err := MintUpload(secret, Upload{Volume: "local", VFID: folder, Relpath: "x", Size: 5 << 30, Session: strings.Repeat("ab", 16), Expires: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	u, err := VerifyUpload(secret, tok, now)
	if err != nil {
		t.Fatalf("VerifyUpload: %v", err)
	}
	if u.Size != 5<<30 || u.Session != strings.Repeat("ab", 16) {
		t.Errorf("claims = %+v", u)
	}
}

func signed(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func downloadClaims() jwt.MapClaims {
	return jwt.MapClaims{"op": "download", "volume": "local", "vfid": folder.String(), "relpath": "f", "exp": now.Add(time.Hour).Unix()}
}

func TestVerifyRejects(t *testing.T) {
	good := signed(t, jwt.SigningMethodHS256, secret, downloadClaims())
	parts := strings.Split(good, ".")

	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	rsHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`))
	tampered := base64.RawURLEncoding.EncodeToString([]byte(`{"op":"download","volume":"other","vfid":"` + folder.String() + `","relpath":"f","exp":9999999999}`))

	noExp := downloadClaims()
	delete(noExp, "exp")
	expired := downloadClaims()
	expired["exp"] = now.Add(-time.Second).Unix()
	atExpiry := downloadClaims()
	atExpiry["exp"] = now.Unix()

	cases := []struct {
		name, tok, reason string
	}{
		{"alg none", noneHeader + "." + parts[1] + ".", "The specified alg value is not allowed"},
		{"RS256 header over HMAC", rsHeader + "." + parts[1] + "." + parts[2], "The specified alg value is not allowed"},
		{"tampered claims", parts[0] + "." + tampered + "." + parts[2], "Signature verification failed"},
		{"wrong secret", signed(t, jwt.SigningMethodHS256, []byte("other"), downloadClaims()), "Signature verification failed"},
		{"last secret byte differs", signed(t, jwt.SigningMethodHS256, append(append([]byte{}, secret[:len(secret)-1]...), 'X'), downloadClaims()), "Signature verification failed"},
		{"no exp", signed(t, jwt.SigningMethodHS256, secret, noExp), `Token is missing the "exp" claim`},
		{"expired by one second", signed(t, jwt.SigningMethodHS256, secret, expired), "Signature has expired"},
		{"expires now", signed(t, jwt.SigningMethodHS256, secret, atExpiry), "Signature has expired"},
		{"two segments", parts[0] + "." + parts[1], "Invalid token"},
		{"garbage", "not-a-token", "Invalid token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyDownload(secret, c.tok, now)
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error = %v, want *Error", err)
			}
			if !strings.Contains(te.Reason, c.reason) {
				t.Errorf("reason = %q, want it to contain %q", te.Reason, c.reason)
			}
		})
	}
}

func TestVerifyClaimSchema(t *testing.T) {
	upload, err := MintUpload(secret, Upload{Volume: "local", VFID: folder, Relpath: "x", Size: 1, Session: strings.Repeat("0", 32), Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = VerifyDownload(secret, upload, now)
	var te *Error
	if !errors.As(err, &te) || te.Fields["op"] != "value is not exactly 'download'" {
		t.Fatalf("upload token on download: %v", err)
	}

	download := signed(t, jwt.SigningMethodHS256, secret, downloadClaims())
	_, err = VerifyUpload(secret, download, now)
	if !errors.As(err, &te) || te.Fields["op"] != "value is not exactly 'upload'" || te.Fields["size"] == "" || te.Fields["session"] == "" {
		t.Fatalf("download token on upload: %v", err)
	}

	badSession := jwt.MapClaims{"op": "upload", "volume": "local", "vfid": folder.String(), "relpath": "x", "size": 1, "session": "../../etc/passwd", "exp": now.Add(time.Hour).Unix()}
	_, err = VerifyUpload(secret, signed(t, jwt.SigningMethodHS256, secret, badSession), now)
	if !errors.As(err, &te) || te.Fields["session"] == "" {
		t.Fatalf("session path: %v", err)
	}

	badVFID := downloadClaims()
	badVFID["vfid"] = "user:nope/x"
	_, err = VerifyDownload(secret, signed(t, jwt.SigningMethodHS256, secret, badVFID), now)
	if !errors.As(err, &te) || te.Fields["vfid"] == "" {
		t.Fatalf("bad vfid: %v", err)
	}

	if _, err := VerifyDownload(secret, "", now); !errors.As(err, &te) || te.Data() != "is required" {
		t.Fatalf("empty token: %v", err)
	}
}

func FuzzVerifyDownload(f *testing.F) {
	good, _ := MintDownload(secret, Download{Volume: "v", VFID: folder, Relpath: ".", Expires: now.Add(time.Hour)})
	f.Add(good)
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		d, err := VerifyDownload(secret, tok, now)
		if err == nil && (d.Volume == "" || d.Relpath == "") {
			t.Fatalf("accepted token with empty claims: %q", tok)
		}
		if err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v is not *Error", err)
			}
		}
	})
}
