// Command storage-proxy-e2e drives a storage proxy end to end with a real
// dataset and real clients, the way the Backend.AI manager, SDK and web UI
// drive it. The manager API prepares a vfolder and one upload session per
// file, and tus-js-client (Node) uploads the files. Then curl, aria2c and
// unzip download them back, and every file is compared byte for byte by
// xxhash64. Last, the folder is cloned and the source deleted.
//
// By default it starts bin/storage-proxy itself on a temporary volume with
// an embedded etcd member and stops it with SIGTERM at the end. With -tls
// both of its APIs serve HTTPS with a certificate from a CA generated for
// the run. With -client-url, -manager-url, -manager-secret and -volume it
// drives a proxy that is already running instead, and -ca-file names the
// CAs to trust for https URLs. Every client verifies the server's
// certificate.
//
// Each phase prints one summary line. The first failure ends the run with
// exit status 1 and a message naming the file or call.
package main

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// target is the proxy the driver talks to.
type target struct {
	clientURL     string
	managerURL    string
	managerSecret string
	volume        string
}

// options are the command-line settings.
type options struct {
	binary     string
	target     target
	workDir    string
	datasetDir string
	sourceTree string
	largeSize  int64
	sample     int
	cutAfter   int64
	chunkSize  int64
	tusDir     string
	keep       bool
	tls        bool
	caFile     string
}

const largeDefaultSize = 4608 << 20 // 4.5 GiB, so offsets cross the 4 GiB boundary

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("storage-proxy-e2e", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binary, "binary", "bin/storage-proxy", "storage-proxy executable to start when no -manager-url is given")
	fs.StringVar(&o.target.clientURL, "client-url", "", "client API of a running proxy, e.g. http://127.0.0.1:6021 (needs -manager-url, -manager-secret, -volume)")
	fs.StringVar(&o.target.managerURL, "manager-url", "", "manager API of a running proxy, e.g. http://127.0.0.1:6022")
	fs.StringVar(&o.target.managerSecret, "manager-secret", "", "[api.manager] secret of the running proxy")
	fs.StringVar(&o.target.volume, "volume", "", "volume name of the running proxy to create the test vfolders on")
	fs.StringVar(&o.workDir, "work-dir", "", "folder for the proxy's files and the downloads (default: a new temporary folder, removed after a successful run)")
	fs.StringVar(&o.datasetDir, "dataset-dir", "", "folder for the generated files; reused if it already holds them (default: inside the work dir)")
	fs.StringVar(&o.sourceTree, "source", "", "tree to upload besides the generated files (default: $(go env GOROOT)/src)")
	fs.Int64Var(&o.largeSize, "large-size", largeDefaultSize, "size in bytes of the generated large file")
	fs.IntVar(&o.sample, "sample", 1000, "number of source-tree files downloaded one by one with curl, besides all generated files")
	fs.Int64Var(&o.cutAfter, "cut-after", 0, "byte count after which the relay cuts the large file's upload connection once (default: a third of -large-size)")
	fs.Int64Var(&o.chunkSize, "chunk-size", 8<<20, "tus-js-client chunkSize in bytes: the maximum body of one PATCH")
	fs.StringVar(&o.tusDir, "tus-dir", "cmd/storage-proxy-e2e/tus", "folder of upload.js with tus-js-client installed (npm ci)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work dir after a successful run")
	fs.BoolVar(&o.tls, "tls", false, "serve both APIs of the started proxy over HTTPS, with a certificate signed by a CA generated for the run")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM bundle of the CAs that every client trusts for the https URLs of a running proxy (default: each client's system roots)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	external := o.target != (target{})
	if external && (o.target.clientURL == "" || o.target.managerURL == "" || o.target.managerSecret == "" || o.target.volume == "") {
		return o, errors.New("-client-url, -manager-url, -manager-secret and -volume must be given together")
	}
	if o.tls && external {
		return o, errors.New("-tls applies only to the proxy that the driver starts; for a running proxy give https URLs and -ca-file")
	}
	if o.caFile != "" && !external {
		return o, errors.New("-ca-file applies only to a running proxy given with -client-url; for the proxy that the driver starts use -tls, which generates its CA")
	}
	if o.largeSize < 0 || o.chunkSize <= 0 || o.sample < 0 {
		return o, errors.New("-large-size and -sample must not be negative and -chunk-size must be positive")
	}
	if o.cutAfter == 0 {
		o.cutAfter = o.largeSize / 3
	}
	if o.cutAfter <= 0 || o.cutAfter >= o.largeSize {
		return o, fmt.Errorf("-cut-after %d must lie inside the large file (1 to %d)", o.cutAfter, o.largeSize-1)
	}
	return o, nil
}

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "storage-proxy-e2e:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "storage-proxy-e2e: FAIL:", err)
		os.Exit(1)
	}
}

