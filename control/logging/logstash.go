package logging

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Timing of the logstash driver.
const (
	logstashDialTimeout  = 5 * time.Second
	logstashWriteTimeout = 5 * time.Second
	logstashFlushTimeout = 2 * time.Second // how long Close tries to deliver queued records
	logstashMinBackoff   = 100 * time.Millisecond
	logstashMaxBackoff   = 10 * time.Second
)

// logstashReserved are the keys of a logstash record that attributes must
// not replace.
var logstashReserved = map[string]bool{
	"@timestamp": true, "@version": true, "host": true, "logger": true, "path": true,
	"func": true, "lineno": true, "message": true, "level": true, "tags": true,
}

// logstashSink sends one JSON object per line to a logstash TCP input
// (codec json_lines), over TLS when configured. write only queues the
// encoded record without waiting, so a slow or unreachable endpoint never
// blocks the caller.
// When the queue is full the record is dropped and counted. One goroutine,
// stopped by close, connects with exponential backoff and sends the queue.
type logstashSink struct {
	endpoint  string
	tlsConfig *tls.Config // nil for plain TCP
	hostname  string
	report    func(level slog.Level, message string, attrs ...slog.Attr)

	queue   chan []byte
	dropped atomic.Uint64

	stop      chan struct{}
	stopOnce  sync.Once
	started   bool               // set by start, because close waits for done only after it
	done      chan struct{}      // closed when the send loop has exited
	cancelRun context.CancelFunc // interrupts a dial of the send loop
}

func newLogstashSink(endpoint string, tlsConfig *tls.Config, hostname string, queueSize int) *logstashSink {
	return &logstashSink{
		endpoint:  endpoint,
		tlsConfig: tlsConfig,
		hostname:  hostname,
		report:    func(slog.Level, string, ...slog.Attr) {},
		queue:     make(chan []byte, queueSize),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		cancelRun: func() {},
	}
}

// start runs the send loop. It is separate from newLogstashSink so that
// report can be set first.
func (s *logstashSink) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancelRun = cancel
	s.started = true
	go s.run(ctx)
}

func (s *logstashSink) write(e *entry) error {
	select {
	case <-s.stop:
		s.dropped.Add(1)
		return errClosed
	default:
	}
	select {
	case s.queue <- s.encode(e):
	default:
		s.dropped.Add(1)
	}
	return nil
}

func (s *logstashSink) encode(e *entry) []byte {
	b := make([]byte, 0, 384)
	b = append(b, `{"@timestamp":`...)
	b = appendJSONString(b, e.time.Local().Format("2006-01-02T15:04:05.000000-07:00"))
	b = append(b, `,"@version":1,"host":`...)
	b = appendJSONString(b, s.hostname)
	b = append(b, `,"logger":`...)
	b = appendJSONString(b, e.name)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.source.file)
	b = append(b, `,"func":`...)
	b = appendJSONString(b, e.source.function)
	b = append(b, `,"lineno":`...)
	b = strconv.AppendInt(b, int64(e.source.line), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, `,"level":`...)
	b = appendJSONString(b, LevelName(e.level))
	b = append(b, `,"tags":[]`...)
	if len(e.attrs) > 0 {
		b = append(b, ',')
		b = appendJSONAttrs(b, e.attrs, logstashReserved)
	}
	return append(b, "}\n"...)
}

// run sends queued records until stop is closed. A record whose write
// fails is sent again on the next connection. It reports the first failure
// of an outage and the reconnection, not every retry.
func (s *logstashSink) run(ctx context.Context) {
	defer close(s.done)
	var conn net.Conn
	var pending []byte
	backoff := logstashMinBackoff
	down := false
	var droppedBefore uint64

	for {
		if pending == nil {
			select {
			case pending = <-s.queue:
			case <-s.stop:
				s.flush(conn, nil)
				return
			}
		}

		if conn == nil {
			var err error
			conn, err = s.dial(ctx)
			if err != nil {
				if !down {
					down, droppedBefore = true, s.dropped.Load()
					s.report(slog.LevelWarn, "logstash endpoint unreachable, retrying", slog.String("endpoint", s.endpoint), slog.Any("error", err))
				}
				if !s.sleep(backoff) {
					s.flush(nil, pending)
					return
				}
				backoff = min(backoff*2, logstashMaxBackoff)
				continue
			}
			backoff = logstashMinBackoff
			if down {
				down = false
				s.report(slog.LevelInfo, "logstash endpoint reachable again", slog.String("endpoint", s.endpoint), slog.Uint64("dropped", s.dropped.Load()-droppedBefore))
			}
		}

		if err := s.send(conn, pending, time.Now().Add(logstashWriteTimeout)); err != nil {
			conn.Close()
			conn = nil
			if !down {
				down, droppedBefore = true, s.dropped.Load()
				s.report(slog.LevelWarn, "failed to send to logstash, reconnecting", slog.String("endpoint", s.endpoint), slog.Any("error", err))
			}
			continue
		}
		pending = nil
	}
}

func (s *logstashSink) dial(ctx context.Context) (net.Conn, error) {
	dialer := &net.Dialer{Timeout: logstashDialTimeout}
	if s.tlsConfig == nil {
		return dialer.DialContext(ctx, "tcp", s.endpoint)
	}
	tlsDialer := &tls.Dialer{NetDialer: dialer, Config: s.tlsConfig}
	return tlsDialer.DialContext(ctx, "tcp", s.endpoint)
}

func (s *logstashSink) send(conn net.Conn, record []byte, deadline time.Time) error {
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := conn.Write(record)
	return err
}

// sleep waits for d and returns false when stop was closed first.
func (s *logstashSink) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-s.stop:
		return false
	}
}

// flush tries for logstashFlushTimeout to deliver pending and the queued
// records, connecting once when conn is nil, then closes the connection.
// Records it cannot deliver are counted as dropped.
func (s *logstashSink) flush(conn net.Conn, pending []byte) {
	deadline := time.Now().Add(logstashFlushTimeout)
	records := s.drainQueue(pending)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	if len(records) == 0 {
		return
	}

	if conn == nil {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		var err error
		if conn, err = s.dial(ctx); err != nil {
			s.dropped.Add(uint64(len(records)))
			return
		}
	}
	for i, record := range records {
		if err := s.send(conn, record, deadline); err != nil {
			s.dropped.Add(uint64(len(records) - i))
			return
		}
	}
}

// drainQueue returns pending, when set, followed by every queued record.
func (s *logstashSink) drainQueue(pending []byte) [][]byte {
	var records [][]byte
	if pending != nil {
		records = append(records, pending)
	}
	for {
		select {
		case record := <-s.queue:
			records = append(records, record)
		default:
			return records
		}
	}
}

// close stops the send loop and waits for it, at most about
// logstashFlushTimeout plus one write timeout. Records that write queued
// while the loop was exiting are counted as dropped.
func (s *logstashSink) close() error {
	s.stopOnce.Do(func() {
		close(s.stop)
		s.cancelRun()
	})
	if s.started {
		<-s.done
	}
	s.dropped.Add(uint64(len(s.drainQueue(nil))))
	return nil
}
