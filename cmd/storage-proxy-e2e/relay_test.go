package main

import (
	"bytes"
	"crypto/tls"
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
	relay, err := startCutRelay(echoServer(t), 1000, false)
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
	relay, err := startCutRelay(echoServer(t), 10, false)
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
	relay, err := startCutRelay(echoServer(t), 1<<30, false)
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

// tlsRecord returns a record header of the given type and length followed
// by length bytes of body.
func tlsRecord(recordType byte, length int) []byte {
	record := []byte{recordType, 3, 3, byte(length >> 8), byte(length)}
	return append(record, bytes.Repeat([]byte{0xee}, length)...)
}

func TestTLSRecordCounterBoundsPayload(t *testing.T) {
	var stream []byte
	stream = append(stream, tlsRecord(22, 300)...)               // handshake: counts 0
	stream = append(stream, tlsRecord(20, 1)...)                 // change_cipher_spec: counts 0
	stream = append(stream, tlsRecord(tlsTypeAppData, 1000)...)  // counts 1000-16
	stream = append(stream, tlsRecord(tlsTypeAppData, 10)...)    // shorter than a tag: counts 0
	stream = append(stream, tlsRecord(tlsTypeAppData, 16401)...) // a full TLS 1.3 record of 16384 bytes
	stream = append(stream, tlsRecord(21, 2)...)                 // alert: counts 0
	const want = 1000 - 16 + 16401 - 16

	// The result must not depend on how reads split the stream.
	for _, step := range []int{1, 2, 5, 7, 4096, len(stream)} {
		var c tlsRecordCounter
		var got int64
		for off := 0; off < len(stream); off += step {
			n, err := c.feed(stream[off:min(off+step, len(stream))])
			if err != nil {
				t.Fatalf("step %d: feed at offset %d: %v", step, off, err)
			}
			got += n
		}
		if got != want {
			t.Errorf("step %d: counted %d payload bytes, want %d", step, got, want)
		}
	}
}

func TestTLSRecordCounterSkipsCutRecord(t *testing.T) {
	var c tlsRecordCounter
	record := tlsRecord(tlsTypeAppData, 5000)
	got, err := c.feed(record[:4000])
	if err != nil {
		t.Fatal(err)
	}
	if got != 0 {
		t.Errorf("a record cut after 4000 of its 5005 bytes counted %d payload bytes, want 0", got)
	}
}

func TestTLSRecordCounterRejectsPlainHTTP(t *testing.T) {
	var c tlsRecordCounter
	if _, err := c.feed([]byte("PATCH /upload?token=x HTTP/1.1\r\n")); err == nil {
		t.Fatal("feed accepted plain HTTP as TLS records")
	}
	if got, err := c.feed(tlsRecord(tlsTypeAppData, 100)); got != 0 || err == nil {
		t.Errorf("after an error feed returned %d, %v; want 0 and the error", got, err)
	}
}

func TestTLSRecordCounterRejectsOversizedRecord(t *testing.T) {
	var c tlsRecordCounter
	header := []byte{tlsTypeAppData, 3, 3, 0xff, 0xff}
	if _, err := c.feed(header); err == nil {
		t.Error("feed accepted a record of 65535 bytes")
	}
}

func TestRelayCountsTLSPayload(t *testing.T) {
	files, pool := newTLSFiles(t)
	cert, err := tls.LoadX509KeyPair(files.certFile, files.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	received := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- -1
			return
		}
		n, _ := io.Copy(io.Discard, c)
		c.Close()
		received <- n
	}()

	relay, err := startCutRelay(ln.Addr().String(), 1<<40, true)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", relay.addr())
	if err != nil {
		t.Fatal(err)
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	const sent = 3<<20 + 12345
	if _, err := conn.Write(bytes.Repeat([]byte("x"), sent)); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n := <-received; n != sent {
		t.Fatalf("server received %d bytes, want %d", n, sent)
	}
	conn.Close()
	relay.Close()

	if err := relay.recordError(); err != nil {
		t.Fatalf("relay could not follow the TLS records: %v", err)
	}
	payload, carried := relay.payloadBytes.Load(), relay.upstreamBytes.Load()
	if payload < sent {
		t.Errorf("relay bounded the payload by %d bytes, below the %d sent", payload, sent)
	}
	// TLS 1.3 leaves one byte of inner content type per record in the
	// bound, plus the client's Finished message (at most 52 bytes). Go's
	// client writes records of over 1,000 bytes for the first 128 KiB and
	// of 16 KiB after that (crypto/tls, conn.go).
	maxRecords := int64(128<<10/1000 + sent/16384 + 2)
	if excess := payload - sent; excess > maxRecords+52 {
		t.Errorf("relay bounded the payload by %d bytes, %d above the %d sent, want at most %d above", payload, excess, sent, maxRecords+52)
	}
	if carried <= payload {
		t.Errorf("relay carried %d bytes of TLS records, want more than the payload bound %d", carried, payload)
	}
}
