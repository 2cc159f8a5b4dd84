package logging

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/bai-storage/storage-proxy/control/config"
)

// errClosed is returned by drivers written to after Close.
var errClosed = errors.New("logging is closed")

// Options are the process-specific inputs of New. The zero value works.
type Options struct {
	// Stderr receives the console driver's output. Default os.Stderr.
	Stderr io.Writer
	// IsTTY reports whether Stderr is a terminal, which turns colours on when
	// logging.console.colored is not set. Default: a TCGETS ioctl on Stderr
	// when it is an *os.File, false otherwise.
	IsTTY func() bool
	// ProcessName is the processName of file records. Default the base name
	// of os.Args[0].
	ProcessName string
	// Hostname is the host of logstash records. Default os.Hostname().
	Hostname string
	// LogstashRootCAs verifies the logstash server certificate when
	// logging.logstash.ssl-verify is true. Default the system roots.
	LogstashRootCAs *x509.CertPool
	// LogstashQueueSize is the number of records the logstash driver holds
	// while the endpoint is slow or down before it drops new ones.
	// Default 1024.
	LogstashQueueSize int
}

// Logging owns the log drivers of the supervisor process. Its loggers are
// safe for concurrent use. Close stops the drivers, after which records
// are discarded.
type Logging struct {
	core     *core
	root     *handler
	logstash *logstashSink // nil unless the logstash driver is on

	closeOnce sync.Once
	closeErr  error
}

// defaultPkgNS is the upstream default of logging.pkg-ns, used when cfg
// leaves it nil.
var defaultPkgNS = map[string]string{"": "WARNING", "ai.backend": "INFO", "tests": "DEBUG"}

// New opens the drivers that cfg.Drivers names: "console", "file" and
// "logstash". A nil Drivers means ["console"], and an empty one none. It creates the log directory of the file driver and starts
// the goroutine of the logstash driver, which Close stops. "graylog" and
// unknown drivers return an error.
func New(cfg config.Logging, opts Options) (*Logging, error) {
	opts = withDefaults(opts)
	c := &core{process: opts.ProcessName, pid: os.Getpid()}

	var err error
	if c.level, c.thresholds, err = parseLevels(cfg); err != nil {
		return nil, err
	}

	l := &Logging{core: c}
	drivers := cfg.Drivers
	if drivers == nil {
		drivers = []string{"console"}
	}
	for _, driver := range drivers {
		s, err := l.openDriver(driver, cfg, opts)
		if err != nil {
			l.Close()
			return nil, err
		}
		c.sinks = append(c.sinks, s)
	}

	if l.logstash != nil {
		c.needSource = true
		l.logstash.report = func(level slog.Level, message string, attrs ...slog.Attr) {
			c.report(l.logstash, level, message, attrs...)
		}
		l.logstash.start()
	}
	l.root = newHandler(c, "storage-proxy")
	return l, nil
}

// parseLevels returns logging.level and the pkg-ns thresholds of cfg, with
// the defaults of upstream for empty values.
func parseLevels(cfg config.Logging) (slog.Level, thresholds, error) {
	level, err := ParseLevel(cmpOr(cfg.Level, "INFO"))
	if err != nil {
		return 0, nil, fmt.Errorf("logging.level: %w", err)
	}
	pkgNS := cfg.PkgNS
	if pkgNS == nil {
		pkgNS = defaultPkgNS
	}
	t, err := newThresholds(pkgNS)
	if err != nil {
		return 0, nil, err
	}
	return level, t, nil
}

// NewWorkerHandler returns the forward handler of a worker process with the
// supervisor's filters for cfg applied per logger name: logging.level and
// the pkg-ns threshold of each name. A record that the supervisor would
// discard is then not even encoded.
func NewWorkerHandler(w io.Writer, cfg config.Logging) (slog.Handler, error) {
	level, t, err := parseLevels(cfg)
	if err != nil {
		return nil, err
	}
	h := NewForwardHandler(w, nil).(*forwardHandler)
	h.levelOf = func(name string) slog.Level { return max(level, t.of(name)) }
	h.level = h.levelOf(h.name)
	return h, nil
}