// run prepares the work dir, the dataset and (unless a target is given)
// the proxy, then runs the phases in order.
func run(o options) (err error) {
	started := time.Now()
	workDir, cleanup, err := prepareWorkDir(o.workDir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\nwork dir kept for inspection: %s (remove it when done)", err, workDir)
		}
	}()
	if o.datasetDir == "" {
		o.datasetDir = filepath.Join(workDir, "dataset")
	}
	if o.sourceTree == "" {
		if o.sourceTree, err = goSourceTree(); err != nil {
			return err
		}
	}
	for _, tool := range []string{"node", "curl", "aria2c", "unzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed: it is needed for this run (Debian packages: nodejs, curl, aria2, unzip)", tool)
		}
	}

	data, err := buildDataset(o)
	if err != nil {
		return err
	}
	fmt.Printf("dataset   %d files (%d generated), %d directories (%d empty), %d bytes, hashed in %.1f s; %d entries of %s skipped (symlinks, special or unreadable files)\n",
		len(data.files), len(data.oddFiles()), len(data.dirs), len(data.emptyDirs), data.totalBytes(), time.Since(started).Seconds(), data.skipped, o.sourceTree)

	t, caFile := o.target, o.caFile
	var proxy *proxyProcess
	if t == (target{}) {
		if proxy, t, caFile, err = launchProxy(o, filepath.Join(workDir, "proxy")); err != nil {
			return err
		}
		defer proxy.kill()
		stopOnSignal(proxy, workDir)
	}
	var pool *x509.CertPool
	if caFile != "" {
		if pool, err = loadCAPool(caFile); err != nil {
			return err
		}
	}

	r := &runner{
		opts:    o,
		target:  t,
		manager: newManagerClient(t.managerURL, t.managerSecret, pool),
		caFile:  caFile,
		data:    data,
		workDir: workDir,
	}
	phases := []struct {
		name string
		run  func() error
	}{
		{"manager", r.phaseManager},
		{"upload", r.phaseUpload},
		{"listing", r.phaseListing},
		{"download", r.phaseDownload},
		{"clone", r.phaseCloneDelete},
	}
	for _, phase := range phases {
		if err := phase.run(); err != nil {
			if proxy != nil {
				return fmt.Errorf("%s: %w\n%s", phase.name, err, proxy.logTail(20))
			}
			return fmt.Errorf("%s: %w", phase.name, err)
		}
	}

	if proxy != nil {
		stopped := time.Now()
		if err := proxy.stop(60 * time.Second); err != nil {
			return err
		}
		fmt.Printf("proxy     stopped with SIGTERM in %.1f s, exit status 0\n", time.Since(stopped).Seconds())
	}
	fmt.Printf("PASS      %.1f s in all\n", time.Since(started).Seconds())
	if !o.keep {
		return cleanup()
	}
	fmt.Printf("work dir kept: %s\n", workDir)
	return nil
}

