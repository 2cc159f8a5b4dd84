package logging

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bai-storage/storage-proxy/control/config"
	"github.com/bai-storage/storage-proxy/control/testcert"
)

// receiveTimeout bounds every wait for the network in these tests.
const receiveTimeout = 10 * time.Second

// syncBuffer is a console output that tests can read while drivers write.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // receives a value after each write, never blocks
}

func newSyncBuffer() *syncBuffer {
	return &syncBuffer{written: make(chan struct{}, 1)}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.written <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the output contains text.
func (b *syncBuffer) waitFor(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(receiveTimeout)
	for !strings.Contains(b.String(), text) {
		select {
		case <-b.written:
		case <-deadline:
			t.Fatalf("console output never contained %q, got:\n%s", text, b.String())
		}
	}
}

// receivedLine is one JSON line that the test server read, with the number
// of the connection it came on, starting at 1.
type receivedLine struct {
	conn   int
	record map[string]any
}

// logstashServer is a logstash TCP input on 127.0.0.1 that decodes lines.
type logstashServer struct {
	t        *testing.T
	listener net.Listener
	lines    chan receivedLine

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startLogstashServer(t *testing.T, tlsConfig *tls.Config) *logstashServer {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConfig != nil {
		listener = tls.NewListener(listener, tlsConfig)
	}
	s := &logstashServer{t: t, listener: listener, lines: make(chan receivedLine, 1000)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.stop)
	return s
}

func (s *logstashServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		number := len(s.conns)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(conn, number)
	}
}

func (s *logstashServer) read(conn net.Conn, number int) {
	defer s.wg.Done()
	scanner := bufio.NewScanner(conn)
	for scanner.Scan() {
		var record map[string]any
		if err := json.Unmarshal(scanner.Bytes(), &record); err != nil {
			s.t.Errorf("logstash line %q is not JSON: %v", scanner.Text(), err)
			continue
		}
		s.lines <- receivedLine{conn: number, record: record}
	}
}

// closeConnections closes the server side of every accepted connection.
func (s *logstashServer) closeConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, conn := range s.conns {
		conn.Close()
	}
}

func (s *logstashServer) stop() {
	s.listener.Close()
	s.closeConnections()
	s.wg.Wait()
}

func (s *logstashServer) endpoint() config.HostPort {
	addr := s.listener.Addr().(*net.TCPAddr)
	return config.HostPort{Host: "127.0.0.1", Port: addr.Port}
}

// receive returns the next line or fails the test after receiveTimeout.
func (s *logstashServer) receive(t *testing.T) receivedLine {
	t.Helper()
	select {
	case line := <-s.lines:
		return line
	case <-time.After(receiveTimeout):
		t.Fatal("the logstash server received nothing")
		return receivedLine{}
	}
}

// selfSignedCert returns a certificate for 127.0.0.1 that is its own CA.
func selfSignedCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	pair := testcert.New(t)
	return pair.Server(t).Certificates[0], pair.Pool
}

// newLogstashLogging returns a Logging with the console and logstash
// drivers, and its console output.
func newLogstashLogging(t *testing.T, ls config.LoggingLogstash, opts Options) (*Logging, *syncBuffer) {
	t.Helper()
	console := newSyncBuffer()
	colored := false
	ls.Protocol = "tcp"
	cfg := config.Logging{
		Level:    "DEBUG",
		PkgNS:    map[string]string{"": "DEBUG"},
		Drivers:  []string{"console", "logstash"},
		Console:  config.LoggingConsole{Colored: &colored, Format: "simple"},
		Logstash: ls,
	}
	opts.Stderr = console
	l, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, console
}

func TestLogstashPlainTCP(t *testing.T) {
	server := startLogstashServer(t, nil)
	l, _ := newLogstashLogging(t, config.LoggingLogstash{Endpoint: server.endpoint()}, Options{})

	l.Logger("storage-proxy.control").Info("volume mounted", "volume", "local", "bytes", 42, "message", "shadowed")
	record := server.receive(t).record

	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"@version":     1.0,
		"host":         hostname,
		"logger":       "storage-proxy.control",
		"message":      "volume mounted",
		"level":        "INFO",
		"volume":       "local",
		"bytes":        42.0,
		"attr.message": "shadowed",
	}
	for key, value := range want {
		if record[key] != value {
			t.Errorf("record[%q] = %#v, expected %#v", key, record[key], value)
		}
	}
	if tags, ok := record["tags"].([]any); !ok || len(tags) != 0 {
		t.Errorf("tags = %#v, expected []", record["tags"])
	}
	if path, _ := record["path"].(string); !strings.HasSuffix(path, "logstash_test.go") {
		t.Errorf("path = %q, expected this test file", path)
	}
	if fn, _ := record["func"].(string); !strings.HasSuffix(fn, "TestLogstashPlainTCP") {
		t.Errorf("func = %q, expected this test", fn)
	}
	if line, _ := record["lineno"].(float64); line <= 0 {
		t.Errorf("lineno = %v, expected a line number", record["lineno"])
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000000-07:00", record["@timestamp"].(string)); err != nil {
		t.Errorf("@timestamp: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.Dropped(); got != 0 {
		t.Errorf("Dropped = %d, expected 0", got)
	}
}

