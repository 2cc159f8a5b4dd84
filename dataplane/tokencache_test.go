package dataplane

import (
	"strconv"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/token"
	"github.com/bai-storage/storage-proxy/control/vfid"
)

func mintForCache(t *testing.T, relpath string, expires time.Time) string {
	t.Helper()
	qs := vfid.QuotaScopeID{Type: vfid.ScopeUser, UUID: randomUUID(t)}
	tok, err := token.MintDownload([]byte(testSecret), token.Download{
		Volume: "local", VFID: vfid.VFolderID{QuotaScope: &qs, Folder: randomUUID(t)}, Relpath: relpath, Expires: expires,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDownloadTokenCacheHonoursExpiry(t *testing.T) {
	c := newDownloadTokenCache()
	now := time.Now().Truncate(time.Second)
	tok := mintForCache(t, "a.bin", now.Add(10*time.Second))

	for range 2 {
		claims, err := c.verify([]byte(testSecret), []byte(tok), now)
		if err != nil || claims.Relpath != "a.bin" {
			t.Fatalf("verify: %+v %v", claims, err)
		}
	}
	if _, err := c.verify([]byte(testSecret), []byte(tok), now.Add(10*time.Second)); err == nil {
		t.Fatal("a cached token verified at its expiry time")
	}
	if _, err := c.verify([]byte(testSecret), []byte(tok), now.Add(time.Hour)); err == nil {
		t.Fatal("a cached token verified an hour after its expiry")
	}
}

func TestDownloadTokenCacheRejectsOtherStrings(t *testing.T) {
	c := newDownloadTokenCache()
	now := time.Now()
	tok := mintForCache(t, "a.bin", now.Add(time.Hour))
	if _, err := c.verify([]byte(testSecret), []byte(tok), now); err != nil {
		t.Fatal(err)
	}
	// Same header and claims, another signature.
	forged := tok[:len(tok)-4] + "AAAA"
	if forged == tok {
		forged = tok[:len(tok)-4] + "BBBB"
	}
	if _, err := c.verify([]byte(testSecret), []byte(forged), now); err == nil {
		t.Fatal("a token with a changed signature verified after the real one was cached")
	}
}

func TestDownloadTokenCacheStaysBounded(t *testing.T) {
	c := newDownloadTokenCache()
	now := time.Now()
	for i := range downloadTokenCacheSize + 100 {
		tok := mintForCache(t, "f"+strconv.Itoa(i), now.Add(time.Hour))
		if _, err := c.verify([]byte(testSecret), []byte(tok), now); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.entries); n > downloadTokenCacheSize {
		t.Fatalf("the cache holds %d entries, bound %d", n, downloadTokenCacheSize)
	}
}
