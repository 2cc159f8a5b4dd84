package volume

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/beneath"
)

// TestReservationsScanBounded checks that the free-space check does not stat
// every open session for each new one. It scans at most once per
// rescanInterval and counts sessions recorded in between at their full size.
func TestReservationsScanBounded(t *testing.T) {
	dir := t.TempDir()
	mount, err := beneath.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer mount.Close()

	r := &uploadReservations{sessions: map[string]reservation{}}
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < 1000; i++ {
		name := "s" + strconv.Itoa(i)
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, 10), 0o644); err != nil {
			t.Fatal(err)
		}
		r.pendingLocked(mount, now)
		r.sessions[name] = reservation{partial: name, size: 100, expires: now.Add(time.Hour)}
		r.pending += 100
	}
	if r.scans != 1 {
		t.Fatalf("%d full scans for 1000 sessions created at once, want 1", r.scans)
	}
	if got := r.pendingLocked(mount, now); got != 1000*100 {
		t.Errorf("pending between scans = %d, want the full sizes %d", got, 1000*100)
	}

	later := now.Add(rescanInterval + time.Second)
	if got := r.pendingLocked(mount, later); got != 1000*90 {
		t.Errorf("pending after a rescan = %d, want %d (sizes minus the bytes on disk)", got, 1000*90)
	}
	if r.scans != 2 {
		t.Errorf("scans = %d after the interval, want 2", r.scans)
	}

	os.Remove(filepath.Join(dir, "s0"))
	expired := later.Add(2 * time.Hour)
	if got := r.pendingLocked(mount, expired); got != 0 || len(r.sessions) != 0 {
		t.Errorf("after expiry: pending %d, %d sessions left; want 0 and 0", got, len(r.sessions))
	}
}
