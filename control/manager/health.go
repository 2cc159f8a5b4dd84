package manager

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// runChecks checks every volume concurrently, each bounded by its own
// CheckTimeout, and then appends the checks of Options.Ready.
func (s *server) runChecks(ctx context.Context) []Check {
	checks := make([]Check, len(s.opts.Volumes))
	var wg sync.WaitGroup
	for i, v := range s.opts.Volumes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checks[i] = Check{Name: "volume:" + v.Info().Name, Err: v.Check(ctx)}
		}()
	}
	wg.Wait()
	if s.opts.Ready != nil {
		checks = append(checks, s.opts.Ready(ctx)...)
	}
	return checks
}

func allHealthy(checks []Check) bool {
	for _, c := range checks {
		if c.Err != nil {
			return false
		}
	}
	return true
}

// getLivez responds with 200 while the process serves HTTP at all.
func (s *server) getLivez(w http.ResponseWriter, r *http.Request, _ []byte) error {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	return nil
}

// getReadyz responds with 200 when every check passes and 503 otherwise, with
// one item per check.
func (s *server) getReadyz(w http.ResponseWriter, r *http.Request, _ []byte) error {
	checks := s.runChecks(r.Context())
	items := make([]map[string]any, len(checks))
	for i, c := range checks {
		var msg any
		if c.Err != nil {
			msg = c.Err.Error()
			s.log.Warn("readiness check failed", "check", c.Name, "error", c.Err)
		}
		items[i] = map[string]any{"name": c.Name, "healthy": c.Err == nil, "error": msg}
	}

	status, code := "ok", http.StatusOK
	if !allHealthy(checks) {
		status, code = "error", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "checks": items})
	return nil
}

// getHealth always responds with 200, with "degraded" when a check fails, in the
// shape of upstream's newer /health.
func (s *server) getHealth(w http.ResponseWriter, r *http.Request, _ []byte) error {
	checks := s.runChecks(r.Context())
	now := isoTime(time.Now())
	items := make([]map[string]any, len(checks))
	for i, c := range checks {
		group, id := c.Name, c.Name
		if before, after, found := strings.Cut(c.Name, ":"); found {
			group, id = before, after
		}
		var msg any
		if c.Err != nil {
			msg = c.Err.Error()
		}
		items[i] = map[string]any{
			"service_group":   group,
			"component_id":    id,
			"is_healthy":      c.Err == nil,
			"last_checked_at": now,
			"error_message":   msg,
		}
	}

	healthy := allHealthy(checks)
	status := "ok"
	if !healthy {
		status = "degraded"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":    status,
		"version":   s.opts.Version,
		"component": "storage-proxy",
		"connectivity": map[string]any{
			"overall_healthy":     healthy,
			"connectivity_checks": items,
			"timestamp":           now,
		},
	})
	return nil
}
