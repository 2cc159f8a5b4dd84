package uring

import "runtime"

// Preference names, per kind of operation, the engine that was faster in
// this package's benchmarks (docs/benchmarks-uring.md gives the machine, the
// commands and the numbers). Each field is "io_uring" or "syscall". Open
// puts it in Info.Prefer, and Preferred turns a field into an engine.
type Preference struct {
	// LargeWrites is for upload writes of 256 KiB to 1 MiB chunks.
	LargeWrites string
	// SmallWrites is for single 4 KiB writes.
	SmallWrites string
	// StatxBatch is for StatxBatch over a directory's entries. "syscall"
	// here means a Syscall engine with BatchGoroutines set to
	// runtime.GOMAXPROCS(0).
	StatxBatch string
	// UnlinkatBatch is for UnlinkatBatch, with "syscall" meaning the same
	// as for StatxBatch.
	UnlinkatBatch string
}

// measuredPreference is set from the medians in docs/benchmarks-uring.md
// (2 vCPU VM, Linux 6.18, ext4). Rerun the benchmarks before changing it.
var measuredPreference = Preference{
	LargeWrites:   "syscall",
	SmallWrites:   "syscall",
	StatxBatch:    "io_uring",
	UnlinkatBatch: "io_uring",
}

// Preferred returns the engine to use for one Preference field, given the
// engine that Open returned. For "io_uring" it returns opened, which is the
// Syscall engine if Open fell back. For "syscall" it returns opened if that
// is a Syscall engine with BatchGoroutines above 1, and otherwise a new
// Syscall engine with BatchGoroutines = runtime.GOMAXPROCS(0). A new engine
// holds no resources, and closing opened does not close it.
func Preferred(choice string, opened Engine) Engine {
	if choice != "syscall" {
		return opened
	}
	if s, ok := opened.(*Syscall); ok && s.BatchGoroutines > 1 {
		return s
	}
	return &Syscall{BatchGoroutines: runtime.GOMAXPROCS(0)}
}
