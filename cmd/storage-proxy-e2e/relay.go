package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// cutRelay forwards TCP connections from a 127.0.0.1 port to a target
// address and, once, closes the connection that carries the client's
// cutAfter'th byte, right after forwarding that byte. It simulates a
// network failure in the middle of an upload, so the client has to resume.
// The cut lands exactly on byte cutAfter when one connection at a time
// carries data, as with one tus upload. Concurrent connections may move it
// by up to one read (64 KiB).
type cutRelay struct {
	ln       net.Listener
	target   string
	cutAfter int64

	upstreamBytes atomic.Int64 // bytes forwarded from clients to the target, over all connections
	connections   atomic.Int64
	cuts          atomic.Int64

	wg sync.WaitGroup
	// mu guards conns, the open connections that Close must end.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startCutRelay listens on a free 127.0.0.1 port and relays to target.
func startCutRelay(target string, cutAfter int64) (*cutRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &cutRelay{ln: ln, target: target, cutAfter: cutAfter, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

// addr returns the relay's listening address as host:port.
func (r *cutRelay) addr() string { return r.ln.Addr().String() }

// Close stops accepting, closes every open connection and waits for the
// relay's goroutines to end.
func (r *cutRelay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *cutRelay) acceptLoop() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.connections.Add(1)
		r.wg.Add(1)
		go r.serve(client)
	}
}

func (r *cutRelay) track(c net.Conn, open bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if open {
		r.conns[c] = struct{}{}
	} else {
		delete(r.conns, c)
	}
}

// serve relays one connection in both directions until either side closes
// or the cut happens.
func (r *cutRelay) serve(client net.Conn) {
	defer r.wg.Done()
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		client.Close()
		return
	}
	r.track(client, true)
	r.track(server, true)
	defer func() {
		client.Close()
		server.Close()
		r.track(client, false)
		r.track(server, false)
	}()

	// Responses flow back unchanged. When either copy ends, both
	// connections close, which ends the other copy too.
	done := make(chan struct{})
	go func() {
		io.Copy(client, server)
		client.Close()
		server.Close()
		close(done)
	}()
	if halfClosed := r.copyUpstream(server, client); !halfClosed {
		client.Close()
		server.Close()
	}
	<-done
}

// copyUpstream copies from client to server, counting bytes. It returns
// after the cut, after an error, or when the client half-closes, which it
// passes on to the server and reports as halfClosed so that the response
// can still flow back.
func (r *cutRelay) copyUpstream(server, client net.Conn) (halfClosed bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			cut := false
			if r.cuts.Load() == 0 {
				before := r.upstreamBytes.Load()
				if before+int64(n) >= r.cutAfter && r.cuts.CompareAndSwap(0, 1) {
					chunk = buf[:max(r.cutAfter-before, 0)]
					cut = true
				}
			}
			written, werr := server.Write(chunk)
			r.upstreamBytes.Add(int64(written))
			if cut || werr != nil {
				return false
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return false
			}
			if tcp, ok := server.(*net.TCPConn); ok {
				tcp.CloseWrite()
			}
			return true
		}
	}
}
