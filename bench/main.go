package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options is the command line.
type options struct {
	proxyBinary  string
	markdownPath string
	jsonPath     string
	floorsPath   string
	writeFloors  string
	floorMargin  float64
	short        bool
	runs         int
	tempParent   string
	cacheDir     string
	noInstall    bool
	keep         bool
	numProc      int
	only         string
	onlyServers  string

	d1Size      int64
	d2Clients   int
	d2Size      int64
	freeTimeout time.Duration
	d3Size      int64
	d3Conns     string
	d3Duration  time.Duration
	d3MaxReqs   int
	d4Requests  int
	d4Size      int64
	d4Conns     int
	u1Size      int64
	u2Uploads   int
	u2Size      int64
	u3Files     int
	u3Size      int64
	u3Conns     int
	z1Size      int64
	treeFiles   int
	flatEntries int
}

const (
	kib      = int64(1) << 10
	mib      = int64(1) << 20
	gibibyte = int64(1) << 30
)

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.proxyBinary, "proxy", "bin/storage-proxy", "storage-proxy binary to measure; the proxy rows are skipped when it is missing")
	fs.StringVar(&o.markdownPath, "markdown", "", "write the report page (table, targets, machine) to this path")
	fs.StringVar(&o.jsonPath, "json", "", "write every cell with its per-run samples to this path")
	fs.StringVar(&o.floorsPath, "floors", "", "JSON file of minimum ratios; exit 1 when a measured ratio is below its floor")
	fs.StringVar(&o.writeFloors, "write-floors", "", "write floors measured in this run, less -floor-margin, to this path; a lower floor already in the file is kept")
	fs.Float64Var(&o.floorMargin, "floor-margin", 0.5, "fraction taken off a measured ratio by -write-floors (0.5 = 50%)")
	fs.BoolVar(&o.short, "short", false, "divide every size and count that is not set by a flag by 8")
	fs.IntVar(&o.runs, "runs", 5, "runs of each scenario against each server")
	fs.StringVar(&o.tempParent, "dir", os.TempDir(), "folder in which the run's temp folder (dataset, volumes, uploads) is made")
	fs.StringVar(&o.cacheDir, "cache-dir", "/tmp/storage-proxy-bench-cache", "folder for tusd and the @tus/server modules, kept between runs")
	fs.BoolVar(&o.noInstall, "no-install", false, "never install a missing peer (apt-get, npm, go install); skip it")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's temp folder and server logs")
	fs.IntVar(&o.numProc, "num-proc", 2, "the proxy's num-proc (worker processes)")
	fs.StringVar(&o.onlyServers, "servers", "", "comma-separated servers to run, by their names in the table (default: all); a scenario's baseline is kept")
	fs.StringVar(&o.only, "scenarios", "D1,D2,D3,D4,U1,U2,U3,Z1,T1,T2,T3,T4", "comma-separated scenarios to run")

	sizes := []struct {
		target *int64
		name   string
		value  int64
		help   string
	}{
		{&o.d1Size, "d1-size", gibibyte, "D1: bytes of the one large download"},
		{&o.d2Size, "d2-size", 64 * mib, "D2: bytes each client downloads"},
		{&o.d3Size, "d3-size", 4 * kib, "D3: bytes of the small file"},
		{&o.d4Size, "d4-size", mib, "D4: bytes of one range read"},
		{&o.u1Size, "u1-size", gibibyte, "U1: bytes of the one large upload"},
		{&o.u2Size, "u2-size", 256 * mib, "U2: bytes of each concurrent upload"},
		{&o.u3Size, "u3-size", 4 * kib, "U3: bytes of each small upload"},
		{&o.z1Size, "z1-size", 2 * gibibyte, "Z1: bytes in the folder streamed as a ZIP"},
	}
	for _, s := range sizes {
		fs.Func(s.name, s.help+` (default `+formatBytes(s.value)+`; suffixes k, m, g)`, func(text string) error {
			v, err := parseBytes(text)
			*s.target = v
			return err
		})
		*s.target = s.value
	}
	counts := []struct {
		target *int
		name   string
		value  int
		help   string
	}{
		{&o.d2Clients, "d2-clients", 64, "D2: concurrent downloading clients"},
		{&o.d3MaxReqs, "d3-max-requests", 2_000_000, "D3: request limit of one run, whatever -d3-duration says"},
		{&o.d4Requests, "d4-requests", 2048, "D4: range requests per run"},
		{&o.d4Conns, "d4-conns", 8, "D4: keep-alive connections"},
		{&o.u2Uploads, "u2-uploads", 16, "U2: concurrent uploads"},
		{&o.u3Files, "u3-files", 4000, "U3: small files per run"},
		{&o.u3Conns, "u3-conns", 32, "U3: concurrent clients"},
		{&o.treeFiles, "tree-files", 100_000, "T1-T3: files in the tree"},
		{&o.flatEntries, "flat-entries", 100_000, "T4: entries in the listed folder"},
	}
	for _, c := range counts {
		fs.IntVar(c.target, c.name, c.value, c.help)
	}
	fs.StringVar(&o.d3Conns, "d3-conns", "32,256", "D3: comma-separated connection counts")
	fs.DurationVar(&o.freeTimeout, "free-timeout", time.Minute, "T3: how long to wait for a deleted folder's space to be free")
	fs.DurationVar(&o.d3Duration, "d3-duration", 4*time.Second, "D3: length of one run")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.short {
		o.applyShort(fs)
	}
	if o.runs < 1 {
		return nil, fmt.Errorf("invalid -runs %d: use 1 or more", o.runs)
	}
	if o.runs < 5 && !o.short {
		fmt.Printf("note: -runs %d is below the 5 runs a full report should have\n", o.runs)
	}
	return o, nil
}

