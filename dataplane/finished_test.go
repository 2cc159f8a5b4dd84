package dataplane

import (
	"os"
	"path/filepath"
	"testing"
)

// TestUploadPatchAfterCompletion checks that a PATCH arriving after the
// upload is complete never gets a response saying its bytes were stored.
// Only an empty PATCH at the final offset (a retry of the last request) gets
// 204.
func TestUploadPatchAfterCompletion(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode testMode) {
		e := newEnv(t, mode)
		first := pattern(mib, 7)
		u, _ := e.uploadSession("done.bin", int64(len(first)))
		resp, body := e.patch(u, 0, first)
		expectStatus(t, "completing PATCH", resp, body, 204)

		resp, body = e.patch(u, 0, pattern(mib, 8))
		expectStatus(t, "PATCH at 0 after completion", resp, body, 409)
		expectOffset(t, "PATCH at 0 after completion", resp, mib)

		resp, body = e.patch(u, mib, nil)
		expectStatus(t, "empty PATCH at the final offset", resp, body, 204)
		expectOffset(t, "empty PATCH at the final offset", resp, mib)

		got, err := os.ReadFile(filepath.Join(e.vfPath, "done.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(first) {
			t.Fatal("the completed file changed after a late PATCH")
		}
	})
}