func TestLogstashTLS(t *testing.T) {
	cert, pool := selfSignedCert(t)
	serverConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	cases := []struct {
		name   string
		verify bool
		roots  *x509.CertPool
	}{
		{"without verification", false, nil},
		{"verified against the test CA", true, pool},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			server := startLogstashServer(t, serverConfig)
			ls := config.LoggingLogstash{Endpoint: server.endpoint(), SSLEnabled: true, SSLVerify: c.verify}
			l, _ := newLogstashLogging(t, ls, Options{LogstashRootCAs: c.roots})

			l.Logger("storage-proxy").Warn("over TLS", "n", 1)
			record := server.receive(t).record
			if record["message"] != "over TLS" || record["level"] != "WARNING" {
				t.Errorf("record = %v", record)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLogstashTLSUntrustedCertificate(t *testing.T) {
	cert, _ := selfSignedCert(t)
	server := startLogstashServer(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	ls := config.LoggingLogstash{Endpoint: server.endpoint(), SSLEnabled: true, SSLVerify: true}
	l, console := newLogstashLogging(t, ls, Options{})

	l.Logger("storage-proxy").Info("never delivered")
	console.waitFor(t, "WARNING logstash endpoint unreachable, retrying endpoint="+server.endpoint().String())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.Dropped(); got != 1 {
		t.Errorf("Dropped = %d, expected the 1 record", got)
	}
	select {
	case line := <-server.lines:
		t.Errorf("server received %v over an unverified connection", line.record)
	default:
	}
}

func TestLogstashDropsWhenDown(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := config.HostPort{Host: "127.0.0.1", Port: listener.Addr().(*net.TCPAddr).Port}
	listener.Close()

	l, console := newLogstashLogging(t, config.LoggingLogstash{Endpoint: endpoint}, Options{LogstashQueueSize: 2})
	logger := l.Logger("storage-proxy")
	start := time.Now()
	for i := range 10 {
		logger.Info("while down", "i", i)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("10 records took %v while the endpoint was down, expected no blocking", elapsed)
	}
	if got := l.Dropped(); got < 7 {
		t.Errorf("Dropped = %d with a queue of 2 and 10 records, expected at least 7", got)
	}
	console.waitFor(t, "logstash endpoint unreachable")

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := l.Dropped(); got != 10 {
		t.Errorf("Dropped after Close = %d, expected all 10 records", got)
	}
}

func TestLogstashReconnects(t *testing.T) {
	server := startLogstashServer(t, nil)
	l, console := newLogstashLogging(t, config.LoggingLogstash{Endpoint: server.endpoint()}, Options{})
	logger := l.Logger("storage-proxy")

	logger.Info("first")
	if line := server.receive(t); line.conn != 1 || line.record["message"] != "first" {
		t.Fatalf("first line = %+v", line)
	}
	server.closeConnections()

	// Writes into the closed connection fail after one or two records, which
	// TCP cannot report, so keep logging until a record arrives on a new
	// connection.
	deadline := time.After(receiveTimeout)
	for i := 0; ; i++ {
		logger.Info("after close", "i", i)
		select {
		case line := <-server.lines:
			if line.conn == 2 {
				console.waitFor(t, "logstash endpoint reachable again")
				return
			}
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no record arrived on a new connection; console:\n%s", console.String())
		}
	}
}

func TestLogstashCloseFlushesQueue(t *testing.T) {
	server := startLogstashServer(t, nil)
	l, _ := newLogstashLogging(t, config.LoggingLogstash{Endpoint: server.endpoint()}, Options{})
	logger := l.Logger("storage-proxy")
	for i := range 50 {
		logger.Info("queued", "i", i)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		line := server.receive(t)
		if got := line.record["i"]; got != float64(i) {
			t.Fatalf("record %d has i = %v", i, got)
		}
	}
	if got := l.Dropped(); got != 0 {
		t.Errorf("Dropped = %d, expected 0", got)
	}
}