// applyShort divides every size and count not given on the command line
// by 8, and sets 3 runs and 1 s D3 runs unless those were given.
func (o *options) applyShort(fs *flag.FlagSet) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	shrink64 := map[string]*int64{"d1-size": &o.d1Size, "d2-size": &o.d2Size, "u1-size": &o.u1Size, "u2-size": &o.u2Size, "z1-size": &o.z1Size}
	for name, v := range shrink64 {
		if !given[name] {
			*v /= 8
		}
	}
	shrink := map[string]*int{"d4-requests": &o.d4Requests, "u3-files": &o.u3Files, "tree-files": &o.treeFiles, "flat-entries": &o.flatEntries}
	for name, v := range shrink {
		if !given[name] {
			*v /= 8
		}
	}
	if !given["runs"] {
		o.runs = 3
	}
	if !given["d3-duration"] {
		o.d3Duration = time.Second
	}
}

// bench is one run of the harness.
type bench struct {
	opts    *options
	launch  *launcher
	results *results
	work    string // the run's temp folder
	data    string // dataset root, served by every download server
	src     string // upload sources
	trees   string // T scenario trees (originals, copies)

	servers []*server
	started time.Time
	notes   []string // lines for the report: skipped peers, failures
	// freeTimedOut marks proxies whose T3 space was not free in time.
	freeTimedOut map[string]bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		os.Exit(runServe(os.Args[2:]))
	}
	opts, err := parseOptions(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(run(opts))
}

func run(opts *options) (code int) {
	work, err := os.MkdirTemp(opts.tempParent, "storage-proxy-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	logDir := filepath.Join(work, "logs")
	os.MkdirAll(logDir, 0o755)
	b := &bench{
		opts: opts, launch: &launcher{logDir: logDir}, results: newResults(), work: work,
		data: filepath.Join(work, "data"), src: filepath.Join(work, "src"), trees: filepath.Join(work, "trees"),
		started: time.Now(), freeTimedOut: map[string]bool{},
	}

	// Every started process is stopped on the way out: after the last
	// scenario, after a panic, and on SIGINT or SIGTERM.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-signals
		fmt.Printf("\n%s: stopping every started server\n", sig)
		b.launch.stopAll()
		b.removeWork()
		os.Exit(130)
	}()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "bench: panic: %v\n%s", r, debug.Stack())
			code = 1
		}
		b.launch.stopAll()
		b.removeWork()
	}()

	if err := b.prepare(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	b.runScenarios()
	b.launch.stopAll()
	b.results.summarize()
	return b.report()
}

func (b *bench) removeWork() {
	if b.opts.keep {
		fmt.Printf("kept      %s\n", b.work)
		return
	}
	os.RemoveAll(b.work)
}

