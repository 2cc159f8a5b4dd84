package uring

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestParseMode(t *testing.T) {
	cases := []struct {
		in   string
		want Mode
	}{
		{"auto", ModeAuto},
		{"io_uring", ModeIOUring},
		{"syscall", ModeSyscall},
		{" IO_URING\n", ModeIOUring},
		{"Syscall", ModeSyscall},
	}
	for _, c := range cases {
		got, err := ParseMode(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v, nil", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "iouring", "uring", "sync"} {
		_, err := ParseMode(bad)
		if err == nil {
			t.Errorf("ParseMode(%q) succeeded, want an error", bad)
			continue
		}
		want := fmt.Sprintf("invalid io engine %q (use \"auto\", \"io_uring\" or \"syscall\")", bad)
		if err.Error() != want {
			t.Errorf("ParseMode(%q) error = %q, want %q", bad, err, want)
		}
	}
}

func TestModeTextRoundTrip(t *testing.T) {
	for _, m := range []Mode{ModeAuto, ModeIOUring, ModeSyscall} {
		text, err := m.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Mode
		if err := back.UnmarshalText(text); err != nil || back != m {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, m)
		}
	}
	if _, err := Mode(7).MarshalText(); err == nil {
		t.Errorf("MarshalText of Mode(7) succeeded, want an error")
	}
}

func TestOpenFallsBackWithoutIOUring(t *testing.T) {
	setupErrors := []struct {
		name   string
		err    error
		reason string
	}{
		{"ENOSYS", fmt.Errorf("uring: io_uring_setup: %w", syscall.ENOSYS), "function not implemented"},
		{"EPERM", fmt.Errorf("uring: io_uring_setup: %w", syscall.EPERM), "operation not permitted"},
		{"missing opcode", fmt.Errorf("uring: %w: MKDIRAT", errMissingOps), "kernel lacks io_uring opcodes: MKDIRAT"},
	}
	for _, c := range setupErrors {
		t.Run(c.name, func(t *testing.T) {
			failing := func(Options) (*Ring, error) { return nil, c.err }

			e, info, err := open(ModeAuto, Options{}, failing)
			if err != nil {
				t.Fatalf("open(ModeAuto) = %v, want a fallback", err)
			}
			if e.Name() != "syscall" || info.Engine != "syscall" || info.Mode != ModeAuto {
				t.Errorf("open(ModeAuto) chose %s (info %+v), want syscall", e.Name(), info)
			}
			if !strings.HasPrefix(info.Reason, "io_uring unavailable: ") || !strings.Contains(info.Reason, c.reason) {
				t.Errorf("Info.Reason = %q, want it to name %q", info.Reason, c.reason)
			}

			_, _, err = open(ModeIOUring, Options{}, failing)
			if err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("open(ModeIOUring) error = %v, want one naming %q", err, c.reason)
			}
		})
	}
}

func TestOpenSyscallModeSkipsRing(t *testing.T) {
	called := false
	e, info, err := open(ModeSyscall, Options{}, func(Options) (*Ring, error) {
		called = true
		return nil, errors.New("unexpected call")
	})
	if err != nil || called || e.Name() != "syscall" {
		t.Errorf("open(ModeSyscall) = %v, %v, ring constructor called: %v; want syscall without the ring", e, err, called)
	}
	if info.Reason != "mode syscall requested" || info.SetupFlags != "" {
		t.Errorf("Info = %+v, want reason \"mode syscall requested\" and no setup flags", info)
	}
}

func TestOpenAutoUsesRing(t *testing.T) {
	e, info, err := Open(ModeAuto, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if info.Engine == "syscall" {
		t.Skipf("io_uring unavailable here: %s", info.Reason)
	}
	if e.Name() != "io_uring" || info.Engine != "io_uring" || info.SetupFlags == "" {
		t.Errorf("Open(ModeAuto) = %s with %+v, want io_uring with setup flags", e.Name(), info)
	}
	if info.Prefer != measuredPreference {
		t.Errorf("Info.Prefer = %+v, want %+v", info.Prefer, measuredPreference)
	}
}

func TestOpenRejectsInvalidInput(t *testing.T) {
	if _, _, err := Open(Mode(9), Options{}); err == nil {
		t.Errorf("Open(Mode(9)) succeeded, want an error")
	}
	if _, _, err := Open(ModeSyscall, Options{Entries: 3}); err == nil {
		t.Errorf("Open with Entries 3 succeeded, want an error")
	}
}

func TestPreferredEngine(t *testing.T) {
	ring := openRing(t, Options{})
	if got := Preferred("io_uring", ring); got != ring {
		t.Errorf("Preferred(io_uring, ring) = %v, want the ring", got)
	}
	sys, ok := Preferred("syscall", ring).(*Syscall)
	if !ok || sys.BatchGoroutines != runtime.GOMAXPROCS(0) {
		t.Errorf("Preferred(syscall, ring) = %#v, want a Syscall with BatchGoroutines %d", sys, runtime.GOMAXPROCS(0))
	}
	if got := Preferred("syscall", sys); got != sys {
		t.Errorf("Preferred(syscall, parallel Syscall) = %v, want the same engine", got)
	}
	fallback := NewSyscall()
	if got := Preferred("io_uring", fallback); got != fallback {
		t.Errorf("Preferred(io_uring, Syscall) = %v, want the Syscall engine", got)
	}
}
