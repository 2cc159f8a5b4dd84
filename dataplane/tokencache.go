package dataplane

import (
	"sync"
	"time"

	"github.com/bai-storage/storage-proxy/control/token"
)

// downloadTokenCacheSize bounds the verified download tokens a Server
// remembers. A token and its claims take roughly 500 bytes, so a full cache
// takes about 1 MiB.
const downloadTokenCacheSize = 2048

// downloadTokenCache remembers download tokens that verified, so repeated
// requests with one token skip the HMAC and the JSON decoding: aria2c's
// ranged connections, resumed downloads, and the web UI fetching a file
// again. Tokens that failed are not remembered. An entry counts only
// until the token's own expiry, so a hit means exactly what verifying
// again would. The key is the whole token, signature included, so no
// other string can hit an entry. The secret is not part of the key because
// a Server has one secret for its lifetime.
type downloadTokenCache struct {
	mu      sync.Mutex
	entries map[string]token.Download
}

func newDownloadTokenCache() *downloadTokenCache {
	return &downloadTokenCache{entries: make(map[string]token.Download, downloadTokenCacheSize)}
}

// verify returns the claims of tok, from the cache when tok verified
// before and has not expired at now. A hit allocates nothing.
func (c *downloadTokenCache) verify(secret, tok []byte, now time.Time) (token.Download, error) {
	c.mu.Lock()
	claims, ok := c.entries[string(tok)]
	if ok && !now.Before(claims.Expires) {
		delete(c.entries, string(tok))
		ok = false
	}
	c.mu.Unlock()
	if ok {
		return claims, nil
	}

	key := string(tok)
	claims, err := token.VerifyDownload(secret, key, now)
	if err != nil {
		return claims, err
	}
	c.mu.Lock()
	if len(c.entries) >= downloadTokenCacheSize {
		// Evicting an arbitrary entry keeps the bound without
		// bookkeeping. A token evicted too early is only verified again.
		for key := range c.entries {
			delete(c.entries, key)
			break
		}
	}
	c.entries[key] = claims
	c.mu.Unlock()
	return claims, nil
}