// launchProxy writes a config into dir (with -tls also the certificates),
// starts the proxy and prints its start-up line. It returns the proxy, the
// target that reaches it and the CA bundle to trust ("" over plain HTTP).
func launchProxy(o options, dir string) (*proxyProcess, target, string, error) {
	binary, err := filepath.Abs(o.binary)
	if err != nil {
		return nil, target{}, "", err
	}
	var certs *tlsFiles
	if o.tls {
		files, err := writeTLSFiles(dir)
		if err != nil {
			return nil, target{}, "", fmt.Errorf("write the TLS certificates: %w", err)
		}
		certs = &files
	}
	configPath, t, err := writeProxyConfig(dir, certs)
	if err != nil {
		return nil, target{}, "", fmt.Errorf("write the proxy config: %w", err)
	}

	var pool *x509.CertPool
	caFile := ""
	if certs != nil {
		caFile = certs.caFile
		if pool, err = loadCAPool(caFile); err != nil {
			return nil, target{}, "", err
		}
	}
	proxy, err := startProxy(binary, configPath, t, pool)
	if err != nil {
		return nil, target{}, "", err
	}

	lines := []string{proxy.engineLine()}
	if certs != nil {
		// Under TLS the workers cannot use sendfile, and they log it. The
		// line proves that this run tested the copying data path.
		line, err := proxy.waitLogLine(tlsCopyLogLine, 10*time.Second)
		if err != nil {
			proxy.kill()
			return nil, target{}, "", err
		}
		lines = append(lines, line)
	}
	fmt.Printf("proxy     started %s: client API %s, manager API %s, BACKEND_IO_ENGINE=%q\n          %s\n",
		o.binary, t.clientURL, t.managerURL, os.Getenv("BACKEND_IO_ENGINE"), strings.Join(lines, "\n          "))
	return proxy, t, caFile, nil
}

// stopOnSignal stops the proxy with SIGTERM and exits with status 1 when
// the driver gets SIGINT or SIGTERM, so an interrupted run leaves no proxy
// behind.
func stopOnSignal(proxy *proxyProcess, workDir string) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "storage-proxy-e2e: %s received, stopping the proxy; work dir kept: %s\n", sig, workDir)
		if err := proxy.stop(30 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "storage-proxy-e2e:", err)
		}
		os.Exit(1)
	}()
}

// prepareWorkDir returns dir (created if needed) or a new temporary folder,
// with a function that removes what it created.
func prepareWorkDir(dir string) (string, func() error, error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "storage-proxy-e2e-")
		if err != nil {
			return "", nil, err
		}
		return tmp, func() error { return os.RemoveAll(tmp) }, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	parts := []string{"proxy", "download"}
	return dir, func() error {
		for _, p := range parts {
			if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func goSourceTree() (string, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT failed (%w); give the tree to upload with -source", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "src"), nil
}

// buildDataset hashes the source tree under src/ and generates the odd
// files at the vfolder root.
func buildDataset(o options) (*dataset, error) {
	data := &dataset{byRel: map[string]*fileEntry{}}
	if err := data.addSourceTree(o.sourceTree, "src"); err != nil {
		return nil, fmt.Errorf("read the source tree %s: %w", o.sourceTree, err)
	}
	if err := data.generateOddFiles(o.datasetDir, o.largeSize); err != nil {
		return nil, err
	}
	data.finish()
	return data, nil
}

// runner carries the state that the phases share.
type runner struct {
	opts    options
	target  target
	manager *managerClient
	data    *dataset
	workDir string
	// caFile is the PEM bundle that curl, aria2c and node trust for
	// https URLs, or "" for their default roots.
	caFile string

	volumePath string // the volume's path from GET /volumes
	qsid       string
	vfid       string
	mountPath  string
	// mountLocal reports whether mountPath exists on this machine, so
	// on-disk checks can run.
	mountLocal   bool
	uploadTokens map[string]string
	usage        folderUsage
	usedBytes    int64
}

// summary prints one phase line: bytes, files, seconds and MB/s (10^6
// bytes per second), then free text.
func summary(phase string, bytes int64, files int, started time.Time, detail string) {
	seconds := time.Since(started).Seconds()
	fmt.Printf("%-9s %13d bytes %6d files %7.1f s %9.1f MB/s  %s\n", phase, bytes, files, seconds, float64(bytes)/seconds/1e6, detail)
}
