package logging

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
)

// ANSI colours of the level names on a colour console.
var levelColors = map[string]string{
	"DEBUG":    "\x1b[36m",   // cyan
	"INFO":     "\x1b[32m",   // green
	"WARNING":  "\x1b[33m",   // yellow
	"ERROR":    "\x1b[31m",   // red
	"CRITICAL": "\x1b[1;31m", // bold red
}

const colorReset = "\x1b[0m"

// consoleSink writes one text line per record:
//
//	simple:  <LEVEL> <message> key=value ...
//	verbose: <YYYY-MM-DD HH:MM:SS.mmm> <LEVEL> <logger name> [<pid>] <message> key=value ...
//
// Times are local, as Python's asctime is.
type consoleSink struct {
	verbose bool
	colored bool

	// mu serialises writes so that lines from different goroutines do not
	// interleave.
	mu  sync.Mutex
	out io.Writer
}

func (s *consoleSink) write(e *entry) error {
	b := make([]byte, 0, 256)
	if s.verbose {
		b = e.time.Local().AppendFormat(b, "2006-01-02 15:04:05.000")
		b = append(b, ' ')
	}
	b = s.appendLevel(b, e.level)
	if s.verbose {
		b = append(b, ' ')
		b = append(b, e.name...)
		b = append(b, " ["...)
		b = strconv.AppendInt(b, int64(e.pid), 10)
		b = append(b, ']')
	}
	b = append(b, ' ')
	b = append(b, e.message...)
	b = appendTextAttrs(b, "", e.attrs)
	b = append(b, '\n')

	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.out.Write(b)
	return err
}

func (s *consoleSink) appendLevel(b []byte, level slog.Level) []byte {
	name := LevelName(level)
	if !s.colored {
		return append(b, name...)
	}
	b = append(b, levelColors[name]...)
	b = append(b, name...)
	return append(b, colorReset...)
}

// close does nothing, because the console sink does not own its writer.
func (s *consoleSink) close() error {
	return nil
}