// prepare writes the dataset and starts every server.
func (b *bench) prepare() error {
	fmt.Printf("bench     %s, %d runs, temp folder %s\n", map[bool]string{true: "short", false: "full"}[b.opts.short], b.opts.runs, b.work)
	if err := writeDataset(b.opts, b.data, b.src, b.trees); err != nil {
		return fmt.Errorf("write the dataset: %w", err)
	}

	peers := &peerSet{launch: b.launch, opts: b.opts, work: b.work, data: b.data}
	add := func(s ...*server) {
		for _, one := range s {
			if one == nil {
				continue
			}
			if !b.wantsServer(one.name) {
				// The shared limit process keeps running for the other
				// limit rows; any other unwanted server is stopped.
				if !strings.HasPrefix(one.name, "limit-") {
					b.launch.stop(one.proc, 10*time.Second)
				}
				continue
			}
			b.servers = append(b.servers, one)
		}
	}
	add(peers.startLimits()...)
	add(peers.startNginx(), peers.startNetHTTP(), peers.startAiohttp(), peers.startTusd(), peers.startTusNode())

	if _, err := os.Stat(b.opts.proxyBinary); err != nil {
		peers.skip("proxy", fmt.Errorf("binary %s: %w (build it with make build)", b.opts.proxyBinary, err))
	} else {
		prepare := func(volume string) error {
			links := map[string]string{dataFolder: b.data, treeFolder: filepath.Join(b.trees, treeDir), flatFolder: filepath.Join(b.trees, flatDir)}
			for folder, src := range links {
				if err := linkInto(src, folderPath(volume, folder)); err != nil {
					return err
				}
			}
			return nil
		}
		for _, variant := range []string{"io_uring", "syscall"} {
			if b.wantsServer("proxy-" + variant) {
				add(peers.startProxy(variant, prepare))
			}
		}
	}
	for _, s := range b.servers {
		if s.uploadDir != "" {
			os.MkdirAll(s.uploadDir, 0o755)
		}
	}
	names := make([]string, 0, len(b.servers))
	for _, s := range b.servers {
		names = append(names, s.name)
	}
	fmt.Printf("servers   %s\n", strings.Join(names, ", "))
	return nil
}

// wantsServer reports whether -servers selects name. The baselines of
// ratios are always selected, so that every ratio can be computed.
func (b *bench) wantsServer(name string) bool {
	if b.opts.onlyServers == "" || strings.HasPrefix(name, "limit-") {
		return true
	}
	return slices.Contains(strings.Split(b.opts.onlyServers, ","), name)
}

func (b *bench) wants(scenario string) bool {
	return slices.Contains(strings.Split(b.opts.only, ","), scenario)
}

// runScenarios runs every selected scenario. Within a scenario the runs
// are interleaved (run 1 of every server, then run 2, ...), so that a
// slow drift of the machine (page cache, writeback) spreads over all
// servers instead of favouring one.
func (b *bench) runScenarios() {
	b.noteOtherLoad("before the scenarios")
	defer b.noteOtherLoad("after the scenarios")
	steps := []struct {
		id  string
		run func()
	}{
		{"D1", b.runD1}, {"D2", b.runD2}, {"D3", b.runD3}, {"D4", b.runD4},
		{"U1", b.runU1}, {"U2", b.runU2}, {"U3", b.runU3},
		{"Z1", b.runZ1},
		{"T1", b.runT1}, {"T2", b.runT2T3}, {"T4", b.runT4},
	}
	for _, step := range steps {
		if step.id == "T2" && !b.wants("T2") && !b.wants("T3") {
			continue
		}
		if step.id != "T2" && !b.wants(step.id) {
			continue
		}
		started := time.Now()
		step.run()
		fmt.Printf("done      %-4s in %.0f s\n", step.id, time.Since(started).Seconds())
	}
}

// serversWith returns the servers for which has returns true, proxies
// last.
func (b *bench) serversWith(has func(*server) bool) []*server {
	var out []*server
	for _, s := range b.servers {
		if has(s) {
			out = append(out, s)
		}
	}
	return out
}

// noteOtherLoad records in the report which other processes were using
// the CPU, because anything else running on the 2 cores skews every
// figure.
func (b *bench) noteOtherLoad(when string) {
	own := map[int]bool{os.Getpid(): true}
	for _, s := range b.servers {
		for _, pid := range s.pids() {
			own[pid] = true
		}
	}
	busy := busyProcesses(own)
	load := strings.TrimSpace(readFile("/proc/loadavg"))
	if len(busy) == 0 {
		b.notes = append(b.notes, fmt.Sprintf("Other load %s: none above 5%% of a CPU (loadavg %s).", when, load))
		return
	}
	line := fmt.Sprintf("Other load %s (loadavg %s): %s.", when, load, strings.Join(busy, "; "))
	fmt.Println("warning  ", line)
	b.notes = append(b.notes, line)
}
