package logging

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// fileReserved are the keys of a file record that attributes must not
// replace.
var fileReserved = map[string]bool{"timestamp": true, "level": true, "name": true, "processName": true, "message": true}

// fileSink writes one JSON object per line:
//
//	{"timestamp":"2024-05-01T09:30:00.123456Z","level":"INFO","name":"storage-proxy","processName":"storage-proxy","message":"...", <attrs>}
//
// It reports the first of a run of failed writes to stderr, because the
// log file cannot record its own failure.
type fileSink struct {
	stderr io.Writer

	// mu guards the file and the failure and closed state.
	mu      sync.Mutex
	file    *rotatingFile
	failing bool
	closed  bool
}

func (s *fileSink) write(e *entry) error {
	b := make([]byte, 0, 256)
	b = append(b, `{"timestamp":`...)
	b = appendJSONString(b, e.time.UTC().Format("2006-01-02T15:04:05.000000Z"))
	b = append(b, `,"level":`...)
	b = appendJSONString(b, LevelName(e.level))
	b = append(b, `,"name":`...)
	b = appendJSONString(b, e.name)
	b = append(b, `,"processName":`...)
	b = appendJSONString(b, e.process)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.message)
	if len(e.attrs) > 0 {
		b = append(b, ',')
		b = appendJSONAttrs(b, e.attrs, fileReserved)
	}
	b = append(b, "}\n"...)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	_, err := s.file.Write(b)
	switch {
	case err != nil && !s.failing:
		s.failing = true
		fmt.Fprintf(s.stderr, "ERROR failed to write the log file %s: %v (further failures are not shown until a write succeeds)\n", s.file.path, err)
	case err == nil:
		s.failing = false
	}
	return err
}

func (s *fileSink) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.file.Close()
}

// rotatingFile is a log file that rotates by size like Python's
// RotatingFileHandler: before a write would grow the file past maxSize, the
// file is renamed to <path>.1, older backups move up by one, and the backup
// numbered backups+1 is overwritten, so at most backups old files remain.
// A single write larger than maxSize still goes to a fresh file in one piece.
// It is not safe for concurrent use.
type rotatingFile struct {
	path    string
	maxSize int64
	backups int

	file *os.File // nil after a failed rotation, reopened by the next Write
	size int64
}

// openRotatingFile opens path for appending, creating it and its directory.
func openRotatingFile(path string, maxSize int64, backups int) (*rotatingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log directory: %w", err)
	}
	r := &rotatingFile{path: path, maxSize: maxSize, backups: backups}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log file: %w", err)
	}
	r.file, r.size = f, info.Size()
	return nil
}

// Write appends p, rotating first when p would not fit.
func (r *rotatingFile) Write(p []byte) (int, error) {
	if r.file != nil && r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	if r.file == nil {
		if err := r.open(); err != nil {
			return 0, err
		}
	}
	n, err := r.file.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate closes the file, shifts the backups and opens a new file.
func (r *rotatingFile) rotate() error {
	closeErr := r.file.Close()
	r.file = nil
	if closeErr != nil {
		return fmt.Errorf("rotate log file: %w", closeErr)
	}

	for i := r.backups - 1; i >= 1; i-- {
		err := os.Rename(r.backupName(i), r.backupName(i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	if err := os.Rename(r.path, r.backupName(1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotate log file: %w", err)
	}
	return r.open()
}

func (r *rotatingFile) backupName(i int) string {
	return r.path + "." + strconv.Itoa(i)
}

// Close closes the file. It returns nil when the file is already closed.
func (r *rotatingFile) Close() error {
	if r.file == nil {
		return nil
	}
	err := r.file.Close()
	r.file = nil
	return err
}
