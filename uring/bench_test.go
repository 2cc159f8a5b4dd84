package uring

import (
	"crypto/rand"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmark sizes default to the figures in docs/benchmarks-uring.md;
// pass smaller ones for a quick run, for example
// go test ./uring/ -run '^$' -bench . -uring.bench-bytes=64MiB -uring.bench-files=2000
var (
	benchBytes = byteSizeFlag("uring.bench-bytes", 1<<30, "bytes written per upload in BenchmarkUploadWrite (accepts KiB, MiB, GiB suffixes)")
	benchFiles = flag.Int("uring.bench-files", 100_000, "files per batch in BenchmarkStatxBatch and BenchmarkUnlinkatBatch")
)

// benchEngine is one engine configuration in a benchmark.
type benchEngine struct {
	name string
	open func(b *testing.B) Engine
}

func ringBench(depth int) benchEngine {
	return benchEngine{
		name: fmt.Sprintf("io_uring-depth%d", depth),
		open: func(b *testing.B) Engine { return openRing(b, Options{BatchDepth: depth}) },
	}
}

var syscallBench = benchEngine{name: "syscall", open: func(*testing.B) Engine { return NewSyscall() }}

// BenchmarkUploadWrite writes -uring.bench-bytes to a new file under the
// temporary directory in chunks, like an upload, with 1 or 4 writes in
// flight. One op is one whole upload.
func BenchmarkUploadWrite(b *testing.B) {
	for _, be := range []benchEngine{ringBench(defaultBatchDepth), syscallBench} {
		for _, chunk := range []int{1 << 20, 256 << 10} {
			for _, inFlight := range []int{1, 4} {
				name := fmt.Sprintf("%s/chunk=%dKiB/inflight=%d", be.name, chunk>>10, inFlight)
				b.Run(name, func(b *testing.B) {
					benchUpload(b, be.open(b), chunk, inFlight)
				})
			}
		}
	}
}

func benchUpload(b *testing.B, e Engine, chunk, inFlight int) {
	_, dfd := tempDirFD(b)
	fd := openFile(b, e, dfd, "upload", unix.O_CREAT|unix.O_WRONLY)
	total := *benchBytes
	chunks := int((total + int64(chunk) - 1) / int64(chunk))
	bufs := make([][]byte, inFlight)
	for i := range bufs {
		bufs[i] = make([]byte, chunk)
		_, _ = rand.Read(bufs[i])
	}

	b.SetBytes(total)
	b.ResetTimer()
	startCPU := processCPU(b)
	for range b.N {
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := range inFlight {
			wg.Go(func() {
				for {
					i := next.Add(1) - 1
					if i >= int64(chunks) {
						return
					}
					off := i * int64(chunk)
					p := bufs[w][:min(int64(chunk), total-off)]
					if _, err := WriteFull(e, fd, p, off); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()

		// Dropping the page cache pages of the last upload keeps writeback
		// of earlier iterations out of the next measurement.
		b.StopTimer()
		cpuBeforeTruncate := processCPU(b)
		if err := unix.Ftruncate(fd, 0); err != nil {
			b.Fatal(err)
		}
		startCPU += processCPU(b) - cpuBeforeTruncate
		b.StartTimer()
	}
	reportCPUPerOp(b, processCPU(b)-startCPU)
}

// BenchmarkSmallWrites issues 4 KiB pwrites at distinct offsets of a 64 MiB
// file, with 1 or 4 goroutines. One op is one 4 KiB write.
func BenchmarkSmallWrites(b *testing.B) {
	for _, be := range []benchEngine{ringBench(defaultBatchDepth), syscallBench} {
		for _, goroutines := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", be.name, goroutines), func(b *testing.B) {
				benchSmallWrites(b, be.open(b), goroutines)
			})
		}
	}
}

func benchSmallWrites(b *testing.B, e Engine, goroutines int) {
	const size, span = 4 << 10, 64 << 20
	_, dfd := tempDirFD(b)
	fd := openFile(b, e, dfd, "small", unix.O_CREAT|unix.O_WRONLY)
	b.SetBytes(size)
	b.ResetTimer()
	startCPU := processCPU(b)

	var next atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			buf := make([]byte, size)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, err := e.Pwrite(fd, buf, i*size%span); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	reportCPUPerOp(b, processCPU(b)-startCPU)
}

// BenchmarkStatxBatch stats -uring.bench-files files of one directory with
// one StatxBatch call per op. "syscall" is one statx(2) per file from one
// goroutine; "syscall-2goroutines" is Syscall with BatchGoroutines = 2.
func BenchmarkStatxBatch(b *testing.B) {
	n := *benchFiles
	_, dfd := tempDirFD(b)
	names := createFiles(b, dfd, n)

	for _, be := range benchBatchEngines() {
		b.Run(be.name, func(b *testing.B) {
			e := be.open(b)
			out := make([]unix.Statx_t, n)
			errs := make([]error, n)
			b.ResetTimer()
			start, startCPU := time.Now(), processCPU(b)
			for range b.N {
				statxAll(b, e, dfd, names, out, errs)
			}
			reportPerFile(b, time.Since(start), processCPU(b)-startCPU, n)
		})
	}
}

// BenchmarkUnlinkatBatch removes -uring.bench-files files of one directory
// with one UnlinkatBatch call per op. The files are created with the timer
// stopped.
func BenchmarkUnlinkatBatch(b *testing.B) {
	n := *benchFiles
	for _, be := range benchBatchEngines() {
		b.Run(be.name, func(b *testing.B) {
			e := be.open(b)
			errs := make([]error, n)
			var elapsed, cpu time.Duration
			for range b.N {
				b.StopTimer()
				_, dfd := tempDirFD(b)
				names := createFiles(b, dfd, n)
				b.StartTimer()

				start, startCPU := time.Now(), processCPU(b)
				unlinkAll(b, e, dfd, names, errs)
				elapsed += time.Since(start)
				cpu += processCPU(b) - startCPU
			}
			reportPerFile(b, elapsed, cpu, n)
		})
	}
}

func benchBatchEngines() []benchEngine {
	return []benchEngine{
		ringBench(8),
		ringBench(32),
		ringBench(128),
		syscallBench,
		{name: "syscall-2goroutines", open: func(*testing.B) Engine { return &Syscall{BatchGoroutines: 2} }},
	}
}

func statxAll(b *testing.B, e Engine, dfd int, names []string, out []unix.Statx_t, errs []error) {
	if err := e.StatxBatch(dfd, names, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, out, errs); err != nil {
		b.Fatal(err)
	}
	checkBatchErrors(b, errs)
}

func unlinkAll(b *testing.B, e Engine, dfd int, names []string, errs []error) {
	if err := e.UnlinkatBatch(dfd, names, 0, errs); err != nil {
		b.Fatal(err)
	}
	checkBatchErrors(b, errs)
}

func checkBatchErrors(b *testing.B, errs []error) {
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// createFiles creates n empty files in dfd and returns their names.
func createFiles(b *testing.B, dfd, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("file-%07d", i)
		fd, err := unix.Openat(dfd, names[i], unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		_ = unix.Close(fd)
	}
	return names
}

// reportPerFile reports wall time and CPU time per file. CPU time covers the
// whole process, including the ring's io-wq worker threads, so it shows
// what a batch costs the machine and not only how long it takes.
func reportPerFile(b *testing.B, elapsed, cpu time.Duration, n int) {
	files := float64(b.N * n)
	b.ReportMetric(float64(elapsed.Nanoseconds())/files, "ns/file")
	b.ReportMetric(float64(cpu.Nanoseconds())/files, "cpu-ns/file")
}

// reportCPUPerOp reports the process CPU time per op. On a shared machine it
// varies less than wall time, because other processes' load adds waiting
// time but little CPU time.
func reportCPUPerOp(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// processCPU returns the user and system CPU time of this process so far.
func processCPU(b *testing.B) time.Duration {
	var usage unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &usage); err != nil {
		b.Fatal(err)
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// byteSizeFlag defines a flag that accepts a byte count with an optional
// KiB, MiB or GiB suffix.
func byteSizeFlag(name string, value int64, usage string) *int64 {
	p := new(int64)
	*p = value
	flag.Func(name, usage, func(s string) error {
		var n int64
		var unit string
		if _, err := fmt.Sscanf(s, "%d%s", &n, &unit); err != nil && unit == "" {
			if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
				return fmt.Errorf("invalid size %q (use e.g. 64MiB or 1GiB)", s)
			}
		}
		switch unit {
		case "":
		case "KiB":
			n <<= 10
		case "MiB":
			n <<= 20
		case "GiB":
			n <<= 30
		default:
			return fmt.Errorf("invalid size %q (use e.g. 64MiB or 1GiB)", s)
		}
		if n <= 0 {
			return fmt.Errorf("invalid size %q (must be positive)", s)
		}
		*p = n
		return nil
	})
	return p
}
