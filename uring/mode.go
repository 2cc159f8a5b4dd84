package uring

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Mode selects the engine that Open returns.
type Mode int

const (
	// ModeAuto uses io_uring when the kernel allows it and supports every
	// opcode Ring needs, and the Syscall engine otherwise.
	ModeAuto Mode = iota
	// ModeIOUring requires io_uring: Open fails if it is unavailable.
	ModeIOUring
	// ModeSyscall always uses the Syscall engine.
	ModeSyscall
)

// String returns the mode's configuration value: "auto", "io_uring" or
// "syscall".
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeIOUring:
		return "io_uring"
	case ModeSyscall:
		return "syscall"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses the io-engine configuration value (also the
// BACKEND_IO_ENGINE environment override): "auto", "io_uring" or "syscall",
// in any case and with surrounding spaces ignored.
func ParseMode(s string) (Mode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return ModeAuto, nil
	case "io_uring":
		return ModeIOUring, nil
	case "syscall":
		return ModeSyscall, nil
	}
	return ModeAuto, fmt.Errorf("invalid io engine %q (use \"auto\", \"io_uring\" or \"syscall\")", s)
}

// MarshalText returns String's value, so a Mode can be a TOML or JSON field.
func (m Mode) MarshalText() ([]byte, error) {
	if m < ModeAuto || m > ModeSyscall {
		return nil, fmt.Errorf("invalid io engine mode %d", int(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText sets m with ParseMode.
func (m *Mode) UnmarshalText(text []byte) error {
	parsed, err := ParseMode(string(text))
	if err != nil {
		return err
	}
	*m = parsed
	return nil
}

// Options tunes the Ring engine; the Syscall engine ignores them. The zero
// value uses the defaults.
type Options struct {
	// Entries is the ring's submission queue size, in SQEs. It must be
	// a power of two from 8 to 32768 (the kernel's limit). Two SQEs are
	// reserved, so Entries-2 caller operations can be in flight at once.
	// Zero means 256.
	Entries uint32
	// BatchDepth is the maximum number of SQEs that one StatxBatch or
	// UnlinkatBatch call keeps in flight. It is capped at Entries-2. Zero
	// means 128.
	BatchDepth int
}

const (
	defaultEntries    = 256
	defaultBatchDepth = 128
	maxEntries        = 32768
)

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Entries == 0 {
		o.Entries = defaultEntries
	}
	if o.Entries < 8 || o.Entries > maxEntries || o.Entries&(o.Entries-1) != 0 {
		return o, fmt.Errorf("uring: invalid Entries %d (use a power of two from 8 to %d)", o.Entries, maxEntries)
	}
	if o.BatchDepth < 0 {
		return o, fmt.Errorf("uring: invalid BatchDepth %d (use 0 for the default or a positive number)", o.BatchDepth)
	}
	if o.BatchDepth == 0 {
		o.BatchDepth = defaultBatchDepth
	}
	o.BatchDepth = min(o.BatchDepth, int(o.Entries)-2)
	return o, nil
}

// Info describes the engine that Open chose, for one start-up log line.
type Info struct {
	// Engine is the chosen engine's Name: "io_uring" or "syscall".
	Engine string
	// Mode is the mode that was requested.
	Mode Mode
	// Reason explains the choice of Engine, for example
	// "io_uring_setup: operation not permitted (kernel.io_uring_disabled=2)".
	Reason string
	// SetupFlags names the IORING_SETUP_* flags of the ring, or is empty
	// for the Syscall engine.
	SetupFlags string
	// Prefer names, per kind of operation, the engine that was faster in
	// this package's benchmarks.
	Prefer Preference
}

// Open returns the engine that mode selects and an Info that names it and
// gives the reason. ModeAuto falls back to the Syscall engine when io_uring is
// unavailable, and the error is then nil. ModeIOUring returns an error
// instead. The caller closes the engine.
func Open(mode Mode, opts Options) (Engine, Info, error) {
	return open(mode, opts, NewRing)
}

// open is Open with the ring constructor as a parameter, so tests can
// simulate kernels without io_uring.
func open(mode Mode, opts Options, newRing func(Options) (*Ring, error)) (Engine, Info, error) {
	info := Info{Mode: mode, Prefer: measuredPreference}
	if _, err := opts.withDefaults(); err != nil {
		return nil, info, err
	}

	switch mode {
	case ModeSyscall:
		info.Engine = "syscall"
		info.Reason = "mode syscall requested"
		return NewSyscall(), info, nil
	case ModeAuto, ModeIOUring:
	default:
		return nil, info, fmt.Errorf("uring: invalid mode %d", int(mode))
	}

	ring, err := newRing(opts)
	if err != nil {
		reason := describeSetupError(err)
		if mode == ModeIOUring {
			return nil, info, fmt.Errorf("uring: mode io_uring requested but io_uring is unavailable: %s", reason)
		}
		info.Engine = "syscall"
		info.Reason = "io_uring unavailable: " + reason
		return NewSyscall(), info, nil
	}

	info.Engine = ring.Name()
	info.SetupFlags = ring.SetupFlags()
	info.Reason = fmt.Sprintf("mode %s: io_uring supports every required opcode", mode)
	return ring, info, nil
}

// describeSetupError returns err's message, plus the io_uring_disabled sysctl
// when the kernel refused with EPERM, since that sysctl is the usual cause
// outside a container's seccomp policy.
func describeSetupError(err error) string {
	msg := err.Error()
	if errors.Is(err, syscall.EPERM) {
		if b, readErr := os.ReadFile("/proc/sys/kernel/io_uring_disabled"); readErr == nil {
			msg += " (kernel.io_uring_disabled=" + strings.TrimSpace(string(b)) + ")"
		}
	}
	if errors.Is(err, syscall.ENOSYS) {
		msg += " (kernel without io_uring, or blocked by seccomp)"
	}
	return msg
}