func withDefaults(opts Options) Options {
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.IsTTY == nil {
		opts.IsTTY = func() bool { return isTerminal(opts.Stderr) }
	}
	if opts.ProcessName == "" {
		opts.ProcessName = filepath.Base(os.Args[0])
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	if opts.LogstashQueueSize <= 0 {
		opts.LogstashQueueSize = 1024
	}
	return opts
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func (l *Logging) openDriver(driver string, cfg config.Logging, opts Options) (sink, error) {
	switch driver {
	case "console":
		colored := opts.IsTTY()
		if cfg.Console.Colored != nil {
			colored = *cfg.Console.Colored
		}
		return &consoleSink{out: opts.Stderr, verbose: cfg.Console.Format != "simple", colored: colored}, nil

	case "file":
		if cfg.File.Path == "" || cfg.File.Filename == "" {
			return nil, errors.New(`logging: the "file" driver needs logging.file.path and logging.file.filename`)
		}
		path := filepath.Join(cfg.File.Path, cfg.File.Filename)
		file, err := openRotatingFile(path, cmpOr(cfg.File.RotationSize, 10<<20), cmpOr(cfg.File.BackupCount, 5))
		if err != nil {
			return nil, fmt.Errorf("logging: file driver: %w", err)
		}
		return &fileSink{file: file, stderr: opts.Stderr}, nil

	case "logstash":
		if l.logstash != nil {
			return nil, errors.New(`logging: the "logstash" driver is listed twice`)
		}
		s, err := newLogstashDriver(cfg.Logstash, opts)
		if err != nil {
			return nil, err
		}
		l.logstash = s
		return s, nil

	case "graylog":
		return nil, errors.New(`logging: the "graylog" driver is not supported by this build (use "console", "file" or "logstash")`)
	}
	return nil, fmt.Errorf("logging: unknown driver %q (use \"console\", \"file\" or \"logstash\")", driver)
}

func newLogstashDriver(cfg config.LoggingLogstash, opts Options) (*logstashSink, error) {
	if cfg.Protocol != "" && cfg.Protocol != "tcp" {
		return nil, fmt.Errorf("logging: logstash protocol %q is not supported by this build (use \"tcp\")", cfg.Protocol)
	}
	if cfg.Endpoint.Port == 0 {
		return nil, errors.New(`logging: the "logstash" driver needs logging.logstash.endpoint`)
	}
	var tlsConfig *tls.Config
	if cfg.SSLEnabled {
		tlsConfig = &tls.Config{
			ServerName:         cfg.Endpoint.Host,
			RootCAs:            opts.LogstashRootCAs,
			InsecureSkipVerify: !cfg.SSLVerify, // logging.logstash.ssl-verify = false
			MinVersion:         tls.VersionTLS12,
		}
	}
	return newLogstashSink(cfg.Endpoint.String(), tlsConfig, opts.Hostname, opts.LogstashQueueSize), nil
}

func cmpOr[T comparable](value, fallback T) T {
	var zero T
	if value == zero {
		return fallback
	}
	return value
}

// Logger returns the logger of a component. This service uses
// "storage-proxy" (the service), "storage-proxy.control",
// "storage-proxy.dataplane", "storage-proxy.uring" and "http.access". The
// name selects the pkg-ns threshold and appears in verbose console lines
// and in the name field of file and logstash records.
func (l *Logging) Logger(component string) *slog.Logger {
	return slog.New(l.root.withName(component))
}

// Handler returns the handler of the logger "storage-proxy". WithName
// renames it.
func (l *Logging) Handler() slog.Handler {
	return l.root
}

// MinLevel returns the lowest level that any logger emits.
func (l *Logging) MinLevel() slog.Level {
	return max(l.core.level, l.core.thresholds.min())
}

// Dropped returns the number of records that the logstash driver discarded
// because its queue was full or Close could not deliver them.
func (l *Logging) Dropped() uint64 {
	if l.logstash == nil {
		return 0
	}
	return l.logstash.dropped.Load()
}

// Close stops the drivers in the order logstash, file, console, so that
// the logstash driver can still report to the others while it flushes.
// Close spends up to 2 seconds delivering queued logstash records, after
// waiting up to 5 seconds for a write in progress. Later calls return the
// first call's result.
func (l *Logging) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		for i := len(l.core.sinks) - 1; i >= 0; i-- {
			if s, ok := l.core.sinks[i].(*logstashSink); ok {
				errs = append(errs, s.close())
			}
		}
		for i := len(l.core.sinks) - 1; i >= 0; i-- {
			if _, ok := l.core.sinks[i].(*logstashSink); !ok {
				errs = append(errs, l.core.sinks[i].close())
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}
