package main

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer accepts connections and echoes what it reads until EOF.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRelayCutsOnceAtByte(t *testing.T) {
	relay, err := startCutRelay(echoServer(t), 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()

	conn, err := net.Dial("tcp", relay.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// The second write may fail because the relay has closed the
	// connection, and only what arrived counts.
	conn.Write(bytes.Repeat([]byte("a"), 600))
	conn.Write(bytes.Repeat([]byte("b"), 600))
	echoed, _ := io.ReadAll(conn)

	if len(echoed) > 1000 {
		t.Errorf("echoed %d bytes through a relay that cuts after 1000", len(echoed))
	}
	if got := relay.upstreamBytes.Load(); got != 1000 {
		t.Errorf("relay forwarded %d bytes upstream, want exactly 1000", got)
	}
	if got := relay.cuts.Load(); got != 1 {
		t.Errorf("relay cut %d times, want 1", got)
	}
}

func TestRelayPassesThroughAfterCut(t *testing.T) {
	relay, err := startCutRelay(echoServer(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()

	first, err := net.Dial("tcp", relay.addr())
	if err != nil {
		t.Fatal(err)
	}
	first.SetDeadline(time.Now().Add(5 * time.Second))
	first.Write([]byte("0123456789abcdef"))
	io.ReadAll(first)
	first.Close()

	second, err := net.Dial("tcp", relay.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(5 * time.Second))
	payload := bytes.Repeat([]byte("xyz"), 100_000)
	go func() {
		second.Write(payload)
		second.(*net.TCPConn).CloseWrite()
	}()
	echoed, err := io.ReadAll(second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(echoed, payload) {
		t.Errorf("second connection echoed %d bytes, want the %d sent", len(echoed), len(payload))
	}
	if got := relay.cuts.Load(); got != 1 {
		t.Errorf("relay cut %d times, want 1", got)
	}
	if got := relay.connections.Load(); got != 2 {
		t.Errorf("relay counted %d connections, want 2", got)
	}
}

func TestRelayCloseEndsOpenConnections(t *testing.T) {
	relay, err := startCutRelay(echoServer(t), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", relay.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatal(err)
	}

	closed := make(chan struct{})
	go func() {
		relay.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a connection was open")
	}
	if _, err := conn.Read(buf); err == nil {
		t.Error("connection still readable after the relay closed")
	}
}
