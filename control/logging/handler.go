package logging

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"
)

// entry is one record on its way to the drivers, with its logger name and
// its attributes resolved and nested into their groups.
type entry struct {
	time    time.Time
	level   slog.Level
	name    string // logger name, e.g. "storage-proxy.control"
	message string
	attrs   []slog.Attr
	source  source
	pid     int
	process string
}

// source is the code location of a record, empty when unknown.
type source struct {
	file     string
	function string
	line     int
}

func sourceOf(pc uintptr) source {
	if src, ok := sources.Load(pc); ok {
		return src.(source)
	}
	frame, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	src := source{file: frame.File, function: frame.Function, line: frame.Line}
	// Log calls sit at a fixed set of program counters, so the cache
	// stays as small as the number of log statements.
	sources.Store(pc, src)
	return src
}

// sources caches sourceOf by program counter.
var sources sync.Map

// sink is one driver. write is called for every record that passes the
// level filters, from any goroutine, and must not block for long.
type sink interface {
	write(e *entry) error
	close() error
}

// core is the state that every handler of one Logging shares.
type core struct {
	level      slog.Level // logging.level, applied to every logger
	thresholds thresholds // logging.pkg-ns, by logger namespace
	sinks      []sink
	process    string
	pid        int
	needSource bool // whether a driver prints the code location
}

// levelOf returns the lowest level that a logger called name emits.
func (c *core) levelOf(name string) slog.Level {
	return max(c.level, c.thresholds.of(name))
}

// dispatch sends e to every driver except skip and joins their errors.
func (c *core) dispatch(e *entry, skip sink) error {
	var errs []error
	for _, s := range c.sinks {
		if s == skip {
			continue
		}
		if err := s.write(e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// report logs a message about the logging itself, for example a logstash
// endpoint going down, through every driver except from.
func (c *core) report(from sink, level slog.Level, message string, attrs ...slog.Attr) {
	const name = "storage-proxy.logging"
	if level < c.levelOf(name) {
		return
	}
	e := &entry{time: time.Now(), level: level, name: name, message: message, attrs: attrs, pid: c.pid, process: c.process}
	_ = c.dispatch(e, from)
}

// groupOrAttrs is one WithGroup or WithAttrs call on a handler.
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

// handler is the slog.Handler of one logger name.
type handler struct {
	core  *core
	name  string
	level slog.Level // core.levelOf(name), computed once
	goas  []groupOrAttrs
}

func newHandler(c *core, name string) *handler {
	return &handler{core: c, name: name, level: c.levelOf(name)}
}

// Enabled reports whether records of level pass both logging.level and the
// pkg-ns threshold of the handler's logger name.
func (h *handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level
}

// Handle sends the record to every driver. It returns the drivers' write
// errors joined. A logstash endpoint that is down is not an error, because
// that driver queues or drops records instead.
func (h *handler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < h.level {
		return nil
	}
	e := &entry{
		time:    r.Time,
		level:   r.Level,
		name:    h.name,
		message: r.Message,
		attrs:   h.collectAttrs(r),
		pid:     h.core.pid,
		process: h.core.process,
	}
	if e.time.IsZero() {
		e.time = time.Now()
	}
	if h.core.needSource && r.PC != 0 {
		e.source = sourceOf(r.PC)
	}
	return h.core.dispatch(e, nil)
}

// WithAttrs returns a handler that adds attrs to every record. Outside any
// group, a "logger" attribute with a string value names the logger
// instead, as WithName does (see takeLoggerName).
func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var resolved []slog.Attr
	for _, a := range attrs {
		resolved = appendResolved(resolved, a)
	}
	named := h
	if name, rest, ok := takeLoggerName(h.goas, resolved); ok {
		named, resolved = h.withName(name).(*handler), rest
	}
	if len(resolved) == 0 {
		return named
	}
	return named.with(groupOrAttrs{attrs: resolved})
}

// takeLoggerName removes the last top-level "logger" attribute with a
// string value from attrs and returns its value. Packages that use only
// log/slog, such as the data plane, choose their logger name this way with
// Logger.With("logger", name), and the name then selects the pkg-ns
// threshold. Inside a group the attribute is kept as it is.
func takeLoggerName(goas []groupOrAttrs, attrs []slog.Attr) (string, []slog.Attr, bool) {
	for _, g := range goas {
		if g.group != "" {
			return "", attrs, false
		}
	}
	for i := len(attrs) - 1; i >= 0; i-- {
		if attrs[i].Key == "logger" && attrs[i].Value.Kind() == slog.KindString {
			rest := append(slices.Clone(attrs[:i]), attrs[i+1:]...)
			return attrs[i].Value.String(), rest, true
		}
	}
	return "", attrs, false
}

// WithGroup returns a handler that nests the attributes added later under
// name.
func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(groupOrAttrs{group: name})
}

func (h *handler) with(g groupOrAttrs) *handler {
	copied := *h
	copied.goas = append(slices.Clip(h.goas), g)
	return &copied
}

func (h *handler) withName(name string) slog.Handler {
	copied := *h
	copied.name = name
	copied.level = h.core.levelOf(name)
	return &copied
}

// collectAttrs returns the handler's attributes followed by the record's,
// nested into the handler's groups. Groups left empty are dropped, as slog
// does.
func (h *handler) collectAttrs(r slog.Record) []slog.Attr {
	attrs := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		attrs = appendResolved(attrs, a)
		return true
	})
	return nestAttrs(h.goas, attrs)
}

// nestAttrs applies the WithGroup and WithAttrs calls goas, innermost last,
// to the record attributes attrs.
func nestAttrs(goas []groupOrAttrs, attrs []slog.Attr) []slog.Attr {
	for i := len(goas) - 1; i >= 0; i-- {
		g := goas[i]
		if g.group == "" {
			attrs = append(slices.Clone(g.attrs), attrs...)
			continue
		}
		if len(attrs) > 0 {
			attrs = []slog.Attr{{Key: g.group, Value: slog.GroupValue(attrs...)}}
		}
	}
	return attrs
}

// appendResolved appends a with its LogValuer resolved, following the rules
// of slog.Handler: an empty attribute is dropped, a group without attributes
// is dropped, and a group with an empty key is inlined.
func appendResolved(attrs []slog.Attr, a slog.Attr) []slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return attrs
	}
	if a.Value.Kind() != slog.KindGroup {
		return append(attrs, a)
	}

	var members []slog.Attr
	for _, member := range a.Value.Group() {
		members = appendResolved(members, member)
	}
	switch {
	case len(members) == 0:
		return attrs
	case a.Key == "":
		return append(attrs, members...)
	}
	return append(attrs, slog.Attr{Key: a.Key, Value: slog.GroupValue(members...)})
}

// WithName returns h for the logger called name. For the handlers of this
// package, the name selects the pkg-ns threshold and appears in the output.
// Other handlers get the name as a "logger" attribute.
func WithName(h slog.Handler, name string) slog.Handler {
	if named, ok := h.(interface{ withName(string) slog.Handler }); ok {
		return named.withName(name)
	}
	return h.WithAttrs([]slog.Attr{slog.String("logger", name)})
}
