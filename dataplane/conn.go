package dataplane

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lingering close of a connection whose request body was left unread. The
// response goes out, then a FIN. Up to lingerMaxBytes of the body are read
// and dropped, and then the connection stays open, unread, until the client
// closes it or lingerTimeout passes. A client still sending a large body is
// thus blocked by flow control, not reset, while it reads the response. The
// reset comes only at the final close.
const (
	lingerMaxBytes = 1 << 20
	lingerTimeout  = 2 * time.Second
)

// trackingListener wraps each accepted TCP connection in a serverConn, and
// that in a TLS server connection when tls is set. The handshake runs on
// the first read, in the connection's own goroutine.
type trackingListener struct {
	net.Listener
	server *Server
	tls    *tls.Config
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		sc := &serverConn{TCPConn: tc, server: l.server}
		l.server.connsMu.Lock()
		l.server.conns[sc] = struct{}{}
		l.server.connsMu.Unlock()
		c = sc
	}
	if l.tls != nil {
		// tls.Conn.Close sends close_notify and then closes c, which
		// lingers when asked to.
		c = tls.Server(c, l.tls)
	}
	return c, nil
}

// serverConn is an accepted TCP connection. Embedding *net.TCPConn keeps
// ReadFrom (sendfile), SyscallConn (TCP_CORK) and CloseWrite reachable
// through fasthttp's bufio.Writer and RequestCtx.Conn.
type serverConn struct {
	*net.TCPConn
	server *Server

	// linger makes Close do a lingering close.
	linger    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// Close closes the connection once, lingering first if requested.
func (c *serverConn) Close() error {
	c.closeOnce.Do(func() {
		if c.linger.Load() {
			c.lingerBeforeClose()
		}
		c.closeErr = c.TCPConn.Close()
		c.server.connsMu.Lock()
		delete(c.server.conns, c)
		c.server.connsMu.Unlock()
	})
	return c.closeErr
}

func (c *serverConn) lingerBeforeClose() {
	if err := c.TCPConn.CloseWrite(); err != nil {
		return
	}
	deadline := time.Now().Add(lingerTimeout)
	if err := c.TCPConn.SetReadDeadline(deadline); err != nil {
		return
	}
	// The drained bytes belong to a request that already has its response,
	// so errors here only end the drain early.
	n, err := io.CopyN(io.Discard, c.TCPConn, lingerMaxBytes)
	if err != nil || n < lingerMaxBytes {
		return
	}
	c.waitForHangUp(time.Until(deadline))
}

// waitForHangUp blocks for up to d until the peer resets or hangs up,
// without reading.
func (c *serverConn) waitForHangUp(d time.Duration) {
	raw, err := c.TCPConn.SyscallConn()
	if err != nil || d <= 0 {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		// POLLIN is not asked for, so unread body bytes do not wake the
		// poll; a reset (POLLERR, POLLHUP) or a FIN (POLLRDHUP) does.
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		end := time.Now().Add(d)
		for {
			_, err := unix.Poll(fds, int(time.Until(end).Milliseconds())+1)
			if err != unix.EINTR || !time.Now().Before(end) {
				return
			}
		}
	})
}

// requestLinger marks conn for a lingering close when it is a serverConn,
// or a TLS connection over one. Under TLS the drain discards ciphertext.
func requestLinger(conn net.Conn) {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if sc, ok := conn.(*serverConn); ok {
		sc.linger.Store(true)
	}
}

// setCork sets or clears TCP_CORK on conn. While corked, the kernel sends
// only full segments, so the response header and the first sendfile bytes
// share packets. It returns false when conn is not a TCP socket.
func setCork(conn net.Conn, on bool) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	value := 0
	if on {
		value = 1
	}
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, value)
	}); err != nil {
		return false
	}
	return sockErr == nil
}

// isClientGone reports whether err means that the client closed or reset
// the connection, which is not a server error.
func isClientGone(err error) bool {
	return errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
