// Package logging writes the service's log/slog records to the drivers of
// the [logging] config table, in the formats of the upstream storage proxy.
//
// The supervisor process calls New, which opens every driver, and hands
// loggers to its components with Logger. Worker processes open no driver:
// NewForwardHandler writes their records as JSON lines to a pipe, and the
// supervisor's Relay re-emits each one through its own drivers. The package
// keeps no global state and never calls slog.SetDefault.
//
// # Drivers
//
//   - console: one text line per record on stderr. "simple" is
//     "<LEVEL> <message> key=value ...", "verbose" (the default) is
//     "<YYYY-MM-DD HH:MM:SS.mmm> <LEVEL> <logger name> [<pid>] <message> key=value ...".
//     Level names are coloured with ANSI codes when console.colored is true,
//     or when it is not set and stderr is a terminal.
//   - file: one JSON object per line with timestamp (UTC, microseconds, "Z"),
//     level, name, processName and message, then the attributes. The file
//     rotates when it would grow past rotation-size and keeps backup-count
//     old files named <filename>.1 (newest) to <filename>.<backup-count>.
//   - logstash: one JSON object per line over TCP, with TLS when
//     logstash.ssl-enabled is true. Its keys are @timestamp (local time),
//     @version (1), host, logger, path, func, lineno, message, level,
//     tags ([]) and the attributes. host is the real host name, where
//     upstream sends the literal "hostname". Records wait in a bounded
//     queue, and when the endpoint is slow or down, new records are dropped
//     and counted (Logging.Dropped), so logging never blocks the caller. The
//     connection is retried with exponential backoff from 100ms to 10s.
//   - graylog, and the logstash protocols udp, zmq.push and zmq.pub, are
//     not supported by this build. New returns an error for them.
//
// An attribute whose key equals a field of the record, such as "message",
// is written as "attr.<key>" so that it cannot replace the field.
//
// # Levels
//
// The config's level names map onto slog levels as follows:
//
//	CRITICAL  LevelCritical (slog.LevelError + 4)
//	ERROR     slog.LevelError
//	WARNING   slog.LevelWarn
//	INFO      slog.LevelInfo
//	DEBUG     slog.LevelDebug
//	NOTSET    LevelNotset, which lets every record through
//
// Output shows a level between two of these under the lower name.
//
// A record is written when it passes logging.level and the threshold of its
// logger's namespace in logging.pkg-ns. Logger names are dotted, and a name
// uses the entry of its longest configured prefix, as in Python:
// "storage-proxy.dataplane" uses "storage-proxy.dataplane", else
// "storage-proxy", else the root "". A NOTSET namespace inherits its
// parent's threshold, a NOTSET root lets every record through, and a root
// missing from pkg-ns is WARNING. The Python namespaces of upstream configs
// map onto ours:
//
//	"ai.backend"     -> "storage-proxy" (all logs of the service itself)
//	"aiohttp"        -> "http"
//	"aiohttp.access" -> "http.access" (the HTTP access log)
//	""               -> "" (every other logger)
//
// Our own names are accepted as keys too, and one wins over its Python
// counterpart. Other Python namespaces, such as "aiotools" or
// "ai.backend.storage.api", match no logger here and change nothing.
//
// The loggers of this service are "storage-proxy", "storage-proxy.control",
// "storage-proxy.dataplane", "storage-proxy.uring" and "http.access". The
// drivers report their own trouble, such as an unreachable logstash
// endpoint, on "storage-proxy.logging".
package logging
