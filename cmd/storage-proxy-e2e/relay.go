package main

import (
	"errors"
	"fmt"
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
// by up to one read (64 KiB). Under TLS the relay forwards TLS records
// unchanged, so cutAfter counts record bytes and the cut breaks a record.
type cutRelay struct {
	ln       net.Listener
	target   string
	cutAfter int64
	// tlsRecords makes the relay follow the TLS records that clients send,
	// to bound the HTTP bytes inside them (see tlsRecordCounter).
	tlsRecords bool

	upstreamBytes atomic.Int64 // bytes forwarded from clients to the target, over all connections
	// payloadBytes counts the HTTP bytes within upstreamBytes. Over plain
	// TCP it equals upstreamBytes. Over TLS it is an upper bound whose
	// excess over the true count never shrinks.
	payloadBytes atomic.Int64
	cutPayload   atomic.Int64 // payloadBytes right after the cut
	connections  atomic.Int64
	cuts         atomic.Int64

	wg sync.WaitGroup
	// mu guards conns, the open connections that Close must end, and
	// recordErr, the first connection whose bytes were not TLS records.
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	recordErr error
}

// startCutRelay listens on a free 127.0.0.1 port and relays to target.
// With tlsRecords the clients must speak TLS, and the relay counts the
// HTTP bytes inside their records.
func startCutRelay(target string, cutAfter int64, tlsRecords bool) (*cutRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &cutRelay{ln: ln, target: target, cutAfter: cutAfter, tlsRecords: tlsRecords, conns: map[net.Conn]struct{}{}}
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
	var records *tlsRecordCounter
	if r.tlsRecords {
		records = &tlsRecordCounter{}
	}
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
			r.countPayload(records, chunk[:written])
			if cut {
				r.cutPayload.Store(r.payloadBytes.Load())
			}
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

// countPayload adds the HTTP bytes of forwarded to payloadBytes: all of
// them when records is nil, else the bound that records computes.
func (r *cutRelay) countPayload(records *tlsRecordCounter, forwarded []byte) {
	if records == nil {
		r.payloadBytes.Add(int64(len(forwarded)))
		return
	}
	payload, err := records.feed(forwarded)
	r.payloadBytes.Add(payload)
	if err != nil {
		r.mu.Lock()
		if r.recordErr == nil {
			r.recordErr = err
		}
		r.mu.Unlock()
	}
}

// recordError returns the first error in following a client's TLS
// records, or nil.
func (r *cutRelay) recordError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.recordErr
}

const (
	tlsHeaderLen     = 5
	tlsTypeAppData   = 23
	tlsMinRecordType = 20 // change_cipher_spec. Alert is 21, handshake 22.
	// tlsMaxRecordLen is the largest record body that TLS 1.2 allows
	// (2^14 + 2048, RFC 5246 section 6.2.3). TLS 1.3 allows 2^14 + 256.
	tlsMaxRecordLen = 1<<14 + 2048
	// tlsMinOverhead is the fewest bytes that encryption adds to a
	// record body. Every cipher suite of Go 1.26's crypto/tls, which the
	// proxy serves with, adds a 16-byte AEAD tag or an HMAC of 20 bytes
	// or more. A server on another TLS library that negotiates a suite
	// with a shorter tag, such as TLS_AES_128_CCM_8_SHA256, breaks the
	// bound.
	tlsMinOverhead = 16
)

// tlsRecordCounter follows the TLS record layer (RFC 8446 section 5.1) of
// one direction of a connection and bounds the application bytes inside
// without decrypting them.
//
// Each complete application_data record counts as its length less
// tlsMinOverhead, which is never below the bytes it carries. The count
// exceeds the true one by the rest of the overhead: TLS 1.3 adds one byte
// of inner content type per record, and AES-GCM in TLS 1.2 an 8-byte
// nonce. TLS 1.3 also encrypts handshake messages, such as the client's
// Finished, as application_data, so they count too.
// Handshake, change_cipher_spec and alert records count as zero. So does
// a record cut short, because the receiver cannot decrypt it.
type tlsRecordCounter struct {
	header    [tlsHeaderLen]byte
	headerLen int // header bytes of the current record seen so far
	bodyLen   int // body length of the current record
	remaining int // body bytes of the current record not seen yet
	err       error
}

// feed consumes the next bytes of the stream and returns the bound for the
// records that they complete. After an error it counts nothing more.
func (c *tlsRecordCounter) feed(p []byte) (int64, error) {
	if c.err != nil {
		return 0, c.err
	}
	var payload int64
	for len(p) > 0 {
		if c.headerLen < tlsHeaderLen {
			n := copy(c.header[c.headerLen:], p)
			c.headerLen += n
			p = p[n:]
			if c.headerLen < tlsHeaderLen {
				break
			}
			if c.err = c.startRecord(); c.err != nil {
				return payload, c.err
			}
		}

		n := min(c.remaining, len(p))
		c.remaining -= n
		p = p[n:]
		if c.remaining == 0 {
			if c.header[0] == tlsTypeAppData {
				payload += int64(max(c.bodyLen-tlsMinOverhead, 0))
			}
			c.headerLen = 0
		}
	}
	return payload, nil
}

// startRecord checks the header of the next record and reads its length.
func (c *tlsRecordCounter) startRecord() error {
	recordType, major := c.header[0], c.header[1]
	length := int(c.header[3])<<8 | int(c.header[4])
	if recordType < tlsMinRecordType || recordType > tlsTypeAppData || major != 3 {
		return fmt.Errorf("record header % x is not TLS 1.0 to 1.3: the client did not speak TLS to an https URL", c.header)
	}
	if length > tlsMaxRecordLen {
		return fmt.Errorf("record header % x gives length %d, above the maximum %d", c.header, length, tlsMaxRecordLen)
	}
	c.bodyLen, c.remaining = length, length
	return nil
}
