package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// withAccessLog writes one INFO line per manager API request on the
// http.access logger, as the client API does, so that pkg-ns
// "aiohttp.access" governs both. The query string is left out: the manager
// sends its parameters in JSON bodies and its secret in a header.
func withAccessLog(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelInfo) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		log.LogAttrs(context.Background(), slog.LevelInfo, "request",
			slog.String("api", "manager"),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr))
	})
}
