package manager

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRoutesUnderSwappedDirectory calls every path-taking manager route on
// "flip/canary.txt" while a goroutine keeps replacing "flip" between a link
// to a directory inside the vfolder and a link to the directory outside,
// which contains a canary.txt of its own. Whatever each call catches
// between its check and its use, nothing outside the vfolder is read,
// listed, written or deleted. The loop is bounded by count and time.
func TestRoutesUnderSwappedDirectory(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	f := newHostileFixture(t, h)
	f.rebuildA(t)
	inside := filepath.Join(f.dirA, "flip.real")
	writeFile(t, filepath.Join(inside, "canary.txt"), "inside")
	symlink(t, "flip.real", filepath.Join(f.dirA, "flip"))
	before := f.snapshot(t)
	f.resetTimes(t)

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		flip := filepath.Join(f.dirA, "flip")
		tmp := flip + ".tmp"
		for i := 0; !stop.Load() && i < 1_000_000; i++ {
			target := "flip.real"
			if i%2 == 0 {
				target = f.outside
			}
			_ = os.Remove(tmp)
			if err := os.Symlink(target, tmp); err != nil {
				continue
			}
			// rename(2) replaces "flip" atomically.
			_ = os.Rename(tmp, flip)
		}
	}()

	path := jsonString("flip/canary.txt")
	deadline := time.Now().Add(2 * time.Second)
	calls := 0
	for round := 0; round < 50 && time.Now().Before(deadline); round++ {
		for _, rt := range hostileRoutes() {
			r := h.call(rt.method, rt.path, rt.body(path))
			calls++
			if strings.Contains(string(r.body), "CANARY") {
				t.Errorf("%s: the response contains canary content: %s", rt.name, r.body)
			}
			if r.status >= 500 {
				t.Errorf("%s: status %d; body %s", rt.name, r.status, r.body)
			}
			// Restore what a successful rename, move or delete took away.
			if _, err := os.Lstat(filepath.Join(inside, "canary.txt")); err != nil {
				writeFile(t, filepath.Join(inside, "canary.txt"), "inside")
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d manager calls while the link flipped", calls)

	f.checkCanaries(t)
	if after := f.snapshot(t); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("entries outside the vfolder changed:\nbefore:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}
