package main

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestAccessLogFollowsPkgNS checks that logging.pkg-ns governs the access
// log as upstream's aiohttp.access logger: shown under "aiohttp" = "INFO",
// as in the deployment guide's sample, and hidden under the default
// "" = "WARNING", or when "aiohttp.access" is set above INFO.
func TestAccessLogFollowsPkgNS(t *testing.T) {
	cases := []struct {
		name    string
		pkgNS   string
		visible bool
	}{
		{"guide sample", `"" = "WARNING"` + "\n" + `"aiohttp" = "INFO"` + "\n" + `"ai.backend" = "INFO"`, true},
		{"default pkg-ns", "", false},
		{"access log raised", `"" = "INFO"` + "\n" + `"aiohttp.access" = "WARNING"`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeConfig(t, 1, true)
			if c.pkgNS != "" {
				cfg, _ := os.ReadFile(p.configFile)
				text := strings.Replace(string(cfg), "[logging.console]", "[logging.pkg-ns]\n"+c.pkgNS+"\n\n[logging.console]", 1)
				os.WriteFile(p.configFile, []byte(text), 0o644)
			}
			p.start(t)
			waitStatus(t, p.clientURL+"/", 15*time.Second)
			if status, out := managerCall(t, p, http.MethodPost, "/folder/create", map[string]any{"volume": "local", "vfid": testVFID}); status != http.StatusNoContent {
				t.Fatalf("create folder: %d %s", status, out)
			}
			uploadFile(t, p, "logged.bin", []byte("access log test"))
			tok := mintToken(t, p, "/folder/file/download", map[string]any{"volume": "local", "vfid": testVFID, "relpath": "logged.bin"})
			if status, _ := download(t, p, tok, ""); status != 200 {
				t.Fatalf("download: %d", status)
			}

			// The worker's records reach the supervisor through a pipe, so
			// wait a moment for a line that should be there.
			deadline := time.Now().Add(5 * time.Second)
			found := false
			for !found && time.Now().Before(deadline) {
				found = strings.Contains(p.stderr.String(), "path=/download")
				if !found {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if found != c.visible {
				t.Errorf("access line for the download visible: %v, want %v\n%s", found, c.visible, p.stderr.String())
			}
			// The manager API logs its requests on the same logger.
			manager := strings.Contains(p.stderr.String(), "api=manager method=POST path=/folder/create status=204")
			if manager != c.visible {
				t.Errorf("access line for the manager call visible: %v, want %v\n%s", manager, c.visible, p.stderr.String())
			}
		})
	}
}
