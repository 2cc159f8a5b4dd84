package dataplane

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// TestSlowlorisHeadersCut sends request headers one byte per second. The
// server closes the connection once ReadTimeout has passed since the
// request began, however steadily the bytes keep coming.
func TestSlowlorisHeadersCut(t *testing.T) {
	e := newEnv(t, testModes[0], func(o *Options) { o.ReadTimeout = 2 * time.Second })
	e.writeFile("f.txt", []byte("content"))
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	request := []byte("GET /download?token=" + e.downloadToken("f.txt") + " HTTP/1.1\r\nHost: x\r\nX-Slow: " +
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n")
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		// The server sends nothing before the headers end, so the first
		// read returns when it closes the connection (or sends a 408).
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	sent := 0
	for sent < 10 {
		select {
		case elapsed := <-closed:
			if elapsed > 4*time.Second {
				t.Errorf("the connection was closed after %v, want about 2 s", elapsed)
			}
			t.Logf("closed after %v and %d header bytes", elapsed, sent)
			return
		case <-time.After(time.Second):
		}
		if _, err := conn.Write(request[sent : sent+1]); err != nil {
			break
		}
		sent++
	}
	select {
	case elapsed := <-closed:
		if elapsed > 4*time.Second {
			t.Errorf("the connection was closed after %v, want about 2 s", elapsed)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the connection was still open after %v of one header byte per second", time.Since(start))
	}
}

// raiseOpenFileLimit lifts the soft RLIMIT_NOFILE to at least want, within
// the hard limit, and skips the test when that is not enough.
func raiseOpenFileLimit(t *testing.T, want uint64) {
	t.Helper()
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	if limit.Cur >= want {
		return
	}
	limit.Cur = min(want, limit.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil || limit.Cur < want {
		t.Skipf("RLIMIT_NOFILE is %d (hard %d), below the %d this test needs: %v", limit.Cur, limit.Max, want, err)
	}
}

// TestIdleConnectionsKeepService opens 2,000 idle connections, half of
// them with a partial request line, and checks that another client still
// downloads a file within a second.
func TestIdleConnectionsKeepService(t *testing.T) {
	const idle = 2000
	// Both ends of every connection live in this process.
	raiseOpenFileLimit(t, 2*idle+256)
	e := newEnv(t, testModes[0])
	content := pattern(256<<10, 3)
	e.writeFile("f.bin", content)

	conns := make([]net.Conn, 0, idle)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialer := net.Dialer{Timeout: 5 * time.Second}
	for i := 0; i < idle; i++ {
		c, err := dialer.Dial("tcp", e.addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%2 == 1 {
			if _, err := c.Write([]byte("GET /download?tok")); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
	}

	// A fresh client, on a fresh connection, is served at once.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	for i := 0; i < 5; i++ {
		start := time.Now()
		resp, err := client.Get(e.downloadURL("f.bin", ""))
		if err != nil {
			t.Fatalf("download %d beside %d idle connections: %v", i, idle, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("download %d: reading the body: %v", i, err)
		}
		if resp.StatusCode != 200 || len(body) != len(content) {
			t.Errorf("download %d: status %d, %d bytes", i, resp.StatusCode, len(body))
		}
		if elapsed := time.Since(start); elapsed > time.Second {
			t.Errorf("download %d took %v beside %d idle connections", i, elapsed, idle)
		}
	}

	// The idle connections are still open: the server neither dropped
	// them early nor stopped accepting.
	alive := 0
	for _, c := range conns[:100] {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var buf [1]byte
		_, err := bufio.NewReader(c).Read(buf[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			alive++
		}
	}
	if alive < 90 {
		t.Errorf("%d of the first 100 idle connections are still open, want them kept until IdleTimeout", alive)
	}
}
