package cluster

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func freePortPair(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if next, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1)); err == nil {
			next.Close()
			return port
		}
	}
	t.Fatal("no free port pair")
	return 0
}

func startMember(t *testing.T) (*Member, string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePortPair(t))
	m, err := StartMember(t.TempDir(), addr, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return m, addr
}

func TestConnectUnreachableNamesAddress(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePortPair(t))
	start := time.Now()
	_, err := Connect(context.Background(), Options{Endpoint: addr, Namespace: "t", ConnectTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("Connect succeeded with nothing listening")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name %s", err, addr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect took %s", d)
	}
}

func TestKeysAndRegistration(t *testing.T) {
	m, addr := startMember(t)
	defer m.Close()
	c, err := Connect(context.Background(), Options{Endpoint: addr, Namespace: "ns", NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	if err := c.Put(ctx, "config/x", "global"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.GetMerged(ctx, "config/x"); err != nil || !ok || v != "global" {
		t.Fatalf("GetMerged = %q %v %v", v, ok, err)
	}
	c.Put(ctx, "nodes/storage/n1/config/x", "node")
	if v, _, _ := c.GetMerged(ctx, "config/x"); v != "node" {
		t.Fatalf("node scope not preferred: %q", v)
	}

	reg, err := c.Register(ctx, "local", ProxyEntry{ClientAPI: "http://127.0.0.1:6021", ManagerAPI: "http://127.0.0.1:6022", Secret: "s"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetPrefix(ctx, "volumes/proxies/local/")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"client_api": "http://127.0.0.1:6021", "manager_api": "http://127.0.0.1:6022", "secret": "s", "ssl_verify": "false"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// The lease outlives its TTL while the registration is open.
	time.Sleep(3 * time.Second)
	if got, _ := c.GetPrefix(ctx, "volumes/proxies/local/"); len(got) != 4 {
		t.Fatalf("registration expired while kept alive: %v", got)
	}
	if err := reg.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetPrefix(ctx, "volumes/proxies/local/"); len(got) != 0 {
		t.Fatalf("keys left after Close: %v", got)
	}

	if _, err := c.Register(ctx, "-bad-", ProxyEntry{}, time.Second); err == nil {
		t.Error("Register accepted a name that is not a slug")
	}
}

func TestHealthFollowsOutage(t *testing.T) {
	m, addr := startMember(t)
	c, err := Connect(context.Background(), Options{Endpoint: addr, Namespace: "ns", ProbeInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m.Close()
	deadline := time.Now().Add(5 * time.Second)
	for c.Health().OK {
		if time.Now().After(deadline) {
			t.Fatal("health still OK 5 s after etcd stopped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
