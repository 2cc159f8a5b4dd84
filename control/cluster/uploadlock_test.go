package cluster

import (
	"context"
	"errors"
	"testing"
	"time"
)

// twoProcesses connects two clients to one member, as two proxies (or two
// workers) on one etcd.
func twoProcesses(t *testing.T) (*UploadLocks, *UploadLocks, *Client) {
	t.Helper()
	m, addr := startMember(t)
	t.Cleanup(m.Close)
	var locks [2]*UploadLocks
	var clients [2]*Client
	for i := range locks {
		c, err := Connect(context.Background(), Options{Endpoint: addr, Namespace: "locks"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		clients[i] = c
		locks[i] = c.UploadLocks("process-"+string(rune('a'+i)), 2*time.Second)
		t.Cleanup(func() { locks[i].Close(context.Background()) })
	}
	return locks[0], locks[1], clients[0]
}

func TestUploadLockExcludesAndRecords(t *testing.T) {
	a, b, _ := twoProcesses(t)
	ctx := context.Background()
	expires := time.Now().Add(time.Hour)

	la, err := a.TryLock(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := la.Recorded(); ok {
		t.Fatal("a new session has a recorded offset")
	}
	if _, err := b.TryLock(ctx, "s1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second process: %v, want ErrLocked", err)
	}
	if _, err := a.TryLock(ctx, "s1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second request of the same process: %v, want ErrLocked", err)
	}
	if _, err := b.TryLock(ctx, "s2"); err != nil {
		t.Fatalf("another session: %v", err)
	}
	if err := la.Record(ctx, 5<<20, expires); err != nil {
		t.Fatal(err)
	}
	if err := la.Record(ctx, 7<<20, expires); err != nil {
		t.Fatal(err)
	}
	if err := la.Unlock(ctx); err != nil {
		t.Fatal(err)
	}

	lb, err := b.TryLock(ctx, "s1")
	if err != nil {
		t.Fatalf("after Unlock: %v", err)
	}
	if off, ok := lb.Recorded(); !ok || off != 7<<20 {
		t.Fatalf("recorded offset %d %v, want %d", off, ok, 7<<20)
	}
	if err := lb.Forget(ctx); err != nil {
		t.Fatal(err)
	}
	lb.Unlock(ctx)
	la, err = a.TryLock(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := la.Recorded(); ok {
		t.Fatal("the record survived Forget")
	}
	la.Unlock(ctx)
}

func TestUploadLockDeadHolderExpires(t *testing.T) {
	a, b, _ := twoProcesses(t)
	ctx := context.Background()
	la, err := a.TryLock(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Record(ctx, 42, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The process dies: its lease is no longer kept alive.
	a.mu.Lock()
	a.stop()
	a.mu.Unlock()

	start := time.Now()
	var lb *UploadLock
	for {
		lb, err = b.TryLock(ctx, "crash")
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLocked) || time.Since(start) > 10*time.Second {
			t.Fatalf("the lock of a dead process was not freed: %v after %s", err, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("freed %s after the holder stopped", time.Since(start).Round(100*time.Millisecond))
	if off, ok := lb.Recorded(); !ok || off != 42 {
		t.Fatalf("recorded offset %d %v after the holder died, want 42", off, ok)
	}
	select {
	case <-la.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the dead holder's Lost channel never closed")
	}
	// A holder that comes back cannot record over the new holder.
	if err := la.Record(ctx, 99, time.Now().Add(time.Hour)); !errors.Is(err, ErrLockLost) {
		t.Fatalf("Record by a holder whose lease ended: %v, want ErrLockLost", err)
	}
	if err := lb.Record(ctx, 43, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestUploadLockStaleKeyTakenOver(t *testing.T) {
	a, b, _ := twoProcesses(t)
	ctx := context.Background()
	la, err := a.TryLock(ctx, "stale")
	if err != nil {
		t.Fatal(err)
	}
	// Unlock could not reach etcd: the request ended, the key stayed.
	la.release()
	if _, err := b.TryLock(ctx, "stale"); !errors.Is(err, ErrLocked) {
		t.Fatalf("another process: %v, want ErrLocked while the key stays", err)
	}
	again, err := a.TryLock(ctx, "stale")
	if err != nil {
		t.Fatalf("the same process could not take its own stale key: %v", err)
	}
	if err := again.Record(ctx, 1, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	again.Unlock(ctx)
	if lb, err := b.TryLock(ctx, "stale"); err != nil {
		t.Fatalf("after the unlock: %v", err)
	} else {
		lb.Unlock(ctx)
	}
}
